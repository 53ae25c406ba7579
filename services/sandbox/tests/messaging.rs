//! The SendGrid and Twilio simulators and the sandbox inbox over real HTTP: auth, validation
//! errors naming their fields, rate limiting, the Email Activity lookup, Twilio's magic numbers,
//! fetch and paged lists, signed status callbacks (checked here with our own HMAC-SHA1), the
//! ledger's effects, and the inbox page and JSON.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{extract::State, http::HeaderMap, routing::post, Form, Router};
use base64::Engine;
use era_sandbox::{
    state::{DEFAULT_SENDGRID_API_KEY, DEFAULT_TWILIO_ACCOUNT_SID, DEFAULT_TWILIO_AUTH_TOKEN},
    Sandbox,
};
use hmac::{Hmac, Mac};
use reqwest::{header::HeaderMap as ReqHeaders, StatusCode};
use serde_json::{json, Value};
use sha1::Sha1;

struct Running {
    base: String,
    http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// One answer: status, headers, and the body (JSON when it is JSON, else `Null`).
struct Answer {
    status: StatusCode,
    headers: ReqHeaders,
    text: String,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
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

    async fn mail(&self, body: &Value) -> Answer {
        self.send(
            self.http
                .post(format!("{}/sendgrid/v3/mail/send", self.base))
                .bearer_auth(DEFAULT_SENDGRID_API_KEY)
                .json(body),
        )
        .await
    }

    async fn activity(&self, query: &str) -> Answer {
        self.send(
            self.http
                .get(format!("{}/sendgrid/v3/messages", self.base))
                .bearer_auth(DEFAULT_SENDGRID_API_KEY)
                .query(&[("query", query), ("limit", "10")]),
        )
        .await
    }

    fn messages_url(&self) -> String {
        format!(
            "{}/twilio/2010-04-01/Accounts/{DEFAULT_TWILIO_ACCOUNT_SID}/Messages.json",
            self.base
        )
    }

    async fn sms(&self, form: &[(&str, &str)]) -> Answer {
        self.send(
            self.http
                .post(self.messages_url())
                .basic_auth(DEFAULT_TWILIO_ACCOUNT_SID, Some(DEFAULT_TWILIO_AUTH_TOKEN))
                .form(form),
        )
        .await
    }

    /// A GET on Twilio's API; `path` is relative to the API host, as Twilio's `uri`s are.
    async fn twilio_get(&self, path: &str) -> Answer {
        self.send(
            self.http
                .get(format!("{}/twilio{path}", self.base))
                .basic_auth(DEFAULT_TWILIO_ACCOUNT_SID, Some(DEFAULT_TWILIO_AUTH_TOKEN)),
        )
        .await
    }

    async fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Answer {
        let mut req = self.http.request(method, format!("{}/_sandbox{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req).await
    }

    async fn inbox(&self, query: &str) -> Vec<Value> {
        let a = self
            .control(reqwest::Method::GET, &format!("/inbox.json{query}"), None)
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
        a.body["messages"].as_array().unwrap().clone()
    }

    async fn counts(&self) -> Value {
        self.control(reqwest::Method::GET, "/ledger/counts", None).await.body
    }

    async fn effects(&self, kind: &str) -> Vec<Value> {
        let ledger = self.control(reqwest::Method::GET, "/ledger", None).await.body;
        ledger["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["method"] == "EFFECT" && e["path"] == kind)
            .cloned()
            .collect()
    }
}

fn mail(to: &str, subject: &str) -> Value {
    json!({
        "personalizations": [{ "to": [{ "email": to, "name": "Ada Example" }] }],
        "from": { "email": "care@era-clinic.example.test", "name": "Era Care" },
        "subject": subject,
        "content": [
            { "type": "text/plain", "value": "Your code is 314159." },
            { "type": "text/html", "value": "<p>Your code is <b>314159</b>.</p>" }
        ],
    })
}

fn rate_headers(a: &Answer) -> (u64, u64, i64) {
    let n = |name: &str| a.header(name).unwrap_or_else(|| panic!("{name} missing")).to_owned();
    (
        n("x-ratelimit-limit").parse().unwrap(),
        n("x-ratelimit-remaining").parse().unwrap(),
        n("x-ratelimit-reset").parse().unwrap(),
    )
}

// ---- SendGrid ----

#[tokio::test]
async fn a_mail_is_accepted_with_a_message_id_and_rate_limit_headers() {
    let s = start().await;
    let a = s.mail(&mail("ada.example@example.test", "Your login code")).await;
    assert_eq!(a.status, 202, "{}", a.text);
    assert_eq!(a.text, "");
    let id = a.header("x-message-id").unwrap().to_owned();
    assert_eq!(id.len(), 22, "{id}");
    let (limit, remaining, reset) = rate_headers(&a);
    assert!(limit > 0 && remaining < limit);
    assert!(reset > chrono::Utc::now().timestamp() - 1);

    let effects = s.effects("mail.sent").await;
    assert_eq!(effects.len(), 1);
    assert_eq!(effects[0]["object"], id.as_str());
    assert_eq!(effects[0]["vendor"], "sendgrid");
    assert!(
        !effects[0]["detail"].as_str().unwrap().contains('@'),
        "no addresses in the ledger"
    );
    assert_eq!(s.counts().await["EFFECT mail.sent"], 1);
    assert_eq!(s.counts().await["POST /sendgrid/v3/mail/send"], 1);
}

#[tokio::test]
async fn a_missing_or_wrong_key_gets_sendgrids_401() {
    let s = start().await;
    let url = format!("{}/sendgrid/v3/mail/send", s.base);
    let body = mail("ada.example@example.test", "x");
    for req in [
        s.http.post(&url).json(&body),
        s.http.post(&url).bearer_auth("SG.wrong").json(&body),
        s.http
            .post(&url)
            .basic_auth(DEFAULT_SENDGRID_API_KEY, None::<&str>)
            .json(&body),
    ] {
        let a = s.send(req).await;
        assert_eq!(a.status, 401);
        assert_eq!(
            a.body,
            json!({ "errors": [{ "message": "authorization required", "field": null, "help": null }] })
        );
        rate_headers(&a);
    }
    assert!(s.inbox("").await.is_empty());
}

#[tokio::test]
async fn invalid_mail_gets_400_naming_every_field() {
    let s = start().await;
    let fields = |a: &Answer| -> Vec<String> {
        assert_eq!(a.status, 400, "{}", a.text);
        a.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap_or("null").to_owned())
            .collect()
    };
    let a = s.mail(&json!({})).await;
    assert_eq!(fields(&a), ["from.email", "content", "personalizations", "subject"]);
    rate_headers(&a);

    let a = s
        .mail(&json!({
            "personalizations": [
                { "to": [{ "email": "not-an-address" }] },
                { "to": [] },
                { "to": [{ "email": "grace.sample@example.test" }], "custom_args": { "n": 1 } }
            ],
            "from": { "email": "care@era-clinic.example.test" },
            "subject": "s",
            "content": [{ "type": "text/plain" }],
        }))
        .await;
    assert_eq!(
        fields(&a),
        [
            "content.0.value",
            "personalizations.0.to.0.email",
            "personalizations.1.to",
            "personalizations.2.custom_args.n"
        ]
    );

    let mut no_subject = mail("ada.example@example.test", "x");
    no_subject.as_object_mut().unwrap().remove("subject");
    assert_eq!(fields(&s.mail(&no_subject).await), ["subject"]);

    let not_json = s
        .send(
            s.http
                .post(format!("{}/sendgrid/v3/mail/send", s.base))
                .bearer_auth(DEFAULT_SENDGRID_API_KEY)
                .body("{not json"),
        )
        .await;
    assert_eq!(not_json.status, 400);
    assert_eq!(not_json.body["errors"][0]["message"], "Bad Request");
    assert!(s.inbox("").await.is_empty());
    assert!(s.effects("mail.sent").await.is_empty());
}

#[tokio::test]
async fn the_rate_limit_control_makes_sends_beyond_n_fail_with_429() {
    let s = start().await;
    let set = s
        .control(
            reqwest::Method::PUT,
            "/sendgrid/rate-limit",
            Some(json!({ "remaining": 1 })),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(set.body["remaining"], 1);
    assert_eq!(set.body["enforced"], true);

    let first = s.mail(&mail("ada.example@example.test", "one")).await;
    assert_eq!(first.status, 202);
    assert_eq!(rate_headers(&first).1, 0);
    let refused = s.mail(&mail("ada.example@example.test", "two")).await;
    assert_eq!(refused.status, 429);
    assert_eq!(
        refused.body,
        json!({ "errors": [{ "field": null, "message": "too many requests" }] })
    );
    let (_, remaining, reset) = rate_headers(&refused);
    assert_eq!(remaining, 0);
    let retry_after: i64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!(retry_after >= 1 && reset >= chrono::Utc::now().timestamp());
    assert_eq!(s.inbox("").await.len(), 1, "the refused mail was not sent");

    let cleared = s
        .control(
            reqwest::Method::PUT,
            "/sendgrid/rate-limit",
            Some(json!({ "remaining": null })),
        )
        .await;
    assert_eq!(cleared.body["enforced"], false);
    assert_eq!(s.mail(&mail("ada.example@example.test", "three")).await.status, 202);

    // A budget with a reset time lifts by itself.
    s.control(
        reqwest::Method::PUT,
        "/sendgrid/rate-limit",
        Some(json!({ "remaining": 0, "reset_in": 1 })),
    )
    .await;
    let refused = s.mail(&mail("ada.example@example.test", "four")).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("retry-after"), Some("1"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(s.mail(&mail("ada.example@example.test", "five")).await.status, 202);

    let bad = s
        .control(
            reqwest::Method::PUT,
            "/sendgrid/rate-limit",
            Some(json!({ "remaining": -1 })),
        )
        .await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn an_injected_fault_still_carries_the_rate_limit_headers() {
    let s = start().await;
    let fault = json!({ "path": "/sendgrid/v3/mail/send", "action": { "kind": "status", "status": 503 } });
    assert_eq!(
        s.control(reqwest::Method::POST, "/faults", Some(fault)).await.status,
        201
    );
    let a = s.mail(&mail("ada.example@example.test", "x")).await;
    assert_eq!(a.status, 503);
    rate_headers(&a);
    assert!(s.inbox("").await.is_empty());
}

#[tokio::test]
async fn the_activity_api_finds_a_send_by_its_custom_arg() {
    let s = start().await;
    let mut top = mail("ada.example@example.test", "Top-level args");
    top["custom_args"] = json!({ "era_message_id": "msg-top" });
    let top_id = s.mail(&top).await.header("x-message-id").unwrap().to_owned();
    let mut per = mail("grace.sample@example.test", "Personalization args");
    per["personalizations"][0]["custom_args"] = json!({ "era_message_id": "msg-per" });
    let per_id = s.mail(&per).await.header("x-message-id").unwrap().to_owned();

    let found = s.activity("unique_args['era_message_id']=\"msg-top\"").await;
    assert_eq!(found.status, 200, "{}", found.text);
    rate_headers(&found);
    let messages = found.body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert!(m["msg_id"].as_str().unwrap().starts_with(&top_id), "{m}");
    assert_eq!(m["to_email"], "ada.example@example.test");
    assert_eq!(m["from_email"], "care@era-clinic.example.test");
    assert_eq!(m["subject"], "Top-level args");
    assert_eq!(m["status"], "delivered");
    assert!(chrono::DateTime::parse_from_rfc3339(m["last_event_time"].as_str().unwrap()).is_ok());

    let per_found = s.activity("unique_args['era_message_id']=\"msg-per\"").await;
    assert!(per_found.body["messages"][0]["msg_id"]
        .as_str()
        .unwrap()
        .starts_with(&per_id));
    let by_id = s.activity(&format!("msg_id LIKE '{per_id}%'")).await;
    assert_eq!(by_id.body["messages"].as_array().unwrap().len(), 1);

    let none = s.activity("unique_args['era_message_id']=\"msg-never\"").await;
    assert_eq!(none.body, json!({ "messages": [] }));
    let bad = s.activity("unique_args = \"x\"").await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["errors"][0]["field"], "query");
}

#[tokio::test]
async fn the_inbox_json_lists_each_recipient_newest_first() {
    let s = start().await;
    s.mail(&mail("ada.example@example.test", "First")).await;
    let mut two = mail("grace.sample@example.test", "Second for -name-");
    two["personalizations"][0]["cc"] = json!([{ "email": "alan.placeholder@example.test" }]);
    two["personalizations"][0]["substitutions"] = json!({ "-name-": "Grace" });
    let id = s.mail(&two).await.header("x-message-id").unwrap().to_owned();
    // SendGrid's own sandbox mode validates and acknowledges but never sends.
    let mut dry = mail("ada.example@example.test", "Dry run");
    dry["mail_settings"] = json!({ "sandbox_mode": { "enable": true } });
    let a = s.mail(&dry).await;
    assert_eq!(a.status, 200);
    assert!(a.header("x-message-id").is_none());

    let all = s.inbox("").await;
    let subjects: Vec<&str> = all.iter().map(|m| m["subject"].as_str().unwrap()).collect();
    assert_eq!(subjects, ["Second for Grace", "Second for Grace", "First"]);
    let grace = s.inbox("?to=GRACE.sample@example.test&channel=email").await;
    assert_eq!(grace.len(), 1);
    let m = &grace[0];
    assert!(m["id"].as_str().unwrap().starts_with(&id));
    assert_eq!(m["channel"], "email");
    assert_eq!(m["to"], "grace.sample@example.test");
    assert_eq!(m["from"], "care@era-clinic.example.test");
    assert_eq!(m["text"], "Your code is 314159.");
    assert_eq!(m["html"], "<p>Your code is <b>314159</b>.</p>");
    assert!(chrono::DateTime::parse_from_rfc3339(m["sent_at"].as_str().unwrap()).is_ok());
    assert_eq!(s.inbox("?to=alan.placeholder@example.test").await.len(), 1);
    assert_eq!(s.inbox("?limit=1").await[0]["to"], "alan.placeholder@example.test");
    assert!(s.inbox("?channel=sms").await.is_empty());
    let bad = s.control(reqwest::Method::GET, "/inbox.json?channel=fax", None).await;
    assert_eq!(bad.status, 400);

    // Reset empties the inbox and what the Activity API knows.
    assert_eq!(s.control(reqwest::Method::POST, "/reset", None).await.status, 204);
    assert!(s.inbox("").await.is_empty());
    assert_eq!(s.activity("").await.body, json!({ "messages": [] }));
}

#[tokio::test]
async fn the_inbox_page_escapes_what_it_shows() {
    let s = start().await;
    let mut evil = mail("ada.example@example.test", "<script>alert('x')</script>");
    evil["content"][1]["value"] = json!("<img src=x onerror=alert(1)><script>alert(2)</script>");
    s.mail(&evil).await;
    s.sms(&[
        ("To", "+15551230001"),
        ("From", "+15005550006"),
        ("Body", "Code <b>42</b> & more"),
    ])
    .await;
    let page = s.control(reqwest::Method::GET, "/inbox", None).await;
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    assert!(page
        .header("content-security-policy")
        .unwrap()
        .contains("default-src 'none'"));
    let html = &page.text;
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(!html.contains("<img src=x"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    assert!(html.contains("Code &lt;b&gt;42&lt;/b&gt; &amp; more"));
    assert!(html.contains("+15551230001"));
    // Newest first: the SMS comes before the email.
    assert!(html.find("+15551230001").unwrap() < html.find("ada.example@example.test").unwrap());
    assert!(!html.contains("src=\"http"), "no external assets");
}

// ---- Twilio ----

fn is_rfc2822(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| chrono::DateTime::parse_from_rfc2822(s).is_ok())
}

#[tokio::test]
async fn an_sms_is_queued_with_twilios_message_json() {
    let s = start().await;
    let a = s
        .sms(&[
            ("To", "+15551230001"),
            ("From", "+15005550006"),
            ("Body", "Your code is 271828"),
        ])
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert!(a.header("content-type").unwrap().starts_with("application/json"));
    let m = &a.body;
    let sid = m["sid"].as_str().unwrap();
    assert!(sid.starts_with("SM") && sid.len() == 34, "{sid}");
    assert!(sid[2..].bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(m["status"], "queued");
    assert_eq!(m["to"], "+15551230001");
    assert_eq!(m["from"], "+15005550006");
    assert_eq!(m["body"], "Your code is 271828");
    assert_eq!(m["account_sid"], DEFAULT_TWILIO_ACCOUNT_SID);
    assert_eq!(m["num_segments"], "1");
    assert_eq!(m["num_media"], "0");
    assert_eq!(m["direction"], "outbound-api");
    assert_eq!(m["api_version"], "2010-04-01");
    assert_eq!(m["error_code"], Value::Null);
    assert_eq!(m["date_sent"], Value::Null);
    assert!(is_rfc2822(&m["date_created"]) && is_rfc2822(&m["date_updated"]));
    assert_eq!(
        m["uri"],
        format!("/2010-04-01/Accounts/{DEFAULT_TWILIO_ACCOUNT_SID}/Messages/{sid}.json")
    );

    // The second owned number works too; a Messaging Service answers `accepted` with no sender yet.
    let owned = s
        .sms(&[("To", "+15551230001"), ("From", "+15555550100"), ("Body", "hi")])
        .await;
    assert_eq!(owned.status, 201);
    let mg = format!("MG{}", "a".repeat(32));
    let service = s
        .sms(&[
            ("To", "+15551230002"),
            ("MessagingServiceSid", &mg),
            ("Body", &"x".repeat(161)),
        ])
        .await;
    assert_eq!(service.status, 201, "{}", service.text);
    assert_eq!(service.body["status"], "accepted");
    assert_eq!(service.body["from"], Value::Null);
    assert_eq!(service.body["messaging_service_sid"], mg.as_str());
    assert_eq!(service.body["num_segments"], "2");

    let effects = s.effects("sms.sent").await;
    assert_eq!(effects.len(), 3);
    assert_eq!(effects[0]["object"], sid);
    assert!(
        !effects[0]["detail"].as_str().unwrap().contains("+1"),
        "no numbers in the ledger"
    );
    let sms = s.inbox("?channel=sms&to=%2B15551230001").await;
    assert_eq!(sms.len(), 2);
    assert_eq!(sms[1]["id"], sid);
    assert_eq!(sms[1]["text"], "Your code is 271828");
    assert_eq!(sms[1]["subject"], Value::Null);
}

#[tokio::test]
async fn magic_numbers_and_bad_requests_fail_with_twilios_codes() {
    let s = start().await;
    let cases: &[(&[(&str, &str)], u32)] = &[
        (
            &[("To", "+15551230001"), ("From", "+15005550001"), ("Body", "x")],
            21212,
        ),
        (
            &[("To", "+15551230001"), ("From", "+15005550007"), ("Body", "x")],
            21606,
        ),
        (
            &[("To", "+15551230001"), ("From", "+15551239999"), ("Body", "x")],
            21606,
        ),
        (
            &[("To", "+15005550001"), ("From", "+15005550006"), ("Body", "x")],
            21211,
        ),
        (
            &[("To", "+15005550002"), ("From", "+15005550006"), ("Body", "x")],
            21612,
        ),
        (
            &[("To", "+15005550004"), ("From", "+15005550006"), ("Body", "x")],
            21610,
        ),
        (
            &[("To", "+15005550009"), ("From", "+15005550006"), ("Body", "x")],
            21614,
        ),
        (&[("To", "555-0100"), ("From", "+15005550006"), ("Body", "x")], 21211),
        (&[("From", "+15005550006"), ("Body", "x")], 21604),
        (&[("To", "+15551230001"), ("Body", "x")], 21603),
        (&[("To", "+15551230001"), ("From", "+15005550006")], 21602),
        (
            &[
                ("To", "+15551230001"),
                ("From", "+15005550006"),
                ("Body", "x"),
                ("StatusCallback", "not a url"),
            ],
            21609,
        ),
    ];
    for (form, code) in cases {
        let a = s.sms(form).await;
        assert_eq!(a.status, 400, "{form:?}: {}", a.text);
        assert_eq!(a.body["code"], *code, "{form:?}: {}", a.text);
        assert_eq!(a.body["status"], 400);
        assert_eq!(
            a.body["more_info"],
            format!("https://www.twilio.com/docs/errors/{code}")
        );
        assert!(a.body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let long = "x".repeat(1601);
    let a = s
        .sms(&[("To", "+15551230001"), ("From", "+15005550006"), ("Body", &long)])
        .await;
    assert_eq!(a.body["code"], 21617);
    assert!(s.inbox("").await.is_empty(), "nothing failed was sent");
    assert!(s.effects("sms.sent").await.is_empty());
}

#[tokio::test]
async fn wrong_credentials_or_another_account_get_20003() {
    let s = start().await;
    let form = [("To", "+15551230001"), ("From", "+15005550006"), ("Body", "x")];
    let other = format!("AC{}", "1".repeat(32));
    let other_url = format!("{}/twilio/2010-04-01/Accounts/{other}/Messages.json", s.base);
    for req in [
        s.http.post(s.messages_url()).form(&form),
        s.http
            .post(s.messages_url())
            .basic_auth(DEFAULT_TWILIO_ACCOUNT_SID, Some("wrong-token"))
            .form(&form),
        s.http
            .post(&other_url)
            .basic_auth(&other, Some(DEFAULT_TWILIO_AUTH_TOKEN))
            .form(&form),
        s.http
            .post(&other_url)
            .basic_auth(DEFAULT_TWILIO_ACCOUNT_SID, Some(DEFAULT_TWILIO_AUTH_TOKEN))
            .form(&form),
        s.http.get(s.messages_url()).bearer_auth(DEFAULT_TWILIO_AUTH_TOKEN),
    ] {
        let a = s.send(req).await;
        assert_eq!(a.status, 401, "{}", a.text);
        assert_eq!(a.body["code"], 20003);
        assert_eq!(a.body["more_info"], "https://www.twilio.com/docs/errors/20003");
        assert!(a.header("www-authenticate").unwrap().starts_with("Basic"));
    }
}

#[tokio::test]
async fn messages_are_fetched_and_listed_with_filters_and_pages() {
    let s = start().await;
    let mut sids = Vec::new();
    for body in ["one", "two", "three"] {
        let a = s
            .sms(&[("To", "+15551230001"), ("From", "+15005550006"), ("Body", body)])
            .await;
        sids.push(a.body["sid"].as_str().unwrap().to_owned());
    }
    s.sms(&[("To", "+15551230002"), ("From", "+15005550006"), ("Body", "other")])
        .await;
    let base = format!("/2010-04-01/Accounts/{DEFAULT_TWILIO_ACCOUNT_SID}/Messages");

    let fetched = s.twilio_get(&format!("{base}/{}.json", sids[0])).await;
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.body["body"], "one");
    let missing = s.twilio_get(&format!("{base}/SM{}.json", "0".repeat(32))).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["code"], 20404);

    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let first = s
        .twilio_get(&format!(
            "{base}.json?To=%2B15551230001&DateSent%3E={yesterday}&PageSize=2"
        ))
        .await;
    assert_eq!(first.status, 200, "{}", first.text);
    let bodies = |a: &Answer| -> Vec<String> {
        a.body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["body"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(bodies(&first), ["three", "two"], "newest first");
    assert_eq!(first.body["page"], 0);
    assert_eq!(first.body["page_size"], 2);
    assert_eq!(first.body["start"], 0);
    assert_eq!(first.body["previous_page_uri"], Value::Null);
    let next = first.body["next_page_uri"].as_str().unwrap().to_owned();
    assert!(next.starts_with(&format!("{base}.json?")), "{next}");
    let second = s.twilio_get(&next).await;
    assert_eq!(bodies(&second), ["one"]);
    assert_eq!(second.body["page"], 1);
    assert_eq!(second.body["next_page_uri"], Value::Null);

    // twilio-python's raw `DateSent<` and `DateSent>` keys, and the exact day.
    let day = s.twilio_get(&format!("{base}.json?DateSent={today}")).await;
    assert_eq!(bodies(&day).len(), 4);
    let before = s.twilio_get(&format!("{base}.json?DateSent<={yesterday}")).await;
    assert!(bodies(&before).is_empty());
    let after = s
        .twilio_get(&format!("{base}.json?DateSent>={today}&From=%2B15005550006"))
        .await;
    assert_eq!(bodies(&after), ["other", "three", "two", "one"]);
    let bad = s.twilio_get(&format!("{base}.json?DateSent>=soon")).await;
    assert_eq!(bad.status, 400);
}

/// One status callback: its `X-Twilio-Signature` and its form fields.
type Callback = (String, Vec<(String, String)>);

/// Status callbacks as a tiny receiver got them.
#[derive(Clone, Default)]
struct Callbacks(Arc<Mutex<Vec<Callback>>>);

impl Callbacks {
    async fn start() -> (String, Callbacks) {
        let got = Callbacks::default();
        let app = Router::new()
            .route(
                "/twilio/status",
                post(
                    |State(got): State<Callbacks>, headers: HeaderMap, Form(form): Form<Vec<(String, String)>>| async move {
                        let signature = headers
                            .get("x-twilio-signature")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        got.0.lock().unwrap().push((signature, form));
                        axum::http::StatusCode::NO_CONTENT
                    },
                ),
            )
            .with_state(got.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/twilio/status?tenant=demo", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, got)
    }

    async fn wait_for(&self, n: usize) -> Vec<Callback> {
        let started = Instant::now();
        loop {
            let got = self.0.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "expected {n} callbacks, got {}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Twilio's scheme, written independently of the sandbox: base64(HMAC-SHA1(token, URL + each
/// parameter's name and value, sorted by name)).
fn twilio_signature_ok(signature: &str, url: &str, form: &[(String, String)]) -> bool {
    let mut sorted = form.to_vec();
    sorted.sort();
    let mut data = url.to_owned();
    for (k, v) in sorted {
        data.push_str(&k);
        data.push_str(&v);
    }
    let mut mac = Hmac::<Sha1>::new_from_slice(DEFAULT_TWILIO_AUTH_TOKEN.as_bytes()).unwrap();
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()) == signature
}

#[tokio::test]
async fn status_callbacks_are_signed_and_arrive_sent_then_delivered() {
    let s = start().await;
    let (url, callbacks) = Callbacks::start().await;
    let a = s
        .sms(&[
            ("To", "+15551230001"),
            ("From", "+15005550006"),
            ("Body", "Your visit is confirmed"),
            ("StatusCallback", &url),
        ])
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let sid = a.body["sid"].as_str().unwrap().to_owned();

    let got = callbacks.wait_for(2).await;
    let field = |form: &[(String, String)], key: &str| {
        form.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let statuses: Vec<String> = got.iter().map(|(_, f)| field(f, "MessageStatus")).collect();
    assert_eq!(statuses, ["sent", "delivered"]);
    for (signature, form) in &got {
        assert!(twilio_signature_ok(signature, &url, form), "{signature} {form:?}");
        assert!(!twilio_signature_ok(signature, "http://elsewhere.test/", form));
        assert_eq!(field(form, "MessageSid"), sid);
        assert_eq!(field(form, "SmsSid"), sid);
        assert_eq!(field(form, "AccountSid"), DEFAULT_TWILIO_ACCOUNT_SID);
        assert_eq!(field(form, "From"), "+15005550006");
        assert_eq!(field(form, "To"), "+15551230001");
        assert_eq!(field(form, "ApiVersion"), "2010-04-01");
        assert_eq!(field(form, "SmsStatus"), field(form, "MessageStatus"));
    }

    let fetched = s
        .twilio_get(&format!(
            "/2010-04-01/Accounts/{DEFAULT_TWILIO_ACCOUNT_SID}/Messages/{sid}.json"
        ))
        .await;
    assert_eq!(fetched.body["status"], "delivered");
    assert!(is_rfc2822(&fetched.body["date_sent"]));
    assert!(fetched.body["price"].as_str().is_some_and(|p| p.starts_with('-')));
}

#[tokio::test]
async fn an_unreachable_callback_does_not_disturb_the_send() {
    let s = start().await;
    let a = s
        .sms(&[
            ("To", "+15551230001"),
            ("From", "+15005550006"),
            ("Body", "hello"),
            ("StatusCallback", "http://127.0.0.1:9/nowhere"),
        ])
        .await;
    assert_eq!(a.status, 201);
    let sid = a.body["sid"].as_str().unwrap().to_owned();
    let path = format!("/2010-04-01/Accounts/{DEFAULT_TWILIO_ACCOUNT_SID}/Messages/{sid}.json");
    let started = Instant::now();
    while s.twilio_get(&path).await.body["status"] != "delivered" {
        assert!(started.elapsed() < Duration::from_secs(10), "never delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
