//! The HubSpot conversations simulator over real HTTP: auth, cursor paging through the seeded
//! threads, the list's filters and rules, message history, replies and comments (and the
//! validation errors naming what is missing), status changes, archiving, the incoming-message
//! control, the ledger's effects and reset.

use std::collections::BTreeSet;

use era_sandbox::{
    hubspot::seed::{
        CARE_CHAT_ACCOUNT, CARE_EMAIL_ACCOUNT, CARE_TEAM_AGENT, FIRST_THREAD, PATIENT_CARE_INBOX, PHARMACY_INBOX,
    },
    state::DEFAULT_HUBSPOT_TOKEN,
    Sandbox,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const BASE: &str = "/hubspot/conversations/v3/conversations";

struct Hub {
    base: String,
    http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start() -> Hub {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(era_sandbox::run(Sandbox::new(), listener, async {
        let _ = stopped.await;
    }));
    Hub {
        base,
        http: reqwest::Client::new(),
        _stop: stop,
    }
}

impl Hub {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{BASE}{path}", self.base)
        };
        let mut req = self.http.request(method, url).bearer_auth(DEFAULT_HUBSPOT_TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    async fn control(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}/_sandbox{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Every thread id the list gives, following `after` until `paging` is absent.
    async fn all_thread_ids(&self, query: &str) -> Vec<String> {
        let mut ids = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..20 {
            let sep = if query.is_empty() { "?" } else { "&" };
            let path = match &after {
                Some(a) => format!("/threads{query}{sep}after={a}"),
                None => format!("/threads{query}"),
            };
            let page = self.get(&path).await;
            ids.extend(
                page["results"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t["id"].as_str().unwrap().to_owned()),
            );
            match page.get("paging") {
                None => return ids,
                Some(p) => after = Some(p["next"]["after"].as_str().unwrap().to_owned()),
            }
        }
        panic!("paging never ended");
    }

    async fn messages(&self, thread: u64, query: &str) -> Vec<Value> {
        self.get(&format!("/threads/{thread}/messages{query}")).await["results"]
            .as_array()
            .unwrap()
            .clone()
    }
}

fn thread_id(n: u64) -> u64 {
    FIRST_THREAD + n - 1
}

/// A reply as the reference describes building one: the thread's channel and account, and the
/// latest incoming message's sender as the recipient.
async fn reply_to(h: &Hub, thread: u64, text: &str) -> Value {
    let t = h.get(&format!("/threads/{thread}")).await;
    let history = h.messages(thread, "").await;
    let incoming = history
        .iter()
        .find(|m| m["type"] == "MESSAGE" && m["direction"] == "INCOMING")
        .unwrap();
    let sender = &incoming["senders"][0];
    json!({
        "type": "MESSAGE",
        "text": text,
        "richText": format!("<p>{text}</p>"),
        "senderActorId": CARE_TEAM_AGENT,
        "channelId": t["originalChannelId"],
        "channelAccountId": t["originalChannelAccountId"],
        "recipients": [{
            "actorId": sender["actorId"],
            "deliveryIdentifiers": [sender["deliveryIdentifier"]],
        }],
        "attachments": [],
    })
}

#[tokio::test]
async fn a_missing_or_wrong_token_gets_hubspots_401() {
    let h = start().await;
    for req in [
        h.http.get(format!("{}{BASE}/threads", h.base)),
        h.http
            .get(format!("{}{BASE}/threads", h.base))
            .bearer_auth("pat-na1-wrong"),
        h.http
            .post(format!("{}{BASE}/threads/{FIRST_THREAD}/messages", h.base))
            .json(&json!({})),
    ] {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["status"], "error");
        assert_eq!(body["category"], "INVALID_AUTHENTICATION");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(body["correlationId"].as_str().unwrap().len(), 36);
    }
}

#[tokio::test]
async fn paging_walks_every_thread_until_paging_is_absent() {
    let h = start().await;
    let ids = h.all_thread_ids("?limit=5").await;
    let expected: Vec<String> = (1..=12).map(|n| thread_id(n).to_string()).collect();
    assert_eq!(ids, expected, "every thread once, by id");

    let first = h.get("/threads?limit=5").await;
    assert_eq!(first["results"].as_array().unwrap().len(), 5);
    // The link repeats the query with the cursor.
    let link = first["paging"]["next"]["link"].as_str().unwrap().to_owned();
    assert!(link.contains("limit=5") && link.contains("after="), "{link}");
    let second = h.get(&link).await;
    assert_eq!(second["results"][0]["id"], thread_id(6).to_string());
    // The default page holds all twelve, so it has no paging.
    let all = h.get("/threads").await;
    assert_eq!(all["results"].as_array().unwrap().len(), 12);
    assert!(all.get("paging").is_none());

    let t = &all["results"][0];
    for key in [
        "id",
        "status",
        "inboxId",
        "associatedContactId",
        "originalChannelId",
        "originalChannelAccountId",
        "createdAt",
        "latestMessageTimestamp",
        "spam",
        "archived",
    ] {
        assert!(t.get(key).is_some(), "{key} in {t}");
    }
    assert!(t["id"].is_string() && t["inboxId"].is_string());
    assert!(chrono::DateTime::parse_from_rfc3339(t["createdAt"].as_str().unwrap()).is_ok());

    let (status, body) = h.call(Method::GET, "/threads?after=%21%21", None).await;
    assert_eq!(status, 400);
    assert_eq!(body["category"], "VALIDATION_ERROR");
}

#[tokio::test]
async fn filters_narrow_the_threads_by_the_specs_rules() {
    let h = start().await;
    let closed = h.all_thread_ids("?threadStatus=CLOSED").await;
    let open = h.all_thread_ids("?threadStatus=OPEN").await;
    assert_eq!(closed.len() + open.len(), 12);
    assert!(!closed.is_empty() && !open.is_empty());
    for id in &closed {
        let t = h.get(&format!("/threads/{id}")).await;
        assert_eq!(t["status"], "CLOSED");
        assert!(t["closedAt"].is_string());
    }

    let pharmacy = h.all_thread_ids(&format!("?inboxId={PHARMACY_INBOX}")).await;
    let care = h.all_thread_ids(&format!("?inboxId={PATIENT_CARE_INBOX}")).await;
    assert_eq!(pharmacy.len() + care.len(), 12);
    assert!(!pharmacy.is_empty());
    let both = h
        .all_thread_ids(&format!(
            "?inboxId={PHARMACY_INBOX}&inboxId={PATIENT_CARE_INBOX}&limit=3"
        ))
        .await;
    assert_eq!(both.len(), 12);

    // Ada (contact 5101) has one open and one closed thread.
    let ada_open = h.get("/threads?associatedContactId=5101&threadStatus=OPEN").await;
    let ada_open = ada_open["results"].as_array().unwrap();
    assert_eq!(ada_open.len(), 1);
    assert_eq!(ada_open[0]["associatedContactId"], "5101");
    let newest_first = h
        .all_thread_ids("?associatedContactId=5101&threadStatus=CLOSED&sort=-id")
        .await;
    assert_eq!(newest_first.len(), 1);
    for (query, field) in [
        ("?associatedContactId=5101", "threadStatus"),
        ("?associatedContactId=5101&threadStatus=OPEN&inboxId=147000101", ""),
        ("?sort=latestMessageTimestamp", "latestMessageTimestampAfter"),
        ("?threadStatus=PENDING", "threadStatus"),
        ("?limit=0", "limit"),
        ("?sort=createdAt", "sort"),
    ] {
        let (status, body) = h.call(Method::GET, &format!("/threads{query}"), None).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["category"], "VALIDATION_ERROR", "{query}");
        if !field.is_empty() {
            assert_eq!(body["errors"][0]["in"], field, "{query}: {body}");
        }
    }

    // Threads active in the last four hours, oldest activity first.
    let since = (chrono::Utc::now() - chrono::Duration::hours(4)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let recent = h
        .get(&format!(
            "/threads?sort=latestMessageTimestamp&latestMessageTimestampAfter={}",
            since.replace('+', "%2B")
        ))
        .await;
    let times: Vec<String> = recent["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["latestMessageTimestamp"].as_str().unwrap().to_owned())
        .collect();
    assert!(!times.is_empty());
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert!(times.len() < 12);
}

#[tokio::test]
async fn a_threads_history_is_newest_first_with_every_kind_of_entry() {
    let h = start().await;
    let mut kinds = BTreeSet::new();
    let mut directions = BTreeSet::new();
    let mut channels = BTreeSet::new();
    for n in 1..=12 {
        let id = thread_id(n);
        let history = h.messages(id, "?sort=createdAt").await;
        assert!(
            history.iter().any(|m| m["direction"] == "INCOMING"),
            "thread {id} starts with the contact"
        );
        let times: Vec<&str> = history.iter().map(|m| m["createdAt"].as_str().unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
        for m in &history {
            kinds.insert(m["type"].as_str().unwrap().to_owned());
            if let Some(d) = m["direction"].as_str() {
                directions.insert(d.to_owned());
                channels.insert(m["channelId"].as_str().unwrap().to_owned());
            }
            assert_eq!(m["conversationsThreadId"], id.to_string());
        }
        let newest_first = h.messages(id, "").await;
        assert_eq!(newest_first.first(), history.last(), "the spec's default is -createdAt");
    }
    assert_eq!(
        kinds,
        BTreeSet::from(["COMMENT", "MESSAGE", "THREAD_STATUS_CHANGE"].map(String::from))
    );
    assert_eq!(directions.len(), 2);
    assert_eq!(channels.len(), 2, "email and chat");

    // A closed thread ends with its status change.
    let closed = h.get("/threads?threadStatus=CLOSED&limit=1").await;
    let id: u64 = closed["results"][0]["id"].as_str().unwrap().parse().unwrap();
    let last = &h.messages(id, "").await[0];
    assert_eq!(last["type"], "THREAD_STATUS_CHANGE");
    assert_eq!(last["newStatus"], "CLOSED");

    // Paging through a history; a single message by id.
    let first = h
        .get(&format!("/threads/{}/messages?limit=2&sort=createdAt", thread_id(4)))
        .await;
    assert_eq!(first["results"].as_array().unwrap().len(), 2);
    let after = first["paging"]["next"]["after"].as_str().unwrap();
    let rest = h
        .get(&format!(
            "/threads/{}/messages?limit=2&sort=createdAt&after={after}",
            thread_id(4)
        ))
        .await;
    assert_ne!(rest["results"][0]["id"], first["results"][0]["id"]);
    let one_id = first["results"][0]["id"].as_str().unwrap();
    let one = h.get(&format!("/threads/{}/messages/{one_id}", thread_id(4))).await;
    assert_eq!(one, first["results"][0]);
    let (status, _) = h
        .call(Method::GET, &format!("/threads/{}/messages/nope", thread_id(4)), None)
        .await;
    assert_eq!(status, 404);
    let (status, body) = h.call(Method::GET, "/threads/999/messages", None).await;
    assert_eq!(status, 404);
    assert_eq!(body["category"], "OBJECT_NOT_FOUND");
}

#[tokio::test]
async fn a_reply_is_created_listed_and_delivered() {
    let h = start().await;
    let thread = thread_id(1);
    let egg = reply_to(&h, thread, "Your refill ships tomorrow.").await;
    let (status, m) = h
        .call(Method::POST, &format!("/threads/{thread}/messages"), Some(egg))
        .await;
    assert_eq!(status, 201, "{m}");
    assert_eq!(m["type"], "MESSAGE");
    assert_eq!(m["direction"], "OUTGOING");
    assert_eq!(m["status"]["statusType"], "SENT");
    assert_eq!(m["text"], "Your refill ships tomorrow.");
    assert_eq!(m["createdBy"], CARE_TEAM_AGENT);
    assert_eq!(m["channelAccountId"], CARE_EMAIL_ACCOUNT.to_string());
    assert_eq!(m["conversationsThreadId"], thread.to_string());
    assert_eq!(m["client"]["clientType"], "INTEGRATION");
    assert_eq!(m["senders"][0]["actorId"], CARE_TEAM_AGENT);
    assert_eq!(
        m["recipients"][0]["deliveryIdentifier"]["value"],
        "ada.example@example.test"
    );
    assert!(m["id"].is_string() && m["inReplyToId"].is_string());
    assert!(chrono::DateTime::parse_from_rfc3339(m["createdAt"].as_str().unwrap()).is_ok());

    let history = h.messages(thread, "").await;
    assert_eq!(history[0], m, "newest first");
    let t = h.get(&format!("/threads/{thread}")).await;
    assert_eq!(t["latestMessageSentTimestamp"], m["createdAt"]);
    assert_eq!(t["latestMessageTimestamp"], m["createdAt"]);

    let (_, ledger) = h.control(Method::GET, "/ledger", None).await;
    let effects: Vec<&Value> = ledger["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["path"] == "conversation.message.sent")
        .collect();
    assert_eq!(effects.len(), 1);
    assert_eq!(effects[0]["object"], m["id"]);
    let (_, inbox) = h.control(Method::GET, "/inbox.json?channel=hubspot", None).await;
    assert_eq!(inbox["messages"][0]["to"], "ada.example@example.test");
    assert_eq!(inbox["messages"][0]["text"], "Your refill ships tomorrow.");

    // Chat threads reply the same way.
    let chat = thread_id(2);
    let egg = reply_to(&h, chat, "Thursday at 2pm is booked.").await;
    assert_eq!(egg["channelAccountId"], CARE_CHAT_ACCOUNT.to_string());
    let (status, m) = h
        .call(Method::POST, &format!("/threads/{chat}/messages"), Some(egg))
        .await;
    assert_eq!(status, 201, "{m}");
}

#[tokio::test]
async fn a_comment_is_an_internal_note() {
    let h = start().await;
    let thread = thread_id(6);
    let (status, c) = h
        .call(
            Method::POST,
            &format!("/threads/{thread}/messages"),
            Some(json!({ "type": "COMMENT", "text": "Address change requested", "attachments": [] })),
        )
        .await;
    assert_eq!(status, 201, "{c}");
    assert_eq!(c["type"], "COMMENT");
    assert_eq!(c["text"], "Address change requested");
    assert!(c.get("direction").is_none());
    assert_eq!(h.messages(thread, "").await[0]["id"], c["id"]);
    let (_, inbox) = h.control(Method::GET, "/inbox.json", None).await;
    assert_eq!(inbox["messages"], json!([]), "comments reach no one");
}

#[tokio::test]
async fn bad_messages_get_a_validation_error_naming_what_is_wrong() {
    let h = start().await;
    let path = format!("/threads/{}/messages", thread_id(1));
    let (status, e) = h
        .call(Method::POST, &path, Some(json!({ "type": "MESSAGE", "text": "hi" })))
        .await;
    assert_eq!(status, 400);
    assert_eq!(e["category"], "VALIDATION_ERROR");
    let message = e["message"].as_str().unwrap();
    for field in [
        "senderActorId",
        "channelId",
        "channelAccountId",
        "recipients",
        "attachments",
    ] {
        assert!(message.contains(field), "{message}");
    }
    let named: Vec<&str> = e["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["in"].as_str().unwrap())
        .collect();
    assert_eq!(
        named,
        [
            "senderActorId",
            "channelId",
            "channelAccountId",
            "recipients",
            "attachments"
        ]
    );

    let (_, e) = h.call(Method::POST, &path, Some(json!({ "text": "hi" }))).await;
    assert_eq!(e["errors"][0]["in"], "type");
    let (_, e) = h
        .call(Method::POST, &path, Some(json!({ "type": "COMMENT", "text": "hi" })))
        .await;
    assert_eq!(e["errors"][0]["in"], "attachments");

    let good = reply_to(&h, thread_id(1), "hello").await;
    for (key, value, field) in [
        ("senderActorId", json!("A-1"), "senderActorId"),
        ("senderActorId", json!("E-ada.example@example.test"), "senderActorId"),
        (
            "channelAccountId",
            json!(CARE_CHAT_ACCOUNT.to_string()),
            "channelAccountId",
        ),
        ("recipients", json!([]), "recipients"),
        (
            "recipients",
            json!([{ "deliveryIdentifiers": [{ "type": "PIGEON", "value": "x" }] }]),
            "recipients[0].deliveryIdentifiers",
        ),
        ("text", json!(""), "text"),
    ] {
        let mut egg = good.clone();
        egg[key] = value;
        let (status, e) = h.call(Method::POST, &path, Some(egg)).await;
        assert_eq!(status, 400, "{key}: {e}");
        assert_eq!(e["errors"][0]["in"], field, "{key}: {e}");
    }
    assert_eq!(h.messages(thread_id(1), "").await.len(), 2, "nothing was added");
}

#[tokio::test]
async fn threads_close_reopen_archive_and_restore() {
    let h = start().await;
    let thread = thread_id(1);
    let (status, t) = h
        .call(
            Method::PATCH,
            &format!("/threads/{thread}"),
            Some(json!({ "status": "CLOSED" })),
        )
        .await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["status"], "CLOSED");
    assert!(t["closedAt"].is_string());
    let change = &h.messages(thread, "").await[0];
    assert_eq!(change["type"], "THREAD_STATUS_CHANGE");
    assert_eq!(change["newStatus"], "CLOSED");

    // A reply to a closed thread is accepted and leaves it closed.
    let egg = reply_to(&h, thread, "One more thing.").await;
    let (status, _) = h
        .call(Method::POST, &format!("/threads/{thread}/messages"), Some(egg))
        .await;
    assert_eq!(status, 201);
    assert_eq!(h.get(&format!("/threads/{thread}")).await["status"], "CLOSED");

    // The contact writing back reopens it.
    let (status, m) = h
        .control(
            Method::POST,
            &format!("/hubspot/threads/{thread}/incoming"),
            Some(json!({ "text": "Thanks! Also, can I pause my plan?" })),
        )
        .await;
    assert_eq!(status, 201, "{m}");
    assert_eq!(m["direction"], "INCOMING");
    assert_eq!(
        m["senders"][0]["deliveryIdentifier"]["value"],
        "ada.example@example.test"
    );
    let t = h.get(&format!("/threads/{thread}")).await;
    assert_eq!(t["status"], "OPEN");
    assert!(t.get("closedAt").is_none());
    assert_eq!(t["latestMessageReceivedTimestamp"], m["createdAt"]);

    let (status, e) = h
        .call(
            Method::PATCH,
            &format!("/threads/{thread}"),
            Some(json!({ "status": "SNOOZED" })),
        )
        .await;
    assert_eq!(
        (status, e["errors"][0]["in"].clone()),
        (StatusCode::BAD_REQUEST, json!("status"))
    );

    // Archived: gone from the list and from GET unless asked for with archived=true.
    let (status, _) = h.call(Method::DELETE, &format!("/threads/{thread}"), None).await;
    assert_eq!(status, 204);
    let (status, _) = h.call(Method::GET, &format!("/threads/{thread}"), None).await;
    assert_eq!(status, 404);
    assert_eq!(
        h.get(&format!("/threads/{thread}?archived=true")).await["archived"],
        true
    );
    assert_eq!(h.all_thread_ids("").await.len(), 11);
    assert_eq!(h.all_thread_ids("?archived=true").await, [thread.to_string()]);
    let (status, _) = h
        .call(
            Method::POST,
            &format!("/threads/{thread}/messages"),
            Some(json!({ "type": "COMMENT", "text": "x", "attachments": [] })),
        )
        .await;
    assert_eq!(status, 404, "archived threads take no messages");
    let (status, _) = h
        .call(
            Method::PATCH,
            &format!("/threads/{thread}?archived=true"),
            Some(json!({ "status": "OPEN" })),
        )
        .await;
    assert_eq!(status, 400, "an archived thread's status cannot change");
    let (status, t) = h
        .call(
            Method::PATCH,
            &format!("/threads/{thread}?archived=true"),
            Some(json!({ "archived": false })),
        )
        .await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["archived"], false);
    assert_eq!(h.all_thread_ids("").await.len(), 12);
}

#[tokio::test]
async fn inboxes_channels_accounts_and_actors_are_served() {
    let h = start().await;
    let inboxes = h.get("/inboxes").await;
    assert_eq!(inboxes["total"], 2);
    assert_eq!(inboxes["results"][0]["id"], PATIENT_CARE_INBOX.to_string());
    assert_eq!(
        h.get(&format!("/inboxes/{PHARMACY_INBOX}")).await["name"],
        "Pharmacy & Billing"
    );
    let channels = h.get("/channels").await;
    let names: Vec<&str> = channels["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Live chat", "Email"]);
    let accounts = h.get(&format!("/channel-accounts?inboxId={PATIENT_CARE_INBOX}")).await;
    assert_eq!(accounts["total"], 2);
    let email = h.get("/channel-accounts?channelId=1002").await;
    assert_eq!(email["total"], 2);
    assert_eq!(email["results"][0]["deliveryIdentifier"]["type"], "HS_EMAIL_ADDRESS");
    let agent = h.get(&format!("/actors/{CARE_TEAM_AGENT}")).await;
    assert_eq!(agent["type"], "AGENT");
    assert_eq!(agent["id"], CARE_TEAM_AGENT);
    let visitor = h.get("/actors/E-ada.example@example.test").await;
    assert_eq!(visitor["type"], "EMAIL");
    let (status, _) = h.call(Method::GET, "/actors/A-404", None).await;
    assert_eq!(status, 404);
    let (status, batch) = h
        .call(
            Method::POST,
            "/actors/batch/read",
            Some(json!({ "inputs": [CARE_TEAM_AGENT, "A-404"] })),
        )
        .await;
    assert_eq!(status, 207);
    assert_eq!(batch["results"].as_array().unwrap().len(), 1);
    assert_eq!(batch["numErrors"], 1);
}

#[tokio::test]
async fn reset_restores_the_seed() {
    let h = start().await;
    let before = h.get("/threads").await;
    let history_before = h.messages(thread_id(1), "").await;

    let egg = reply_to(&h, thread_id(1), "Changed").await;
    h.call(Method::POST, &format!("/threads/{}/messages", thread_id(1)), Some(egg))
        .await;
    h.call(
        Method::PATCH,
        &format!("/threads/{}", thread_id(2)),
        Some(json!({ "status": "CLOSED" })),
    )
    .await;
    h.call(Method::DELETE, &format!("/threads/{}", thread_id(3)), None)
        .await;
    assert_ne!(h.get("/threads").await, before);

    let (status, _) = h.control(Method::POST, "/reset", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let after = h.get("/threads").await;
    let strip = |v: &Value| -> Vec<(Value, Value, Value)> {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["id"].clone(), t["status"].clone(), t["archived"].clone()))
            .collect()
    };
    assert_eq!(strip(&after), strip(&before));
    let history_after = h.messages(thread_id(1), "").await;
    let ids = |h: &[Value]| h.iter().map(|m| m["id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&history_after), ids(&history_before), "seeded ids are fixed");
}

#[tokio::test]
async fn faults_and_the_ledger_cover_hubspot() {
    let h = start().await;
    let fault = json!({ "path": "/hubspot/conversations", "action": { "kind": "status", "status": 502 } });
    let (status, _) = h.control(Method::POST, "/faults", Some(fault)).await;
    assert_eq!(status, 201);
    let (status, _) = h.call(Method::GET, "/threads", None).await;
    assert_eq!(status, 502);
    h.get("/threads").await;
    let (_, counts) = h.control(Method::GET, "/ledger/counts?vendor=hubspot", None).await;
    assert_eq!(counts[format!("GET {BASE}/threads")], 2);
}
