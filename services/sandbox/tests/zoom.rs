//! The Zoom simulator over real HTTP: Server-to-Server OAuth and its errors, expired tokens, the
//! meeting create answer, validation (code 300) naming fields, unknown users (1001), get, update,
//! delete and 3001, listing with paging, `x-zm-trackingid` on every answer (injected faults
//! included), the per-host daily and per-second limits, ledger effects without personal data, a
//! create whose answer was lost, and reset.

use base64::Engine;
use era_sandbox::{
    state::{
        DEFAULT_ZOOM_ACCOUNT_ID, DEFAULT_ZOOM_CLIENT_ID, DEFAULT_ZOOM_CLIENT_SECRET, ZOOM_ALI_NOLAN_EMAIL,
        ZOOM_ALI_NOLAN_USER_ID, ZOOM_NEELIMA_SINGH_EMAIL, ZOOM_NEELIMA_SINGH_USER_ID,
    },
    Sandbox,
};
use reqwest::{header::HeaderMap, Method, StatusCode};
use serde_json::{json, Value};

struct Running {
    base: String,
    http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// One answer: status, headers, and the body (JSON when it is JSON, else `Null`).
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
    body: Value,
}

impl Answer {
    fn tracking_id(&self) -> &str {
        self.headers
            .get("x-zm-trackingid")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no x-zm-trackingid on {} {}", self.status, self.text))
    }

    /// Zoom's error body: `(code, message)`.
    fn error(&self) -> (u64, &str) {
        (
            self.body["code"].as_u64().unwrap_or_else(|| panic!("{}", self.text)),
            self.body["message"].as_str().unwrap(),
        )
    }

    /// The fields a code-300 answer names, sorted.
    fn fields(&self) -> Vec<String> {
        assert_eq!(self.status, 400, "{}", self.text);
        assert_eq!(self.error(), (300, "Validation Failed."));
        let mut fields: Vec<String> = self.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
                e["field"].as_str().unwrap().to_owned()
            })
            .collect();
        fields.sort();
        fields
    }
}

async fn start() -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(era_sandbox::run(Sandbox::new(), listener, async {
        let _ = stopped.await;
    }));
    Running {
        base,
        http: reqwest::Client::new(),
        _stop: stop,
    }
}

/// A create body for a scheduled meeting at `start`, with our reference in the agenda.
fn visit(start: &str, reference: &str) -> Value {
    json!({
        "topic": "Follow-up visit",
        "type": 2,
        "start_time": start,
        "duration": 30,
        "timezone": "America/New_York",
        "agenda": format!("Era appointment {reference}"),
        "settings": { "join_before_host": false, "waiting_room": true },
    })
}

impl Running {
    async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            text,
            body,
        }
    }

    fn token_request(&self, form: &[(&str, &str)]) -> reqwest::RequestBuilder {
        self.http.post(format!("{}/zoom/oauth/token", self.base)).form(form)
    }

    async fn token(&self) -> String {
        let a = self
            .send(
                self.token_request(&[
                    ("grant_type", "account_credentials"),
                    ("account_id", DEFAULT_ZOOM_ACCOUNT_ID),
                ])
                .basic_auth(DEFAULT_ZOOM_CLIENT_ID, Some(DEFAULT_ZOOM_CLIENT_SECRET)),
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
        a.body["access_token"].as_str().unwrap().to_owned()
    }

    async fn api(&self, token: &str, method: Method, path: &str, body: Option<&Value>) -> Answer {
        let mut req = self
            .http
            .request(method, format!("{}/zoom/v2{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(b);
        }
        self.send(req).await
    }

    async fn create(&self, token: &str, user: &str, body: &Value) -> Answer {
        self.api(token, Method::POST, &format!("/users/{user}/meetings"), Some(body))
            .await
    }

    async fn control(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut req = self.http.request(method, format!("{}/_sandbox{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req).await
    }

    async fn limits(&self, limits: Value) {
        let a = self.control(Method::PUT, "/zoom/limits", Some(limits)).await;
        assert_eq!(a.status, 200, "{}", a.text);
    }

    async fn effects(&self, kind: &str) -> Vec<Value> {
        let ledger = self.control(Method::GET, "/ledger?vendor=zoom", None).await.body;
        ledger["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["method"] == "EFFECT" && e["path"] == kind)
            .cloned()
            .collect()
    }
}

// ---- OAuth ----

#[tokio::test]
async fn a_token_is_issued_for_the_apps_client_and_account() {
    let s = start().await;
    let a = s
        .send(
            s.token_request(&[
                ("grant_type", "account_credentials"),
                ("account_id", DEFAULT_ZOOM_ACCOUNT_ID),
            ])
            .basic_auth(DEFAULT_ZOOM_CLIENT_ID, Some(DEFAULT_ZOOM_CLIENT_SECRET)),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.tracking_id();
    assert_eq!(a.body["token_type"], "bearer");
    assert_eq!(a.body["expires_in"], 3599);
    assert_eq!(
        a.body["scope"],
        "meeting:read:admin meeting:write:admin user:read:admin"
    );
    assert_eq!(a.body["api_url"], "https://api.zoom.us");
    assert!(a.body.get("refresh_token").is_none(), "no refresh token");
    let first = a.body["access_token"].as_str().unwrap().to_owned();
    assert!(first.len() > 100 && first.split('.').count() == 3, "{first}");

    // Community code sends the parameters in the query string; that works too, and the first
    // token stays valid beside the second.
    let second = s
        .send(
            s.http
                .post(format!(
                    "{}/zoom/oauth/token?grant_type=account_credentials&account_id={DEFAULT_ZOOM_ACCOUNT_ID}",
                    s.base
                ))
                .basic_auth(DEFAULT_ZOOM_CLIENT_ID, Some(DEFAULT_ZOOM_CLIENT_SECRET)),
        )
        .await;
    assert_eq!(second.status, 200, "{}", second.text);
    let second = second.body["access_token"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    for token in [&first, &second] {
        let a = s
            .api(
                token,
                Method::GET,
                &format!("/users/{ZOOM_ALI_NOLAN_USER_ID}/meetings"),
                None,
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
    }
    assert_eq!(
        s.control(Method::GET, "/zoom/tokens", None).await.body,
        json!({ "issued": 2, "valid": 2 })
    );
}

#[tokio::test]
async fn token_errors_are_zooms_reason_and_error() {
    let s = start().await;
    let good = [
        ("grant_type", "account_credentials"),
        ("account_id", DEFAULT_ZOOM_ACCOUNT_ID),
    ];
    let invalid_client = json!({ "reason": "Invalid client_id or client_secret", "error": "invalid_client" });
    for req in [
        s.token_request(&good)
            .basic_auth(DEFAULT_ZOOM_CLIENT_ID, Some("wrong-secret")),
        s.token_request(&good)
            .basic_auth("someone-else", Some(DEFAULT_ZOOM_CLIENT_SECRET)),
        s.token_request(&good),
    ] {
        let a = s.send(req).await;
        assert_eq!(a.status, 400, "{}", a.text);
        assert_eq!(a.body, invalid_client);
        a.tracking_id();
    }

    let a = s
        .send(
            s.token_request(&[
                ("grant_type", "client_credentials"),
                ("account_id", DEFAULT_ZOOM_ACCOUNT_ID),
            ])
            .basic_auth(DEFAULT_ZOOM_CLIENT_ID, Some(DEFAULT_ZOOM_CLIENT_SECRET)),
        )
        .await;
    assert_eq!(a.status, 400);
    assert_eq!(
        a.body,
        json!({ "reason": "unsupported grant type", "error": "unsupported_grant_type" })
    );

    for form in [
        &[("grant_type", "account_credentials"), ("account_id", "another-account")][..],
        &[("grant_type", "account_credentials")][..],
    ] {
        let a = s
            .send(
                s.token_request(form)
                    .basic_auth(DEFAULT_ZOOM_CLIENT_ID, Some(DEFAULT_ZOOM_CLIENT_SECRET)),
            )
            .await;
        assert_eq!(a.status, 400, "{}", a.text);
        assert_eq!(a.body["error"], "invalid_request");
        assert!(a.body["reason"].as_str().unwrap().contains("account_id"), "{}", a.text);
    }
    assert_eq!(s.control(Method::GET, "/zoom/tokens", None).await.body["issued"], 0);
}

#[tokio::test]
async fn an_expired_or_unknown_token_gets_401_code_124() {
    let s = start().await;
    let token = s.token().await;
    let path = format!("/users/{ZOOM_ALI_NOLAN_USER_ID}/meetings");
    assert_eq!(s.api(&token, Method::GET, &path, None).await.status, 200);

    let expire = s.control(Method::POST, "/zoom/expire-tokens", None).await;
    assert_eq!(expire.status, 204);
    let a = s.api(&token, Method::GET, &path, None).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.error(), (124, "Access token is expired."));
    a.tracking_id();
    let a = s
        .create(&token, ZOOM_ALI_NOLAN_USER_ID, &visit("2030-01-02T15:00:00Z", "r1"))
        .await;
    assert_eq!(a.error(), (124, "Access token is expired."));

    for bad in ["not-a-token", ""] {
        let a = s.api(bad, Method::GET, &path, None).await;
        assert_eq!(a.status, 401);
        assert_eq!(a.error(), (124, "Invalid access token."));
    }
    let a = s
        .send(s.http.get(format!("{}/zoom/v2/meetings/81234567890", s.base)))
        .await;
    assert_eq!(a.status, 401);
    assert_eq!(a.error(), (124, "Invalid access token."));

    // A new token works at once: there is nothing to refresh.
    let fresh = s.token().await;
    assert_eq!(s.api(&fresh, Method::GET, &path, None).await.status, 200);
}

// ---- Meetings ----

#[tokio::test]
async fn a_create_answers_201_with_zooms_meeting() {
    let s = start().await;
    let token = s.token().await;
    let a = s
        .create(&token, ZOOM_ALI_NOLAN_EMAIL, &visit("2030-01-02T15:00:00Z", "appt-1"))
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    a.tracking_id();
    assert!(a.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let m = &a.body;
    let id = m["id"].as_i64().expect("the meeting number is a JSON number");
    assert!((1_000_000_000..100_000_000_000).contains(&id), "{id}");
    let uuid = m["uuid"].as_str().unwrap();
    assert_eq!(uuid.len(), 24);
    assert!(uuid.ends_with("=="));
    assert!(base64::engine::general_purpose::STANDARD.decode(uuid).is_ok());
    assert_eq!(m["host_id"], ZOOM_ALI_NOLAN_USER_ID);
    assert_eq!(m["host_email"], ZOOM_ALI_NOLAN_EMAIL);
    assert_eq!(m["topic"], "Follow-up visit");
    assert_eq!(m["type"], 2);
    assert_eq!(m["status"], "waiting");
    assert_eq!(m["start_time"], "2030-01-02T15:00:00Z");
    assert_eq!(m["duration"], 30);
    assert_eq!(m["timezone"], "America/New_York");
    assert_eq!(m["agenda"], "Era appointment appt-1");
    let created = m["created_at"].as_str().unwrap();
    assert!(
        chrono::NaiveDateTime::parse_from_str(created, "%Y-%m-%dT%H:%M:%SZ").is_ok(),
        "{created}"
    );
    assert!(m["start_url"]
        .as_str()
        .unwrap()
        .starts_with(&format!("https://us06web.zoom.us/s/{id}?zak=")));
    let join = m["join_url"].as_str().unwrap();
    assert_eq!(
        join,
        format!(
            "https://us06web.zoom.us/j/{id}?pwd={}",
            m["encrypted_password"].as_str().unwrap()
        )
    );
    let password = m["password"].as_str().unwrap();
    assert!((6..=10).contains(&password.len()), "{password}");
    for numeric in ["h323_password", "pstn_password"] {
        assert!(m[numeric].as_str().unwrap().bytes().all(|b| b.is_ascii_digit()), "{m}");
    }
    assert_eq!(m["pre_schedule"], false);
    assert_eq!(
        m["settings"],
        json!({
            "host_video": false, "participant_video": false, "join_before_host": false,
            "mute_upon_entry": false, "approval_type": 2, "audio": "both",
            "auto_recording": "none", "waiting_room": true,
        })
    );

    // By user id, with a passcode of our own and a local start time in a named zone.
    let mut body = visit("2030-01-03T09:30:00", "appt-2");
    body["password"] = json!("a1@-_*Zz");
    body["timezone"] = json!("America/Chicago");
    let a = s.create(&token, ZOOM_NEELIMA_SINGH_USER_ID, &body).await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.body["host_email"], ZOOM_NEELIMA_SINGH_EMAIL);
    assert_eq!(a.body["password"], "a1@-_*Zz");
    assert_eq!(a.body["start_time"], "2030-01-03T09:30:00");
    assert_eq!(a.body["timezone"], "America/Chicago");

    // Each create is a new meeting: Zoom has no idempotency.
    let again = s
        .create(&token, ZOOM_ALI_NOLAN_EMAIL, &visit("2030-01-02T15:00:00Z", "appt-1"))
        .await;
    assert_eq!(again.status, 201);
    assert_ne!(again.body["id"], m["id"]);
    let all = s.control(Method::GET, "/zoom/meetings", None).await.body;
    assert_eq!(all["meetings"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn bad_bodies_get_code_300_naming_each_field() {
    let s = start().await;
    let token = s.token().await;
    let create = |body: Value| {
        let s = &s;
        let token = token.clone();
        async move { s.create(&token, ZOOM_ALI_NOLAN_USER_ID, &body).await }
    };

    let a = create(json!({
        "topic": "x".repeat(201),
        "type": 5,
        "start_time": "2030-01-02 15:00",
        "duration": -10,
        "password": "has spaces!",
        "agenda": "a".repeat(2001),
        "settings": { "audio": "loud", "join_before_host": "yes", "approval_type": 7 },
    }))
    .await;
    a.tracking_id();
    assert_eq!(
        a.fields(),
        [
            "agenda",
            "duration",
            "password",
            "settings.approval_type",
            "settings.audio",
            "settings.join_before_host",
            "start_time",
            "topic",
            "type",
        ]
    );

    // Type 2 needs a start time; a topic is needed; a local start time needs its time zone.
    assert_eq!(
        create(json!({ "type": 2, "duration": 30 })).await.fields(),
        ["start_time", "topic"]
    );
    assert_eq!(
        create(json!({ "topic": "t", "start_time": "2030-01-02T15:00:00" }))
            .await
            .fields(),
        ["timezone"]
    );
    assert_eq!(
        create(json!({ "topic": "t", "start_time": "2030-01-02T15:00:00Z", "password": "12345678901" }))
            .await
            .fields(),
        ["password"]
    );

    // Not JSON, or not an object: 300 without a field list.
    for raw in ["{\"topic\": ", "[1, 2]", "\"topic\""] {
        let a = s
            .send(
                s.http
                    .post(format!("{}/zoom/v2/users/{ZOOM_ALI_NOLAN_USER_ID}/meetings", s.base))
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(raw),
            )
            .await;
        assert_eq!(a.status, 400, "{raw}");
        assert_eq!(a.error(), (300, "Request Body should be a valid JSON object."));
        assert!(a.body.get("errors").is_none());
    }

    // Numbers as strings are coerced, as Zoom's Jackson binding does.
    let a = create(json!({ "topic": "t", "type": "2", "start_time": "2030-01-02T15:00:00Z", "duration": "45" })).await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.body["duration"], 45);
    assert!(s.effects("meeting.created").await.len() == 1);
}

#[tokio::test]
async fn an_unknown_user_or_me_gets_1001() {
    let s = start().await;
    let token = s.token().await;
    let body = visit("2030-01-02T15:00:00Z", "r");
    for user in ["nobody@era-demo.test", "AbCdEfGhIjKlMnOpQrStUv", "me"] {
        let a = s.create(&token, user, &body).await;
        assert_eq!(a.status, 404, "{user}: {}", a.text);
        assert_eq!(a.error(), (1001, format!("User does not exist: {user}.").as_str()));
        a.tracking_id();
        let a = s
            .api(&token, Method::GET, &format!("/users/{user}/meetings"), None)
            .await;
        assert_eq!(a.error().0, 1001);
    }

    // A user added at run time can host.
    let added = s
        .control(
            Method::POST,
            "/zoom/users",
            Some(json!({ "email": "locum@era-demo.test", "timezone": "America/Denver" })),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.text);
    assert_eq!(added.body["id"].as_str().unwrap().len(), 22);
    let a = s.create(&token, "locum@era-demo.test", &body).await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.body["host_id"], added.body["id"]);
    let dup = s
        .control(
            Method::POST,
            "/zoom/users",
            Some(json!({ "email": ZOOM_ALI_NOLAN_EMAIL })),
        )
        .await;
    assert_eq!(dup.status, 409);
}

#[tokio::test]
async fn a_meeting_is_got_updated_and_deleted_then_gone() {
    let s = start().await;
    let token = s.token().await;
    let created = s
        .create(&token, ZOOM_ALI_NOLAN_USER_ID, &visit("2030-01-02T15:00:00Z", "appt-9"))
        .await;
    let id = created.body["id"].as_i64().unwrap();
    let path = format!("/meetings/{id}");

    let got = s.api(&token, Method::GET, &path, None).await;
    assert_eq!(got.status, 200, "{}", got.text);
    got.tracking_id();
    for key in [
        "uuid",
        "id",
        "host_id",
        "topic",
        "start_time",
        "join_url",
        "password",
        "settings",
    ] {
        assert_eq!(got.body[key], created.body[key], "{key}");
    }
    assert!(got.body["start_url"].as_str().unwrap().contains("?zak="));

    let patch = json!({
        "start_time": "2030-01-05T16:30:00Z",
        "duration": 45,
        "password": "NewPass1",
        "settings": { "mute_upon_entry": true },
    });
    let a = s.api(&token, Method::PATCH, &path, Some(&patch)).await;
    assert_eq!(a.status, 204, "{}", a.text);
    assert_eq!(a.text, "");
    a.tracking_id();
    let got = s.api(&token, Method::GET, &path, None).await.body;
    assert_eq!(got["start_time"], "2030-01-05T16:30:00Z");
    assert_eq!(got["duration"], 45);
    assert_eq!(got["topic"], "Follow-up visit", "untouched fields stay");
    assert_eq!(got["password"], "NewPass1");
    assert_ne!(
        got["join_url"], created.body["join_url"],
        "a new passcode, a new join link"
    );
    assert_eq!(got["settings"]["mute_upon_entry"], true);
    assert_eq!(got["settings"]["waiting_room"], true);

    // An update is checked as a create is.
    let bad = s
        .api(&token, Method::PATCH, &path, Some(&json!({ "duration": 0, "type": 9 })))
        .await;
    assert_eq!(bad.fields(), ["duration", "type"]);

    let a = s
        .api(
            &token,
            Method::DELETE,
            &format!("{path}?schedule_for_reminder=false&cancel_meeting_reminder=true"),
            None,
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.text);
    assert_eq!(a.text, "");
    a.tracking_id();

    let gone = format!("Meeting {id} is not found or has expired.");
    for (method, body) in [
        (Method::DELETE, None),
        (Method::GET, None),
        (Method::PATCH, Some(json!({ "duration": 30 }))),
    ] {
        let a = s.api(&token, method.clone(), &path, body.as_ref()).await;
        assert_eq!(a.status, 404, "{method}");
        assert_eq!(a.error(), (3001, gone.as_str()), "{method}");
        a.tracking_id();
    }
    let a = s.api(&token, Method::GET, "/meetings/not-a-number", None).await;
    assert_eq!(a.error(), (3001, "Meeting not-a-number is not found or has expired."));
}

#[tokio::test]
async fn meetings_are_listed_by_start_time_and_paged() {
    let s = start().await;
    let token = s.token().await;
    // Created out of order; listed by start time.
    let starts = [
        "2030-01-04T15:00:00Z",
        "2030-01-01T15:00:00Z",
        "2030-01-05T15:00:00Z",
        "2030-01-03T15:00:00Z",
        "2030-01-02T15:00:00Z",
    ];
    for (i, start) in starts.iter().enumerate() {
        let a = s
            .create(&token, ZOOM_ALI_NOLAN_USER_ID, &visit(start, &format!("ref-{i}")))
            .await;
        assert_eq!(a.status, 201);
    }
    // Another host's meeting, and one of Ali's that is over.
    s.create(
        &token,
        ZOOM_NEELIMA_SINGH_USER_ID,
        &visit("2030-01-01T12:00:00Z", "other"),
    )
    .await;
    s.create(&token, ZOOM_ALI_NOLAN_USER_ID, &visit("2020-06-01T12:00:00Z", "past"))
        .await;

    let list = |query: String| {
        let s = &s;
        let token = token.clone();
        async move {
            s.api(
                &token,
                Method::GET,
                &format!("/users/{ZOOM_ALI_NOLAN_EMAIL}/meetings{query}"),
                None,
            )
            .await
        }
    };

    let all = list(String::new()).await;
    assert_eq!(all.status, 200, "{}", all.text);
    all.tracking_id();
    assert_eq!(all.body["page_size"], 30);
    assert_eq!(all.body["total_records"], 6);
    assert_eq!(all.body["next_page_token"], "");
    let first = &all.body["meetings"][0];
    assert_eq!(first["start_time"], "2020-06-01T12:00:00Z");
    for key in [
        "uuid",
        "id",
        "host_id",
        "topic",
        "type",
        "start_time",
        "duration",
        "timezone",
        "agenda",
        "created_at",
        "join_url",
    ] {
        assert!(first.get(key).is_some(), "{key} in {first}");
    }

    // Upcoming leaves out the past one; pages of two follow the tokens.
    let mut seen = Vec::new();
    let mut page = list("?type=upcoming&page_size=2".into()).await;
    loop {
        assert_eq!(page.status, 200, "{}", page.text);
        assert_eq!(page.body["total_records"], 5);
        assert_eq!(page.body["page_size"], 2);
        let meetings = page.body["meetings"].as_array().unwrap();
        assert!(meetings.len() <= 2);
        seen.extend(meetings.iter().map(|m| m["start_time"].as_str().unwrap().to_owned()));
        let token = page.body["next_page_token"].as_str().unwrap().to_owned();
        if token.is_empty() {
            break;
        }
        page = list(format!("?next_page_token={token}")).await;
    }
    let mut sorted = starts.to_vec();
    sorted.sort();
    assert_eq!(seen, sorted);

    // A client whose create answer was lost finds its meeting by host, start time and reference.
    let found: Vec<&Value> = all.body["meetings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["start_time"] == "2030-01-03T15:00:00Z" && m["agenda"] == "Era appointment ref-3")
        .collect();
    assert_eq!(found.len(), 1);

    assert_eq!(list("?page_size=1000".into()).await.body["page_size"], 300);
    assert_eq!(list("?type=live".into()).await.body["total_records"], 0);
    assert_eq!(list("?type=previous_meetings".into()).await.body["total_records"], 1);
    assert_eq!(list("?type=sometimes".into()).await.fields(), ["type"]);
    assert_eq!(
        list("?next_page_token=forged".into()).await.fields(),
        ["next_page_token"]
    );
}

#[tokio::test]
async fn injected_faults_and_unsimulated_routes_carry_a_tracking_id() {
    let s = start().await;
    let token = s.token().await;
    let fault = json!({
        "path": "/zoom/v2/users",
        "method": "POST",
        "action": { "kind": "status", "status": 503, "body": { "code": 503, "message": "Service unavailable" } },
    });
    assert_eq!(s.control(Method::POST, "/faults", Some(fault)).await.status, 201);
    let a = s
        .create(&token, ZOOM_ALI_NOLAN_USER_ID, &visit("2030-01-02T15:00:00Z", "r"))
        .await;
    assert_eq!(a.status, 503);
    let tracking = a.tracking_id().to_owned();
    assert!(tracking.starts_with("v=2.0;clid=us06;rid=WEB_"), "{tracking}");
    assert!(
        s.effects("meeting.created").await.is_empty(),
        "a made-up failure creates nothing"
    );

    let again = s
        .create(&token, ZOOM_ALI_NOLAN_USER_ID, &visit("2030-01-02T15:00:00Z", "r"))
        .await;
    assert_eq!(again.status, 201);
    assert_ne!(again.tracking_id(), tracking, "a new id per answer");

    let unknown = s.send(s.http.get(format!("{}/zoom/v2/webinars", s.base))).await;
    assert_eq!(unknown.status, 404);
    unknown.tracking_id();
}

// ---- Rate limits ----

#[tokio::test]
async fn creates_past_the_hosts_daily_limit_get_429() {
    let s = start().await;
    let token = s.token().await;
    let defaults = s.control(Method::GET, "/zoom/limits", None).await.body;
    assert_eq!(
        defaults,
        json!({ "creates_per_host_per_day": 100, "medium_per_second": 20 })
    );
    s.limits(json!({ "creates_per_host_per_day": 2 })).await;
    for i in 0..2 {
        let a = s
            .create(
                &token,
                ZOOM_ALI_NOLAN_USER_ID,
                &visit("2030-01-02T15:00:00Z", &i.to_string()),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.text);
    }
    let a = s
        .create(&token, ZOOM_ALI_NOLAN_EMAIL, &visit("2030-01-02T15:00:00Z", "3"))
        .await;
    assert_eq!(a.status, 429, "{}", a.text);
    a.tracking_id();
    assert_eq!(
        a.error(),
        (
            429,
            "You have exceeded the daily rate limit (2) of Meeting Create/Update API requests permitted for this \
             particular user. You may resume these requests at GMT 00:00:00."
        )
    );
    // The budget is per host, and reading is not creating.
    let other = s
        .create(&token, ZOOM_NEELIMA_SINGH_USER_ID, &visit("2030-01-02T15:00:00Z", "n"))
        .await;
    assert_eq!(other.status, 201);
    let listed = s
        .api(
            &token,
            Method::GET,
            &format!("/users/{ZOOM_ALI_NOLAN_USER_ID}/meetings"),
            None,
        )
        .await;
    assert_eq!(listed.body["total_records"], 2);
    assert_eq!(s.effects("meeting.created").await.len(), 3);

    // Reset puts Zoom's figure back.
    assert_eq!(s.control(Method::POST, "/reset", None).await.status, 204);
    assert_eq!(s.control(Method::GET, "/zoom/limits", None).await.body, defaults);
}

#[tokio::test]
async fn medium_requests_past_the_per_second_limit_get_429() {
    let s = start().await;
    let token = s.token().await;
    let per_second = (
        429,
        "You have reached the maximum per-second rate limit for this API. Try again later.",
    );
    s.limits(json!({ "medium_per_second": 0 })).await;
    let a = s
        .create(&token, ZOOM_ALI_NOLAN_USER_ID, &visit("2030-01-02T15:00:00Z", "r"))
        .await;
    assert_eq!(a.status, 429, "{}", a.text);
    assert_eq!(a.error(), per_second);
    a.tracking_id();
    let list_path = format!("/users/{ZOOM_ALI_NOLAN_USER_ID}/meetings");
    assert_eq!(s.api(&token, Method::GET, &list_path, None).await.error(), per_second);
    // Get is Light, so the Medium budget does not hold it back.
    assert_eq!(
        s.api(&token, Method::GET, "/meetings/81234567890", None)
            .await
            .error()
            .0,
        3001
    );

    // Two a second: of ten at once, the first two get through, and unless the burst is spread
    // over five seconds or more (a loaded machine), some are refused.
    s.limits(json!({ "medium_per_second": 2 })).await;
    let burst = (0..10).map(|_| s.api(&token, Method::GET, &list_path, None));
    let answers = futures::future::join_all(burst).await;
    let ok = answers.iter().filter(|a| a.status == 200).count();
    let limited = answers.iter().filter(|a| a.status == 429).count();
    assert_eq!(ok + limited, 10);
    assert!(ok >= 2 && limited >= 1, "{ok} got through, {limited} refused");

    let bad = s
        .control(Method::PUT, "/zoom/limits", Some(json!({ "medium_per_second": -1 })))
        .await;
    assert_eq!(bad.status, 400);
}

// ---- Ledger, lost answers, reset ----

#[tokio::test]
async fn the_ledger_records_each_effect_without_personal_data() {
    let s = start().await;
    let token = s.token().await;
    let mut body = visit("2030-01-02T15:00:00Z", "appt-7");
    body["topic"] = json!("Visit with Ada Example");
    let id = s.create(&token, ZOOM_ALI_NOLAN_USER_ID, &body).await.body["id"]
        .as_i64()
        .unwrap()
        .to_string();
    let path = format!("/meetings/{id}");
    assert_eq!(
        s.api(&token, Method::PATCH, &path, Some(&json!({ "duration": 20 })))
            .await
            .status,
        204
    );
    assert_eq!(s.api(&token, Method::DELETE, &path, None).await.status, 204);

    for kind in ["meeting.created", "meeting.updated", "meeting.deleted"] {
        let effects = s.effects(kind).await;
        assert_eq!(effects.len(), 1, "{kind}");
        let e = &effects[0];
        assert_eq!(e["vendor"], "zoom");
        assert_eq!(e["object"], id.as_str());
        let detail = e["detail"].as_str().unwrap();
        assert!(detail.contains(ZOOM_ALI_NOLAN_USER_ID), "{detail}");
        assert!(detail.contains("2030-01-02T15:00:00Z"), "{detail}");
        for private in ["Ada", "appt-7", "Follow-up", "@"] {
            assert!(!detail.contains(private), "{kind}: {detail}");
        }
    }
    let counts = s.control(Method::GET, "/ledger/counts?vendor=zoom", None).await.body;
    assert_eq!(counts["POST /zoom/oauth/token"], 1);
    assert_eq!(
        counts[format!("POST /zoom/v2/users/{ZOOM_ALI_NOLAN_USER_ID}/meetings")],
        1
    );
    assert_eq!(counts["EFFECT meeting.created"], 1);
}

#[tokio::test]
async fn a_create_whose_answer_is_lost_leaves_one_meeting_to_find() {
    let s = start().await;
    let token = s.token().await;
    let fault = json!({
        "path": format!("/zoom/v2/users/{ZOOM_ALI_NOLAN_USER_ID}/meetings"),
        "method": "POST",
        "action": { "kind": "drop_after" },
    });
    assert_eq!(s.control(Method::POST, "/faults", Some(fault)).await.status, 201);
    let lost = s
        .http
        .post(format!("{}/zoom/v2/users/{ZOOM_ALI_NOLAN_USER_ID}/meetings", s.base))
        .bearer_auth(&token)
        .json(&visit("2030-02-01T14:00:00Z", "appt-lost"))
        .send()
        .await;
    assert!(lost.is_err(), "the caller hears nothing back");

    let listed = s
        .api(
            &token,
            Method::GET,
            &format!("/users/{ZOOM_ALI_NOLAN_EMAIL}/meetings"),
            None,
        )
        .await;
    let found: Vec<&Value> = listed.body["meetings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| {
            m["host_id"] == ZOOM_ALI_NOLAN_USER_ID
                && m["start_time"] == "2030-02-01T14:00:00Z"
                && m["agenda"].as_str().unwrap().contains("appt-lost")
        })
        .collect();
    assert_eq!(found.len(), 1, "{}", listed.text);
    let id = found[0]["id"].as_i64().unwrap();
    assert_eq!(
        s.api(&token, Method::GET, &format!("/meetings/{id}"), None)
            .await
            .status,
        200
    );
    let ledger = s.control(Method::GET, "/ledger?vendor=zoom", None).await.body;
    let dropped: Vec<&Value> = ledger["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["fault"] == "drop_after")
        .collect();
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0]["status"], 201);
}

#[tokio::test]
async fn reset_forgets_meetings_tokens_counts_and_added_users() {
    let s = start().await;
    let token = s.token().await;
    s.limits(json!({ "creates_per_host_per_day": 1 })).await;
    assert_eq!(
        s.create(&token, ZOOM_ALI_NOLAN_USER_ID, &visit("2030-01-02T15:00:00Z", "r"))
            .await
            .status,
        201
    );
    s.control(
        Method::POST,
        "/zoom/users",
        Some(json!({ "email": "locum@era-demo.test" })),
    )
    .await;

    assert_eq!(s.control(Method::POST, "/reset", None).await.status, 204);
    let a = s
        .api(
            &token,
            Method::GET,
            &format!("/users/{ZOOM_ALI_NOLAN_USER_ID}/meetings"),
            None,
        )
        .await;
    assert_eq!(a.error(), (124, "Invalid access token."), "tokens are forgotten");
    let meetings = s.control(Method::GET, "/zoom/meetings", None).await.body;
    assert_eq!(meetings, json!({ "meetings": [] }));
    let users = s.control(Method::GET, "/zoom/users", None).await.body;
    let emails: Vec<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, [ZOOM_ALI_NOLAN_EMAIL, ZOOM_NEELIMA_SINGH_EMAIL]);

    // The daily count starts over, with Zoom's limit back.
    let token = s.token().await;
    for i in 0..2 {
        let a = s
            .create(
                &token,
                ZOOM_ALI_NOLAN_USER_ID,
                &visit("2030-01-02T15:00:00Z", &i.to_string()),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.text);
    }
}
