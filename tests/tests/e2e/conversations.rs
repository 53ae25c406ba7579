//! The HubSpot conversation inbox through the edge, against the HubSpot sandbox over real HTTP:
//! threads paged with HubSpot's cursor, a thread's messages, replies posted once per key (also when
//! HubSpot's answer is lost), closed threads, internal comments, HubSpot down.

use era_tests::{error_code, TestMesh};
use serde_json::{json, Value};

async fn get(mesh: &TestMesh, path: &str) -> Value {
    let resp = mesh.get(path, Some(&mesh.admin_jwt("inbox@example.test"))).await;
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.unwrap()
}

async fn reply(mesh: &TestMesh, thread: &str, key: Option<&str>, body: Value) -> reqwest::Response {
    let mut req = mesh
        .http
        .post(mesh.url(&format!("/api/admin/conversations/{thread}/reply")))
        .bearer_auth(mesh.admin_jwt("inbox@example.test"))
        .json(&body);
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn admins_read_the_inbox_and_reply_once_per_key() {
    let mesh = TestMesh::start().await;
    // Every thread, a page at a time along HubSpot's cursor.
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = get(&mesh, &format!("/api/admin/conversations?pageSize=5&pageToken={token}")).await;
        all.extend(page["items"].as_array().unwrap().iter().cloned());
        token = page["nextPageToken"].as_str().unwrap().to_owned();
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(all.len(), 12, "the seeded inbox");
    let open = get(&mesh, "/api/admin/conversations?status=open&pageSize=100").await;
    let open = open["items"].as_array().unwrap().clone();
    assert!(!open.is_empty() && open.iter().all(|t| t["status"] == "open"));
    let closed = get(&mesh, "/api/admin/conversations?status=closed&pageSize=100").await;
    let closed = closed["items"].as_array().unwrap().clone();
    assert_eq!(open.len() + closed.len(), 12);

    // A thread the contact wrote on: its messages oldest first.
    let mut thread = String::new();
    for t in &open {
        let id = t["id"].as_str().unwrap();
        let msgs = get(&mesh, &format!("/api/admin/conversations/{id}/messages?pageSize=100")).await;
        let items = msgs["items"].as_array().unwrap();
        if items
            .iter()
            .any(|m| m["kind"] == "message" && m["direction"] == "incoming")
        {
            let times: Vec<&str> = items.iter().map(|m| m["createdAt"].as_str().unwrap()).collect();
            let mut sorted = times.clone();
            sorted.sort();
            assert_eq!(times, sorted, "oldest first");
            thread = id.to_owned();
            break;
        }
    }
    assert!(!thread.is_empty());
    assert_eq!(
        get(&mesh, &format!("/api/admin/conversations/{thread}")).await["id"],
        thread.as_str()
    );

    // A reply goes out once per key, on the thread's channel to the contact.
    let mark = mesh.ledger_mark().await;
    let body = json!({ "text": "Your refill ships tomorrow." });
    let first = reply(&mesh, &thread, Some("reply-1"), body.clone()).await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["existing"], false);
    assert_eq!(first["message"]["direction"], "outgoing");
    assert_eq!(first["message"]["kind"], "message");
    let again: Value = reply(&mesh, &thread, Some("reply-1"), body.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["existing"], true);
    assert_eq!(again["message"]["id"], first["message"]["id"]);
    let counts = mesh.ledger_counts("hubspot", mark).await;
    assert_eq!(counts.get("EFFECT conversation.message.sent"), Some(&1), "{counts:?}");
    let other = reply(&mesh, &thread, Some("reply-1"), json!({ "text": "Something else" })).await;
    assert_eq!(error_code(other, 422).await, "idempotency_key_reused");
    let keyless = reply(&mesh, &thread, None, body.clone()).await;
    assert_eq!(error_code(keyless, 400).await, "invalid_argument");
    let empty = reply(&mesh, &thread, Some("reply-empty"), json!({ "text": " " })).await;
    assert_eq!(error_code(empty, 400).await, "invalid_argument");

    // HubSpot posts the reply but the answer is lost: the retry finds it instead of posting again.
    mesh.fault(
        json!({ "method": "POST", "path": format!("/hubspot/conversations/v3/conversations/threads/{thread}/messages"),
        "times": 1, "action": { "kind": "drop_after" } }),
    )
    .await;
    let mark = mesh.ledger_mark().await;
    let lost = reply(
        &mesh,
        &thread,
        Some("reply-2"),
        json!({ "text": "Checking with the pharmacy now." }),
    )
    .await;
    assert_eq!(error_code(lost, 503).await, "hubspot_unavailable");
    let retried: Value = reply(
        &mesh,
        &thread,
        Some("reply-2"),
        json!({ "text": "Checking with the pharmacy now." }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(retried["existing"], true, "{retried}");
    let counts = mesh.ledger_counts("hubspot", mark).await;
    assert_eq!(counts.get("EFFECT conversation.message.sent"), Some(&1), "{counts:?}");

    // A closed thread takes internal comments, not replies.
    let closed_id = closed[0]["id"].as_str().unwrap();
    let refused = reply(&mesh, closed_id, Some("reply-3"), json!({ "text": "Hello?" })).await;
    assert_eq!(error_code(refused, 422).await, "conversation_closed");
    let note: Value = reply(
        &mesh,
        closed_id,
        Some("note-1"),
        json!({ "text": "Closed after the refill shipped.", "internalComment": true }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(note["message"]["kind"], "comment");

    // Unknown threads and bad ids; HubSpot down.
    let missing = mesh
        .get(
            "/api/admin/conversations/999999999",
            Some(&mesh.admin_jwt("inbox@example.test")),
        )
        .await;
    assert_eq!(missing.status(), 404);
    let bad = mesh
        .get(
            "/api/admin/conversations/not-a-thread",
            Some(&mesh.admin_jwt("inbox@example.test")),
        )
        .await;
    assert_eq!(error_code(bad, 400).await, "invalid_argument");
    mesh.fault(json!({ "path": "/hubspot/", "times": 20, "action": { "kind": "status", "status": 503 } }))
        .await;
    let down = mesh
        .get("/api/admin/conversations", Some(&mesh.admin_jwt("inbox@example.test")))
        .await;
    assert_eq!(error_code(down, 503).await, "hubspot_unavailable");
    // Patients have no way in.
    let patient = mesh.patient_tokens().issue("someone").token;
    assert_eq!(mesh.get("/api/admin/conversations", Some(&patient)).await.status(), 403);
}

#[tokio::test]
async fn a_page_token_hubspot_never_issued_is_the_callers_mistake() {
    // Well formed for us, but not a cursor HubSpot could have issued: it refuses it with a 400.
    let mesh = TestMesh::start().await;
    let secret = mesh.admin_secret();
    let threads = get(&mesh, "/api/admin/conversations").await;
    let thread = threads["items"][0]["id"].as_str().expect("a seeded thread").to_owned();
    for path in [
        "/api/admin/conversations?pageToken=_w".to_owned(),
        format!("/api/admin/conversations/{thread}/messages?pageToken=_w"),
    ] {
        let path = path.as_str();
        let resp = mesh.get(path, Some(&secret)).await;
        assert_eq!(resp.status(), 400, "{path}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_argument", "{path}: {body}");
    }
}
