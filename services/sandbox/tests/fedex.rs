//! The FedEx simulator over real HTTP: API Authorization and its errors, the Track API's answer for
//! several numbers at once in FedEx's shape, an unknown number answered 200 with its error inside,
//! 401 without a token or with an expired one, the throttle's 429, the 30-number ceiling, a
//! pharmacy order that ships becoming trackable, parcels advanced through every status (and a
//! delivery exception) at `/_sandbox/fedex`, ledger effects, and reset.

use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use era_sandbox::{
    state::{DEFAULT_FEDEX_CLIENT_ID, DEFAULT_FEDEX_CLIENT_SECRET},
    LifeFileAccount, Sandbox,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

struct Running {
    base: String,
    http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// One answer: status and JSON body.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    content_type: String,
    body: Value,
}

impl Answer {
    #[track_caller]
    fn expect(self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.body);
        self.body
    }

    /// FedEx's error envelope: checks its shape and gives `(code, message)`.
    #[track_caller]
    fn fedex_error(&self, status: u16) -> (String, String) {
        assert_eq!(self.status, status, "{}", self.body);
        assert!(
            self.content_type.starts_with("application/json"),
            "{}",
            self.content_type
        );
        let id = self.body["transactionId"].as_str().expect("a transactionId");
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
        let errors = self.body["errors"].as_array().expect("errors[]");
        assert_eq!(errors.len(), 1, "{}", self.body);
        let message = errors[0]["message"].as_str().unwrap().to_owned();
        assert!(!message.is_empty());
        (errors[0]["code"].as_str().unwrap().to_owned(), message)
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

/// A Track API body for these numbers, with detailed scans.
fn track_body(numbers: &[&str]) -> Value {
    let infos: Vec<Value> = numbers
        .iter()
        .map(|n| json!({ "trackingNumberInfo": { "trackingNumber": n } }))
        .collect();
    json!({ "includeDetailedScans": true, "trackingInfo": infos })
}

/// A FedEx date-time (`2024-04-26T09:26:00-07:00`).
#[track_caller]
fn time(v: &Value) -> DateTime<FixedOffset> {
    let s = v.as_str().unwrap_or_else(|| panic!("not a date: {v}"));
    DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// The `dateAndTimes` entry of this type.
fn date_of<'a>(result: &'a Value, kind: &str) -> Option<&'a Value> {
    result["dateAndTimes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["type"] == kind)
        .map(|d| &d["dateTime"])
}

/// `(eventType, derivedStatusCode)` of each scan event, as listed.
fn scans(result: &Value) -> Vec<(String, String)> {
    result["scanEvents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["eventType"].as_str().unwrap().to_owned(),
                e["derivedStatusCode"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[track_caller]
fn assert_newest_first(result: &Value) {
    let dates: Vec<_> = result["scanEvents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| time(&e["date"]))
        .collect();
    assert!(dates.windows(2).all(|w| w[0] > w[1]), "newest first: {dates:?}");
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
}

impl Running {
    async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            content_type,
            body,
        }
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> Answer {
        self.send(self.http.post(format!("{}/fedex/oauth/token", self.base)).form(form))
            .await
    }

    async fn token(&self) -> String {
        let body = self
            .token_request(&[
                ("grant_type", "client_credentials"),
                ("client_id", DEFAULT_FEDEX_CLIENT_ID),
                ("client_secret", DEFAULT_FEDEX_CLIENT_SECRET),
            ])
            .await
            .expect(200);
        body["access_token"].as_str().unwrap().to_owned()
    }

    fn track_request(&self, token: Option<&str>, body: &Value) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .post(format!("{}/fedex/track/v1/trackingnumbers", self.base))
            .header("X-locale", "en_US")
            .json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req
    }

    async fn track(&self, token: &str, numbers: &[&str]) -> Answer {
        self.send(self.track_request(Some(token), &track_body(numbers))).await
    }

    /// The single `trackResults[0]` for one number.
    async fn track_one(&self, token: &str, number: &str) -> Value {
        let body = self.track(token, &[number]).await.expect(200);
        let complete = &body["output"]["completeTrackResults"];
        assert_eq!(complete.as_array().unwrap().len(), 1);
        assert_eq!(complete[0]["trackingNumber"], number);
        complete[0]["trackResults"][0].clone()
    }

    async fn control(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}/_sandbox{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Registers a parcel at `status` (a new number); its tracking number.
    async fn register(&self, status: &str) -> String {
        let (code, v) = self
            .control(Method::POST, "/fedex/shipments", Some(json!({ "status": status })))
            .await;
        assert_eq!(code, 201, "{v}");
        assert_eq!(v["status"], status);
        v["trackingNumber"].as_str().unwrap().to_owned()
    }

    async fn advance(&self, number: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.control(Method::POST, &format!("/fedex/shipments/{number}/advance"), body)
            .await
    }

    async fn effects(&self, kind: &str) -> Vec<Value> {
        let (_, v) = self.control(Method::GET, "/ledger?vendor=fedex", None).await;
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["method"] == "EFFECT" && e["path"] == kind)
            .cloned()
            .collect()
    }
}

#[tokio::test]
async fn a_token_is_issued_for_the_projects_credentials() {
    let s = start().await;
    let a = s
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_id", DEFAULT_FEDEX_CLIENT_ID),
            ("client_secret", DEFAULT_FEDEX_CLIENT_SECRET),
        ])
        .await;
    assert!(a.content_type.starts_with("application/json"), "{}", a.content_type);
    let body = a.expect(200);
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 4, "{body}");
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["scope"], "CXS");
    let first = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(first.split('.').count(), 3, "JWT-shaped");

    // No refresh token, and several tokens are valid at once.
    let second = s.token().await;
    assert_ne!(first, second);
    for token in [&first, &second] {
        s.track(token, &["794600000000"]).await.expect(200);
    }
    let (_, tokens) = s.control(Method::GET, "/fedex/tokens", None).await;
    assert_eq!(tokens, json!({ "issued": 2, "valid": 2 }));
    let issued = s.effects("token.issued").await;
    assert_eq!(issued.len(), 2);
    assert!(issued
        .iter()
        .all(|e| !e.to_string().contains(DEFAULT_FEDEX_CLIENT_SECRET)));
}

#[tokio::test]
async fn a_wrong_secret_or_grant_type_gets_fedexs_error_envelope() {
    let s = start().await;
    let wrong_secret = s
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_id", DEFAULT_FEDEX_CLIENT_ID),
            ("client_secret", "not-the-secret"),
        ])
        .await;
    let (code, message) = wrong_secret.fedex_error(401);
    assert_eq!(code, "NOT.AUTHORIZED.ERROR");
    assert!(message.contains("client credentials"), "{message}");

    let wrong_id = s
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_id", "someone-else"),
            ("client_secret", DEFAULT_FEDEX_CLIENT_SECRET),
        ])
        .await;
    assert_eq!(wrong_id.fedex_error(401).0, "NOT.AUTHORIZED.ERROR");

    let wrong_grant = s
        .token_request(&[
            ("grant_type", "password"),
            ("client_id", DEFAULT_FEDEX_CLIENT_ID),
            ("client_secret", DEFAULT_FEDEX_CLIENT_SECRET),
        ])
        .await;
    let (code, message) = wrong_grant.fedex_error(400);
    assert_eq!(code, "BAD.REQUEST.ERROR");
    assert!(message.contains("grant_type"), "{message}");

    let missing = s
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_id", DEFAULT_FEDEX_CLIENT_ID),
        ])
        .await;
    assert_eq!(
        missing.fedex_error(400),
        (
            "BAD.REQUEST.ERROR".to_owned(),
            "Missing or duplicate parameters. Please modify your request and try again.".to_owned()
        )
    );

    // A parent-child grant: the project has no child credentials to present.
    let child = s
        .token_request(&[
            ("grant_type", "csp_credentials"),
            ("client_id", DEFAULT_FEDEX_CLIENT_ID),
            ("client_secret", DEFAULT_FEDEX_CLIENT_SECRET),
            ("child_key", "child"),
            ("child_secret", "child-secret"),
        ])
        .await;
    assert_eq!(child.fedex_error(401).0, "NOT.AUTHORIZED.ERROR");

    // JSON is not the token endpoint's format: nothing it needs is found.
    let as_json = s
        .send(s.http.post(format!("{}/fedex/oauth/token", s.base)).json(&json!({
            "grant_type": "client_credentials",
            "client_id": DEFAULT_FEDEX_CLIENT_ID,
            "client_secret": DEFAULT_FEDEX_CLIENT_SECRET,
        })))
        .await;
    assert_eq!(as_json.fedex_error(400).0, "BAD.REQUEST.ERROR");

    let (_, tokens) = s.control(Method::GET, "/fedex/tokens", None).await;
    assert_eq!(tokens["issued"], 0, "no refusal issued a token");
    assert!(s.effects("token.issued").await.is_empty());
}

#[tokio::test]
async fn several_numbers_are_tracked_in_one_call_in_fedexs_shape() {
    let s = start().await;
    let token = s.token().await;
    let label = s.register("label_created").await;
    let moving = s.register("in_transit").await;
    let delivered = s.register("delivered").await;

    let a = s
        .send(
            s.track_request(Some(&token), &track_body(&[&moving, &label, &delivered]))
                .header("x-customer-transaction-id", "era-fulfilment-42"),
        )
        .await;
    assert!(a.content_type.starts_with("application/json"), "{}", a.content_type);
    let body = a.expect(200);
    assert!(uuid::Uuid::parse_str(body["transactionId"].as_str().unwrap()).is_ok());
    assert_eq!(body["customerTransactionId"], "era-fulfilment-42");
    let complete = body["output"]["completeTrackResults"].as_array().unwrap();
    let order: Vec<&str> = complete.iter().map(|c| c["trackingNumber"].as_str().unwrap()).collect();
    assert_eq!(
        order,
        [moving.as_str(), label.as_str(), delivered.as_str()],
        "in the order asked"
    );

    // In transit: picked up, estimated, scans newest first.
    let r = &complete[0]["trackResults"][0];
    assert_eq!(r["trackingNumberInfo"]["trackingNumber"], moving.as_str());
    assert_eq!(r["trackingNumberInfo"]["carrierCode"], "FDXE");
    assert!(r["trackingNumberInfo"]["trackingNumberUniqueId"]
        .as_str()
        .unwrap()
        .contains(&format!("~{moving}~")));
    assert!(r.get("error").is_none());
    let latest = &r["latestStatusDetail"];
    assert_eq!(
        (
            &latest["code"],
            &latest["derivedCode"],
            &latest["statusByLocale"],
            &latest["description"]
        ),
        (&json!("IT"), &json!("IT"), &json!("In transit"), &json!("In transit"))
    );
    assert_eq!(latest["scanLocation"]["stateOrProvinceCode"], "IN");
    assert_eq!(scans(r), pairs(&[("IT", "IT"), ("PU", "PU"), ("OC", "IN")]));
    assert_newest_first(r);
    let first = &r["scanEvents"][0];
    for key in [
        "date",
        "eventType",
        "eventDescription",
        "exceptionCode",
        "exceptionDescription",
        "scanLocation",
        "locationType",
        "derivedStatusCode",
        "derivedStatus",
    ] {
        assert!(first.get(key).is_some(), "scan event lacks {key}: {first}");
    }
    assert_eq!(first["locationType"], "FEDEX_FACILITY");
    assert_eq!(first["scanLocation"]["countryCode"], "US");
    let pickup = time(date_of(r, "ACTUAL_PICKUP").expect("ACTUAL_PICKUP"));
    let estimated = time(date_of(r, "ESTIMATED_DELIVERY").expect("ESTIMATED_DELIVERY"));
    assert!(date_of(r, "ACTUAL_DELIVERY").is_none());
    let window = &r["estimatedDeliveryTimeWindow"]["window"];
    let (begins, ends) = (time(&window["begins"]), time(&window["ends"]));
    assert!(pickup < begins && begins < ends, "{pickup} {begins} {ends}");
    assert_eq!(ends, estimated);
    assert_eq!(r["serviceDetail"]["type"], "PRIORITY_OVERNIGHT");

    // Label created: FedEx has the shipper's information only.
    let r = &complete[1]["trackResults"][0];
    let latest = &r["latestStatusDetail"];
    assert_eq!(
        (&latest["code"], &latest["derivedCode"], &latest["statusByLocale"]),
        (&json!("OC"), &json!("IN"), &json!("Initiated"))
    );
    assert_eq!(scans(r), pairs(&[("OC", "IN")]));
    assert_eq!(r["scanEvents"][0]["locationType"], "CUSTOMER");
    assert!(date_of(r, "ACTUAL_PICKUP").is_none());
    assert_eq!(r["estimatedDeliveryTimeWindow"], json!({ "window": {} }));
    assert_eq!(r["serviceCommitMessage"]["type"], "SHIPMENT_LABEL_CREATED");

    // Delivered: the actual time, no estimate left.
    let r = &complete[2]["trackResults"][0];
    assert_eq!(r["latestStatusDetail"]["code"], "DL");
    assert!(date_of(r, "ACTUAL_DELIVERY").is_some());
    assert!(date_of(r, "ESTIMATED_DELIVERY").is_none());
    assert_eq!(r["estimatedDeliveryTimeWindow"], json!({ "window": {} }));

    let requests = s.effects("track.request").await;
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["detail"], "3 numbers, 3 found");

    // Without detailed scans the parcel is still described, its scans left out.
    let summary = s
        .send(s.track_request(
            Some(&token),
            &json!({
                "includeDetailedScans": false,
                "trackingInfo": [{ "trackingNumberInfo": { "trackingNumber": moving } }],
            }),
        ))
        .await
        .expect(200);
    let r = &summary["output"]["completeTrackResults"][0]["trackResults"][0];
    assert_eq!(r["latestStatusDetail"]["code"], "IT");
    assert_eq!(r["scanEvents"], json!([]));
    assert!(summary.get("customerTransactionId").is_none(), "echoed only when sent");
}

#[tokio::test]
async fn an_unknown_number_is_answered_200_with_its_error_inside() {
    let s = start().await;
    let token = s.token().await;
    let known = s.register("picked_up").await;
    let body = s.track(&token, &["123456789012", &known]).await.expect(200);
    let complete = body["output"]["completeTrackResults"].as_array().unwrap();
    assert_eq!(complete.len(), 2);
    assert_eq!(complete[0]["trackingNumber"], "123456789012");
    let missing = &complete[0]["trackResults"][0];
    assert_eq!(missing["error"]["code"], "TRACKING.TRACKINGNUMBER.NOTFOUND");
    assert!(!missing["error"]["message"].as_str().unwrap().is_empty());
    assert_eq!(missing["trackingNumberInfo"]["trackingNumber"], "123456789012");
    assert!(missing.get("latestStatusDetail").is_none());
    assert_eq!(complete[1]["trackResults"][0]["latestStatusDetail"]["code"], "PU");
    assert_eq!(s.effects("track.request").await[0]["detail"], "2 numbers, 1 found");
}

#[tokio::test]
async fn a_missing_forged_or_expired_token_is_refused_401() {
    let s = start().await;
    let body = track_body(&["794600000000"]);

    let none = s
        .send(s.track_request(None, &body).header("x-customer-transaction-id", "t-1"))
        .await;
    assert_eq!(none.fedex_error(401).0, "NOT.AUTHORIZED.ERROR");
    assert_eq!(none.body["customerTransactionId"], "t-1", "echoed on errors too");

    let forged = s.send(s.track_request(Some("eyJhbGciOi.forged.token"), &body)).await;
    assert_eq!(forged.fedex_error(401).0, "NOT.AUTHORIZED.ERROR");

    let token = s.token().await;
    s.track(&token, &["794600000000"]).await.expect(200);
    let (code, _) = s.control(Method::POST, "/fedex/expire-tokens", None).await;
    assert_eq!(code, 204);
    let expired = s.track(&token, &["794600000000"]).await;
    let (code, message) = expired.fedex_error(401);
    assert_eq!(code, "NOT.AUTHORIZED.ERROR");
    assert!(message.to_lowercase().contains("expired"), "{message}");
    let (_, tokens) = s.control(Method::GET, "/fedex/tokens", None).await;
    assert_eq!(tokens, json!({ "issued": 1, "valid": 0 }));

    // A new token works again; no refused call reached the tracking.
    let fresh = s.token().await;
    s.track(&fresh, &["794600000000"]).await.expect(200);
    assert_eq!(s.effects("track.request").await.len(), 2);
}

#[tokio::test]
async fn the_throttle_answers_429_until_its_window_is_up() {
    let s = start().await;
    let token = s.token().await;
    let (_, limits) = s.control(Method::GET, "/fedex/limits", None).await;
    assert_eq!(limits, json!({ "requests_per_window": 1400, "window_secs": 10 }));
    let (code, limits) = s
        .control(
            Method::PUT,
            "/fedex/limits",
            Some(json!({ "requests_per_window": 2, "window_secs": 1 })),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(limits, json!({ "requests_per_window": 2, "window_secs": 1 }));

    s.track(&token, &["794600000000"]).await.expect(200);
    s.track(&token, &["794600000000"]).await.expect(200);
    let refused = s
        .send(
            s.track_request(Some(&token), &track_body(&["794600000000"]))
                .header("x-customer-transaction-id", "t-429"),
        )
        .await;
    let (code, message) = refused.fedex_error(429);
    assert_eq!(code, "TOO.MANY.REQUESTS.ERROR");
    assert!(message.contains("too many requests"), "{message}");
    assert_eq!(refused.body["customerTransactionId"], "t-429");
    assert_eq!(
        s.effects("track.request").await.len(),
        2,
        "a refused request tracks nothing"
    );

    tokio::time::sleep(Duration::from_millis(1100)).await;
    s.track(&token, &["794600000000"]).await.expect(200);

    // The sandbox's fault injection answers in FedEx's envelope too.
    let (code, _) = s
        .control(
            Method::POST,
            "/faults",
            Some(json!({ "path": "/fedex/track/", "action": { "kind": "status", "status": 429 } })),
        )
        .await;
    assert_eq!(code, 201);
    let injected = s.track(&token, &["794600000000"]).await;
    assert_eq!(injected.fedex_error(429).0, "TOO.MANY.REQUESTS.ERROR");

    let (code, _) = s
        .control(Method::PUT, "/fedex/limits", Some(json!({ "window_secs": 0 })))
        .await;
    assert_eq!(code, 400);
}

#[tokio::test]
async fn more_than_thirty_numbers_are_refused() {
    let s = start().await;
    let token = s.token().await;
    let numbers: Vec<String> = (0..31).map(|i| format!("7946000000{i:02}")).collect();
    let refs: Vec<&str> = numbers.iter().map(String::as_str).collect();

    let over = s.track(&token, &refs).await;
    let (code, message) = over.fedex_error(400);
    assert_eq!(code, "BAD.REQUEST.ERROR");
    assert!(message.contains("30"), "{message}");

    let thirty = s.track(&token, &refs[..30]).await.expect(200);
    let complete = thirty["output"]["completeTrackResults"].as_array().unwrap();
    assert_eq!(complete.len(), 30);
    assert!(complete
        .iter()
        .all(|c| c["trackResults"][0]["error"]["code"] == "TRACKING.TRACKINGNUMBER.NOTFOUND"));

    let none = s.track(&token, &[]).await;
    assert_eq!(none.fedex_error(400).0, "TRACKING.TRACKINGNUMBER.EMPTY");
    let blank = s.track(&token, &["794600000000", ""]).await;
    assert_eq!(blank.fedex_error(400).0, "TRACKING.TRACKINGNUMBER.EMPTY");
    let not_json = s
        .send(
            s.http
                .post(format!("{}/fedex/track/v1/trackingnumbers", s.base))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body("{"),
        )
        .await;
    assert_eq!(not_json.fedex_error(400).0, "BAD.REQUEST.ERROR");
    assert_eq!(s.effects("track.request").await.len(), 1, "only the 30 were tracked");
}

/// A Boothwyn (LifeFile) order shipping to Colorado, by Dr Singh.
fn lifefile_order(reference: &str) -> Value {
    json!({
        "message": { "id": format!("msg-{reference}"), "sentTime": "2026-01-05T10:00:00Z" },
        "order": {
            "general": { "memo": "", "referenceId": reference },
            "prescriber": {
                "npi": "1164633533", "licenseState": "CO", "licenseNumber": "DEMO-MD-CO",
                "firstName": "Neelima", "lastName": "Singh", "phone": "(555) 555-0100",
                "email": "neelima@example.test"
            },
            "practice": { "id": 1001 },
            "patient": {
                "firstName": "Pat", "lastName": "Example", "gender": "f", "dateOfBirth": "1985-04-12",
                "address1": "1 Main St", "address2": "", "city": "Denver", "state": "CO", "zip": "80202",
                "country": "US", "phoneMobile": "(555) 555-0100", "email": "pat@example.test"
            },
            "shipping": {
                "recipientType": "patient", "recipientFirstName": "Pat", "recipientLastName": "Example",
                "recipientPhone": "(555) 555-0100", "recipientEmail": "pat@example.test",
                "addressLine1": "1 Main St", "addressLine2": "", "city": "Denver", "state": "CO",
                "zipCode": "80202", "country": "US", "service": 7
            },
            "billing": { "payorType": "doc" },
            "rxs": [{
                "rxType": "new", "drugName": "Compounded semaglutide injection", "drugStrength": "2.5mg/mL",
                "drugForm": "injection", "lfProductID": 4410, "foreignRxNumber": format!("rx-{reference}"),
                "quantity": "2", "quantityUnits": "mL",
                "directions": "Inject 0.1 mL (0.25 mg) under the skin once weekly",
                "refills": 2, "dateWritten": "2026-01-05", "daysSupply": 28
            }]
        }
    })
}

#[tokio::test]
async fn a_pharmacy_order_that_ships_is_trackable_at_fedex() {
    let s = start().await;
    let token = s.token().await;
    let a = LifeFileAccount::boothwyn();
    let placed = s
        .send(
            s.http
                .post(format!("{}/boothwyn/lfapi/v1/order", s.base))
                .basic_auth(&a.username, Some(&a.password))
                .header("X-Vendor-ID", &a.vendor_id)
                .header("X-Location-ID", &a.location_id)
                .header("X-API-Network-ID", &a.network_id)
                .json(&lifefile_order("ref-fedex-1")),
        )
        .await
        .expect(200);
    let order_id = placed["data"]["orderId"].as_u64().unwrap().to_string();
    let advance = |status: &'static str| {
        let path = format!("/pharmacy/boothwyn/orders/{order_id}/advance");
        let s = &s;
        async move {
            let (code, v) = s.control(Method::POST, &path, Some(json!({ "status": status }))).await;
            assert_eq!(code, 200, "{v}");
            v
        }
    };
    advance("processing").await;
    let (_, fedex) = s.control(Method::GET, "/fedex/shipments", None).await;
    assert_eq!(fedex["shipments"], json!([]), "nothing to track before it ships");

    let shipped = advance("shipped").await;
    assert_eq!(shipped["carrier"], "fedex");
    let number = shipped["trackingNumber"].as_str().unwrap().to_owned();
    let r = s.track_one(&token, &number).await;
    assert!(r.get("error").is_none(), "{r}");
    assert_eq!(r["latestStatusDetail"]["code"], "PU");
    assert_eq!(scans(&r), pairs(&[("PU", "PU"), ("OC", "IN")]));
    assert!(date_of(&r, "ACTUAL_PICKUP").is_some());
    let (_, fedex) = s.control(Method::GET, "/fedex/shipments", None).await;
    assert_eq!(fedex["shipments"][0]["trackingNumber"], number.as_str());
    assert_eq!(fedex["shipments"][0]["source"], "pharmacy:boothwyn");
    // FedEx is told nothing about who the parcel is for.
    assert!(!fedex.to_string().contains("Example") && !fedex.to_string().contains("80202"));
    let registered = s.effects("shipment.registered").await;
    assert_eq!(registered.len(), 1);
    assert_eq!(registered[0]["object"], number.as_str());
    assert_eq!(registered[0]["detail"], "picked_up");

    // Delivered at the pharmacy is delivered at FedEx.
    advance("delivered").await;
    let r = s.track_one(&token, &number).await;
    assert_eq!(r["latestStatusDetail"]["code"], "DL");
    assert_eq!(
        scans(&r),
        pairs(&[("DL", "DL"), ("OD", "IT"), ("IT", "IT"), ("PU", "PU"), ("OC", "IN")])
    );
    assert!(date_of(&r, "ACTUAL_DELIVERY").is_some());
}

#[tokio::test]
async fn advancing_walks_a_parcel_through_every_status_to_delivered() {
    let s = start().await;
    let token = s.token().await;
    let number = s.register("label_created").await;

    let steps = [
        ("picked_up", ("PU", "PU", "Picked up", "Picked up")),
        ("in_transit", ("IT", "IT", "In transit", "In transit")),
        // FedEx derives "in transit" for a parcel on its vehicle; only `code` says OD.
        (
            "out_for_delivery",
            ("OD", "IT", "In transit", "On FedEx vehicle for delivery"),
        ),
        ("delivered", ("DL", "DL", "Delivered", "Delivered")),
    ];
    let mut expected_scans = vec![("OC".to_owned(), "IN".to_owned())];
    for (status, (code, derived, by_locale, description)) in steps {
        let (http, view) = s.advance(&number, None).await;
        assert_eq!(http, 200, "{view}");
        assert_eq!(view["status"], status);
        let r = s.track_one(&token, &number).await;
        let latest = &r["latestStatusDetail"];
        assert_eq!(latest["code"], code, "{status}");
        assert_eq!(latest["derivedCode"], derived, "{status}");
        assert_eq!(latest["statusByLocale"], by_locale, "{status}");
        assert_eq!(latest["description"], description, "{status}");
        let scan = &r["scanEvents"][0];
        assert_eq!(scan["eventType"], code);
        assert_eq!(scan["derivedStatusCode"], derived);
        expected_scans.insert(0, (code.to_owned(), derived.to_owned()));
        assert_eq!(scans(&r), expected_scans, "{status}: one scan per step, newest first");
        assert_newest_first(&r);
        if status == "delivered" {
            let delivered = time(date_of(&r, "ACTUAL_DELIVERY").expect("ACTUAL_DELIVERY"));
            assert_eq!(delivered, time(&scan["date"]), "delivered when the DL scan says");
            assert!(date_of(&r, "ESTIMATED_DELIVERY").is_none());
            assert_eq!(r["deliveryDetails"]["locationType"], "RESIDENCE");
            assert_eq!(r["deliveryDetails"]["deliveryAttempts"], "0");
            assert_eq!(r["availableNotifications"], json!(["ON_DELIVERY"]));
            assert!(view["deliveredAt"].is_string());
        } else {
            let window = &r["estimatedDeliveryTimeWindow"]["window"];
            assert!(time(&window["begins"]) < time(&window["ends"]), "{status}: {window}");
            assert!(date_of(&r, "ACTUAL_DELIVERY").is_none());
            assert!(view["estimatedDelivery"]["ends"].is_string());
        }
        assert!(time(date_of(&r, "ACTUAL_PICKUP").unwrap()) <= time(&r["scanEvents"][0]["date"]));
    }

    // Nothing comes after delivery.
    let (http, v) = s.advance(&number, None).await;
    assert_eq!(http, 409, "{v}");
    let (http, _) = s.advance(&number, Some(json!({ "to": "exception" }))).await;
    assert_eq!(http, 409);
    let advanced = s.effects("shipment.advanced").await;
    let details: Vec<&str> = advanced.iter().map(|e| e["detail"].as_str().unwrap()).collect();
    assert_eq!(details, ["picked_up", "in_transit", "out_for_delivery", "delivered"]);
    assert!(advanced.iter().all(|e| e["object"] == number.as_str()));

    // `to` takes every step between at once, each its own scan.
    let other = s.register("label_created").await;
    let (http, view) = s.advance(&other, Some(json!({ "to": "delivered" }))).await;
    assert_eq!(http, 200, "{view}");
    let r = s.track_one(&token, &other).await;
    assert_eq!(
        scans(&r),
        pairs(&[("DL", "DL"), ("OD", "IT"), ("IT", "IT"), ("PU", "PU"), ("OC", "IN")])
    );
    assert_newest_first(&r);
}

#[tokio::test]
async fn a_delivery_exception_is_reattempted_then_delivered() {
    let s = start().await;
    let token = s.token().await;
    let number = s.register("in_transit").await;
    let before = s.track_one(&token, &number).await;
    let first_estimate = time(date_of(&before, "ESTIMATED_DELIVERY").unwrap());

    let (http, view) = s.advance(&number, Some(json!({ "to": "exception" }))).await;
    assert_eq!(http, 200, "{view}");
    assert_eq!(view["status"], "exception");
    let r = s.track_one(&token, &number).await;
    let latest = &r["latestStatusDetail"];
    assert_eq!(
        (&latest["code"], &latest["derivedCode"], &latest["statusByLocale"]),
        (&json!("DE"), &json!("DE"), &json!("Delivery exception"))
    );
    assert_eq!(latest["ancillaryDetails"][0]["reason"], "007");
    assert_eq!(latest["delayDetail"]["status"], "DELAYED");
    assert_eq!(
        scans(&r),
        pairs(&[("DE", "DE"), ("OD", "IT"), ("IT", "IT"), ("PU", "PU"), ("OC", "IN")]),
        "it went out for delivery first"
    );
    let de = &r["scanEvents"][0];
    assert_eq!(de["exceptionCode"], "007");
    assert_eq!(de["exceptionDescription"], "Customer not available or business closed");
    let moved = time(date_of(&r, "ESTIMATED_DELIVERY").unwrap());
    assert!(
        moved >= first_estimate,
        "the re-attempt is no sooner: {first_estimate} {moved}"
    );
    assert_eq!(r["deliveryDetails"]["deliveryAttempts"], "1");

    // The next step is going out again, then delivery.
    let (_, view) = s.advance(&number, None).await;
    assert_eq!(view["status"], "out_for_delivery");
    let (http, _) = s.advance(&number, Some(json!({ "to": "in_transit" }))).await;
    assert_eq!(http, 409, "no going back");
    let (_, view) = s.advance(&number, None).await;
    assert_eq!(view["status"], "delivered");
    let r = s.track_one(&token, &number).await;
    assert_eq!(r["latestStatusDetail"]["code"], "DL");
    assert!(r["latestStatusDetail"].get("ancillaryDetails").is_none());
    assert_eq!(&scans(&r)[..3], pairs(&[("DL", "DL"), ("OD", "IT"), ("DE", "DE")]));
    assert_newest_first(&r);
}

#[tokio::test]
async fn the_controls_check_what_they_are_given() {
    let s = start().await;
    let (code, v) = s
        .control(
            Method::POST,
            "/fedex/shipments",
            Some(json!({ "trackingNumber": "794612345678" })),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["status"], "label_created");
    assert_eq!(v["source"], "manual");
    let (code, _) = s
        .control(
            Method::POST,
            "/fedex/shipments",
            Some(json!({ "trackingNumber": "794612345678" })),
        )
        .await;
    assert_eq!(code, 409, "a number is registered once");
    for bad in [json!({ "trackingNumber": "79-46" }), json!({ "status": "lost" })] {
        let (code, _) = s.control(Method::POST, "/fedex/shipments", Some(bad)).await;
        assert_eq!(code, 400);
    }
    let (code, _) = s.advance("794612345678", Some(json!({ "to": "label_created" }))).await;
    assert_eq!(code, 400, "a parcel cannot go back to its label");
    let (code, _) = s.advance("000000000000", None).await;
    assert_eq!(code, 404);
    let (code, _) = s.control(Method::GET, "/fedex/shipments", None).await;
    assert_eq!(code, 200);
    // Paths under /fedex the simulator does not cover say so.
    let (status, body) = {
        let resp = s
            .http
            .get(format!("{}/fedex/ship/v1/shipments", s.base))
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 404);
    assert_eq!(body["error"]["type"], "not_simulated");
}

#[tokio::test]
async fn reset_forgets_parcels_tokens_and_the_throttle() {
    let s = start().await;
    let token = s.token().await;
    let number = s.register("out_for_delivery").await;
    s.control(Method::PUT, "/fedex/limits", Some(json!({ "requests_per_window": 5 })))
        .await;
    s.track_one(&token, &number).await;

    let (code, _) = s.control(Method::POST, "/reset", None).await;
    assert_eq!(code, 204);
    let refused = s.track(&token, &[&number]).await;
    let (code, message) = refused.fedex_error(401);
    assert_eq!(code, "NOT.AUTHORIZED.ERROR");
    assert!(
        !message.to_lowercase().contains("expired"),
        "forgotten, not expired: {message}"
    );
    let (_, shipments) = s.control(Method::GET, "/fedex/shipments", None).await;
    assert_eq!(shipments, json!({ "shipments": [] }));
    let (_, limits) = s.control(Method::GET, "/fedex/limits", None).await;
    assert_eq!(limits, json!({ "requests_per_window": 1400, "window_secs": 10 }));

    let fresh = s.token().await;
    let body = s.track(&fresh, &[&number]).await.expect(200);
    assert_eq!(
        body["output"]["completeTrackResults"][0]["trackResults"][0]["error"]["code"],
        "TRACKING.TRACKINGNUMBER.NOTFOUND"
    );
}
