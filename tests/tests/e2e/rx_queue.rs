//! The canvas routes through the edge: the Rx queue and its H&P package, patients, prescriptions, a
//! patient's own records, the public intake form, and Canvas being down.

use era_tests::{error_code, TestMesh};
use serde_json::{json, Value};

pub(crate) fn intake_body(submission_id: &str, email: &str, state: &str) -> Value {
    json!({
        "submissionId": submission_id,
        "submission": {
            "demographics": {
                "givenName": "Marigold", "familyName": "Quillfeather", "birthDate": "1979-11-02",
                "gender": "female", "birthSex": "female", "email": email, "phone": "+15555550177",
                "address": { "lines": ["9 Lantern Way"], "city": "Columbus", "state": state, "postalCode": "43004" }
            },
            "medication": "tirzepatide",
            "answers": [
                { "linkId": "medication", "question": "Which medication?", "answers": ["tirzepatide"] },
                { "linkId": "weight_lb", "question": "Weight (lb)", "answers": ["230"] }
            ],
            "metadata": { "plan": "quarterly" }
        }
    })
}

pub(crate) async fn json_ok(resp: reqwest::Response) -> Value {
    let status = resp.status();
    let body: Value = resp.json().await.expect("JSON body");
    assert!(status.is_success(), "{status}: {body}");
    body
}

#[tokio::test]
async fn an_admin_lists_the_queue_and_opens_a_task() {
    let mesh = TestMesh::start().await;
    let jwt = mesh.admin_jwt("reviewer@yourera.test");

    let page = json_ok(mesh.get("/api/rx-queue/tasks?pageSize=5", Some(&jwt)).await).await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    assert!(page["totalSize"].as_i64().unwrap() >= 20);
    let token = page["nextPageToken"].as_str().unwrap();
    assert!(!token.is_empty());
    let first = &items[0];
    assert_eq!(first["status"], "requested");
    assert!(first["patient"]["familyName"].as_str().is_some_and(|n| !n.is_empty()));
    assert!(!first["medication"].as_str().unwrap().is_empty());

    // The next page continues where this one stopped.
    let next = json_ok(
        mesh.get(&format!("/api/rx-queue/tasks?pageSize=5&pageToken={token}"), Some(&jwt))
            .await,
    )
    .await;
    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (one, two) = (ids(&page), ids(&next));
    assert_eq!(two.len(), 5);
    assert!(
        one.iter().all(|id| !two.contains(id)),
        "pages do not overlap: {one:?} {two:?}"
    );

    // /api/tasks is the plugin's name for the same list.
    let same = json_ok(mesh.get("/api/tasks?pageSize=5", Some(&jwt)).await).await;
    assert_eq!(same["items"][0]["id"], first["id"]);

    let id = first["id"].as_str().unwrap();
    let detail = json_ok(mesh.get(&format!("/api/rx-queue/tasks/{id}"), Some(&jwt)).await).await;
    assert_eq!(detail["task"]["id"], first["id"]);
    assert!(!detail["conditions"].as_array().unwrap().is_empty());
    assert!(!detail["observations"].as_array().unwrap().is_empty());
    assert!(!detail["questionnaireResponses"].as_array().unwrap().is_empty());
    let option = &detail["dosageOptions"][0];
    assert!(option["priceCents"].as_i64().unwrap() > 0, "{option}");
    assert!(!option["label"].as_str().unwrap().is_empty());

    let practitioners = json_ok(mesh.get("/api/rx-queue/practitioners", Some(&jwt)).await).await;
    let npis: Vec<_> = practitioners["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["npi"].clone())
        .collect();
    assert!(npis.contains(&json!("1982609764")) && npis.contains(&json!("1164633533")));
    let by_npi = json_ok(mesh.get("/api/rx-queue/practitioners?npi=1164633533", Some(&jwt)).await).await;
    assert_eq!(by_npi["items"].as_array().unwrap().len(), 1);
    let owner = by_npi["items"][0]["id"].as_str().unwrap();
    let filtered = json_ok(
        mesh.get(&format!("/api/rx-queue/tasks?practitionerId={owner}"), Some(&jwt))
            .await,
    )
    .await;
    let filtered = filtered["items"].as_array().unwrap();
    assert!(!filtered.is_empty());
    assert!(filtered.iter().all(|t| t["ownerPractitionerId"] == owner));

    // Bad input is named; unknown ids are 404; no credentials is 401.
    assert_eq!(
        error_code(mesh.get("/api/rx-queue/tasks?status=open", Some(&jwt)).await, 400).await,
        "invalid_argument"
    );
    assert_eq!(
        error_code(
            mesh.get(&format!("/api/rx-queue/tasks/{}", "0".repeat(32)), Some(&jwt))
                .await,
            404
        )
        .await,
        "not_found"
    );
    assert_eq!(
        error_code(mesh.get("/api/rx-queue/tasks", None).await, 401).await,
        "missing_credentials"
    );
    let patient = mesh.patient_tokens().issue("someone").token;
    assert_eq!(
        error_code(mesh.get("/api/rx-queue/tasks", Some(&patient)).await, 403).await,
        "forbidden"
    );
    // An approval names the dose it chose (the pipeline itself is tested in approval.rs).
    let approve = mesh
        .http
        .post(mesh.url(&format!("/api/rx-queue/tasks/{id}/approve")))
        .bearer_auth(&jwt)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(approve, 400).await, "invalid_argument");
}

#[tokio::test]
async fn intake_through_the_edge_then_patients_prescriptions_and_records() {
    let mesh = TestMesh::start().await;
    let submission_id = uuid::Uuid::new_v4().to_string();
    let body = intake_body(&submission_id, "marigold.q@example.test", "OH");
    let post = |body: Value| mesh.http.post(mesh.url("/api/intake/submit")).json(&body).send();

    let mark = mesh.ledger_mark().await;
    let first = post(body.clone()).await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = post(body.clone()).await.unwrap();
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["taskId"], first["taskId"]);
    assert_eq!(again["existing"], true);
    let calls = mesh.ledger_counts("canvas-fhir", mark).await;
    assert_eq!(calls.get("POST /canvas-fhir/Patient"), Some(&1), "{calls:?}");
    assert_eq!(calls.get("POST /canvas-fhir/Task"), Some(&1), "{calls:?}");
    // The same submission written out differently (other bytes, same content) is the same one.
    let pretty = mesh
        .http
        .post(mesh.url("/api/intake/submit"))
        .header("content-type", "application/json; charset=utf-8")
        .body(serde_json::to_string_pretty(&body).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(pretty.status(), 200);
    // Not JSON by its content type: refused before anything is parsed.
    let text = mesh
        .http
        .post(mesh.url("/api/intake/submit"))
        .header("content-type", "text/plain")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(text, 415).await, "unsupported_media_type");
    let patient_id = first["canvasPatientId"].as_str().unwrap().to_owned();

    // Strict validation: named fields, no values echoed.
    let mut bad = intake_body(&uuid::Uuid::new_v4().to_string(), "not-an-email", "OH");
    bad["submission"]["demographics"]["birthDate"] = json!("11/02/1979");
    let resp = post(bad).await.unwrap();
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    let text = err.to_string();
    assert!(!text.contains("not-an-email") && !text.contains("11/02/1979"), "{text}");
    let fields: Vec<_> = err["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        fields.contains(&"submission.demographics.email".to_owned()),
        "{fields:?}"
    );
    assert!(
        fields.contains(&"submission.demographics.birthDate".to_owned()),
        "{fields:?}"
    );
    let mut unknown = intake_body(&uuid::Uuid::new_v4().to_string(), "x@example.test", "OH");
    unknown["submission"]["demographics"]["ssn"] = json!("123-45-6789");
    let resp = post(unknown).await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(!resp.text().await.unwrap().contains("123-45-6789"));
    let excluded = post(intake_body(&uuid::Uuid::new_v4().to_string(), "tx@example.test", "TX"))
        .await
        .unwrap();
    assert_eq!(error_code(excluded, 422).await, "state_excluded");

    // Admin views of the new patient.
    let secret = mesh.admin_secret();
    let found = json_ok(
        mesh.get("/api/admin/patients?q=marigold.q@example.test", Some(&secret))
            .await,
    )
    .await;
    assert!(found["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["id"] == patient_id.as_str()));
    let by_name = json_ok(mesh.get("/api/admin/patients?q=Quillfeather", Some(&secret)).await).await;
    assert!(by_name["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["id"] == patient_id.as_str()));
    assert_eq!(
        error_code(mesh.get("/api/admin/patients", Some(&secret)).await, 400).await,
        "invalid_argument"
    );
    let detail = json_ok(
        mesh.get(&format!("/api/admin/patients/{patient_id}"), Some(&secret))
            .await,
    )
    .await;
    assert_eq!(detail["patient"]["email"], "marigold.q@example.test");
    assert_eq!(detail["intakeRecords"][0]["medication"], "tirzepatide");

    // A seeded patient with prescriptions.
    let queue = json_ok(mesh.get("/api/rx-queue/tasks?pageSize=100", Some(&secret)).await).await;
    let mut with_rx = None;
    for t in queue["items"].as_array().unwrap() {
        let pid = t["canvasPatientId"].as_str().unwrap();
        let rx = json_ok(
            mesh.get(&format!("/api/admin/prescriptions/{pid}"), Some(&secret))
                .await,
        )
        .await;
        if let Some(p) = rx["items"].as_array().unwrap().first() {
            with_rx = Some(p.clone());
            break;
        }
    }
    let rx = with_rx.expect("some seeded patient has a prescription");
    assert!(!rx["medicationDisplay"].as_str().unwrap().is_empty());
    assert!(rx["daysSupply"].as_i64().unwrap() > 0);

    // The patient's own records: their token or ADMIN_SECRET; another patient is refused without PHI.
    let own = mesh.patient_tokens().issue(&patient_id).token;
    let records = json_ok(
        mesh.get(&format!("/api/patient-records/{patient_id}"), Some(&own))
            .await,
    )
    .await;
    let record = &records["items"][0];
    assert_eq!(record["submission"]["demographics"]["givenName"], "Marigold");
    assert_eq!(record["submissionId"], submission_id.as_str());
    json_ok(
        mesh.get(&format!("/api/patient-records/{patient_id}"), Some(&secret))
            .await,
    )
    .await;
    let other = mesh.patient_tokens().issue("another-patient").token;
    let refused = mesh
        .get(&format!("/api/patient-records/{patient_id}"), Some(&other))
        .await;
    assert_eq!(refused.status(), 403);
    assert!(!refused.text().await.unwrap().contains("Marigold"));
    assert_eq!(
        error_code(mesh.get(&format!("/api/patient-records/{patient_id}"), None).await, 401).await,
        "missing_credentials"
    );
    let admin_jwt = mesh.admin_jwt("ops@yourera.test");
    assert_eq!(
        error_code(
            mesh.get(&format!("/api/patient-records/{patient_id}"), Some(&admin_jwt))
                .await,
            403
        )
        .await,
        "forbidden"
    );
}

#[tokio::test]
async fn canvas_down_is_a_clear_503_at_the_edge() {
    let mesh = TestMesh::start().await;
    mesh.fault(json!({ "path": "/canvas-fhir/", "times": 20, "action": { "kind": "status", "status": 503 } }))
        .await;
    let resp = mesh.get("/api/rx-queue/tasks", Some(&mesh.admin_secret())).await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "canvas_unavailable");
    assert!(body["error"]["message"].as_str().unwrap().contains("Canvas"));
}

#[tokio::test]
async fn a_public_intake_is_dated_by_the_server_and_keeps_the_clients_time_as_a_claim() {
    let mesh = TestMesh::start().await;
    let before = chrono::Utc::now();
    let mut body = intake_body(&uuid::Uuid::new_v4().to_string(), "dated.q@example.test", "OH");
    body["submittedAt"] = json!("2020-01-01T00:00:00Z");
    let resp = mesh
        .http
        .post(mesh.url("/api/intake/submit"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    let patient = created["canvasPatientId"].as_str().unwrap();

    let records = json_ok(
        mesh.get(&format!("/api/patient-records/{patient}"), Some(&mesh.admin_secret()))
            .await,
    )
    .await;
    let record = &records["items"][0];
    let dated = chrono::DateTime::parse_from_rfc3339(record["submittedAt"].as_str().unwrap()).unwrap();
    assert!(
        dated >= before - chrono::Duration::seconds(1),
        "the record carries the server's time, not the client's: {dated}"
    );
    assert_eq!(
        record["submission"]["metadata"]["claimedSubmittedAt"],
        "2020-01-01T00:00:00.000000Z"
    );

    let mut bad = intake_body(&uuid::Uuid::new_v4().to_string(), "dated.r@example.test", "OH");
    bad["submittedAt"] = json!("yesterday");
    let refused = mesh
        .http
        .post(mesh.url("/api/intake/submit"))
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
}
