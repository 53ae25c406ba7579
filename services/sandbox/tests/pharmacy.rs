//! The pharmacy simulators over real HTTP: PioneerRx's signed order API (auth, validation,
//! refusals, cancellation), Boothwyn's and Strive's LifeFile APIs (auth headers, success and
//! error envelopes, status and shipping), orders that are not idempotent and can be looked up by
//! our reference id before submitting again, signed callbacks to a
//! receiver run here (checked with our own HMAC), the `/_sandbox/pharmacy` controls, and reset.

use std::time::{Duration, Instant};

mod support;

use base64::Engine;
use chrono::Utc;
use era_sandbox::{pharmacy::pioneerrx, LifeFileAccount, Sandbox, SandboxConfig};
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256, Sha512};
use support::{Received, Receiver};

const PRX_KEY: &str = era_sandbox::state::DEFAULT_PIONEERRX_API_KEY;
const PRX_SECRET: &str = era_sandbox::state::DEFAULT_PIONEERRX_SHARED_SECRET;
fn hook_secret(pharmacy: &str) -> String {
    era_sandbox::state::PharmacyWebhookSecrets::default()
        .of(pharmacy)
        .expect("a pharmacy")
        .to_owned()
}
/// Ali Nolan (GMP states) and Neelima Singh (every other state).
const ALI: &str = "1982609764";
const NEELIMA: &str = "1164633533";

struct Pharmacies {
    base: String,
    http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// One answer: status and JSON body.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    body: Value,
    www_authenticate: Option<String>,
}

impl Answer {
    #[track_caller]
    fn expect(self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.body);
        self.body
    }
}

async fn start() -> Pharmacies {
    start_with(SandboxConfig::default()).await
}

async fn start_with(config: SandboxConfig) -> Pharmacies {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(era_sandbox::run(Sandbox::with_config(config), listener, async {
        let _ = stopped.await;
    }));
    Pharmacies {
        base,
        http: reqwest::Client::new(),
        _stop: stop,
    }
}

/// `prx-signature` computed here from the documented recipe, not with the sandbox's function.
fn prx_signature(timestamp: &str, secret: &str) -> String {
    let utf16le: Vec<u8> = format!("{timestamp}{secret}")
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    base64::engine::general_purpose::STANDARD.encode(Sha512::digest(&utf16le))
}

fn prx_now() -> String {
    Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn prx_order(reference: &str, state: &str, npi: &str) -> Value {
    json!({
        "referenceId": reference,
        "prescriber": { "npi": npi, "firstName": "Ali", "lastName": "Nolan", "licenseState": state },
        "patient": {
            "firstName": "Pat", "lastName": "Example", "dateOfBirth": "1985-04-12", "gender": "F",
            "phone": "(555) 555-0100", "email": "pat@example.test"
        },
        "shipTo": {
            "name": "Pat Example", "addressLine1": "1 Main St", "addressLine2": null,
            "city": "Springfield", "state": state, "zip": "62701"
        },
        "items": [{
            "drugName": "Compounded semaglutide injection", "strength": "2.5mg/mL", "form": "injection",
            "quantity": 2, "quantityUnits": "mL", "daysSupply": 28, "refills": 2,
            "directions": "Inject 0.1 mL (0.25 mg) under the skin once weekly"
        }]
    })
}

fn lf_order(reference: &str, state: &str, npi: &str) -> Value {
    json!({
        "message": { "id": format!("msg-{reference}"), "sentTime": "2026-01-05T10:00:00Z" },
        "order": {
            "general": { "memo": "", "referenceId": reference },
            "prescriber": {
                "npi": npi, "licenseState": state, "licenseNumber": format!("DEMO-MD-{state}"),
                "firstName": "Neelima", "lastName": "Singh", "phone": "(555) 555-0100",
                "email": "neelima@example.test"
            },
            "practice": { "id": 1001 },
            "patient": {
                "firstName": "Pat", "lastName": "Example", "gender": "f", "dateOfBirth": "1985-04-12",
                "address1": "1 Main St", "address2": "", "city": "Denver", "state": state, "zip": "80202",
                "country": "US", "phoneMobile": "(555) 555-0100", "email": "pat@example.test"
            },
            "shipping": {
                "recipientType": "patient", "recipientFirstName": "Pat", "recipientLastName": "Example",
                "recipientPhone": "(555) 555-0100", "recipientEmail": "pat@example.test",
                "addressLine1": "1 Main St", "addressLine2": "", "city": "Denver", "state": state,
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

fn account(pharmacy: &str) -> LifeFileAccount {
    match pharmacy {
        "strive" => LifeFileAccount::strive(),
        _ => LifeFileAccount::boothwyn(),
    }
}

impl Pharmacies {
    async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let www_authenticate = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        Answer {
            status,
            body,
            www_authenticate,
        }
    }

    /// A PioneerRx request signed with these credentials and timestamp.
    fn prx_signed(&self, method: Method, path: &str, key: &str, secret: &str, ts: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}/pioneerrx/api/v1{path}", self.base))
            .header("prx-api-key", key)
            .header("prx-timestamp", ts)
            .header("prx-signature", prx_signature(ts, secret))
    }

    async fn prx(&self, method: Method, path: &str, body: Option<&Value>) -> Answer {
        let mut req = self.prx_signed(method, path, PRX_KEY, PRX_SECRET, &prx_now());
        if let Some(b) = body {
            req = req.json(b);
        }
        self.send(req).await
    }

    /// Places a PioneerRx order that must be accepted; its id.
    async fn prx_place(&self, reference: &str) -> String {
        let created = self
            .prx(Method::POST, "/orders", Some(&prx_order(reference, "NY", ALI)))
            .await
            .expect(201);
        created["orderId"].as_str().unwrap().to_owned()
    }

    /// A LifeFile request with the pharmacy's own credentials and ids.
    fn lf_request(&self, pharmacy: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
        let a = account(pharmacy);
        self.http
            .request(method, format!("{}/{pharmacy}/lfapi/v1{path}", self.base))
            .basic_auth(&a.username, Some(&a.password))
            .header("X-Vendor-ID", &a.vendor_id)
            .header("X-Location-ID", &a.location_id)
            .header("X-API-Network-ID", &a.network_id)
    }

    async fn lf(&self, pharmacy: &str, method: Method, path: &str, body: Option<&Value>) -> Answer {
        let mut req = self.lf_request(pharmacy, method, path);
        if let Some(b) = body {
            req = req.json(b);
        }
        self.send(req).await
    }

    /// Places a LifeFile order that must be accepted; its (numeric) id as text.
    async fn lf_place(&self, pharmacy: &str, reference: &str) -> String {
        let out = self
            .lf(
                pharmacy,
                Method::POST,
                "/order",
                Some(&lf_order(reference, "CO", NEELIMA)),
            )
            .await
            .expect(200);
        assert_eq!(out["type"], "success", "{out}");
        out["data"]["orderId"].as_u64().unwrap().to_string()
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

    async fn advance(&self, pharmacy: &str, order: &str, status: &str) -> Value {
        let (code, v) = self
            .control(
                Method::POST,
                &format!("/pharmacy/{pharmacy}/orders/{order}/advance"),
                Some(json!({ "status": status })),
            )
            .await;
        assert_eq!(code, 200, "{v}");
        v
    }

    async fn orders(&self, pharmacy: &str) -> Vec<Value> {
        let (_, v) = self
            .control(Method::GET, &format!("/pharmacy/{pharmacy}/orders"), None)
            .await;
        v["orders"].as_array().unwrap().clone()
    }

    async fn events(&self) -> Vec<Value> {
        let (_, v) = self.control(Method::GET, "/pharmacy/events", None).await;
        v["events"].as_array().unwrap().clone()
    }

    async fn effects(&self, vendor: &str, kind: &str) -> Vec<Value> {
        let (_, v) = self
            .control(Method::GET, &format!("/ledger?vendor={vendor}"), None)
            .await;
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["method"] == "EFFECT" && e["path"] == kind)
            .cloned()
            .collect()
    }

    async fn set_webhook(&self, body: Value) {
        let (status, v) = self.control(Method::PUT, "/pharmacy/webhook", Some(body)).await;
        assert_eq!(status, 200, "{v}");
    }
}

// ---- a callback receiver ----

#[derive(Clone, Debug)]
struct Callback {
    /// The pharmacy segment of the path it arrived on.
    pharmacy: String,
    signature: String,
    body: Vec<u8>,
    answered: u16,
}

impl Callback {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

impl From<Received> for Callback {
    fn from(r: Received) -> Self {
        Self {
            pharmacy: r.path.rsplit('/').next().unwrap_or_default().to_owned(),
            signature: r.header("x-pharmacy-signature"),
            body: r.body,
            answered: r.answered,
        }
    }
}

/// A receiver listening like the edge does, at `/api/webhooks/pharmacy/{pharmacy}`; it answers 500
/// to the first `fail_first` callbacks.
async fn receiver(fail_first: usize) -> (String, Receiver<Callback>) {
    Receiver::start("/api/webhooks/pharmacy", fail_first).await
}

/// Verifies `X-Pharmacy-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, `t`
/// within 300 s.
fn signature_ok(header: &str, body: &[u8], secret: &str) -> bool {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        let Some((k, v)) = part.split_once('=') else { continue };
        match k {
            "t" => t = Some(v.to_owned()),
            "v1" => v1.push(v.to_owned()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = hex::encode(mac.finalize().into_bytes());
    let fresh = t.parse::<i64>().is_ok_and(|t| (Utc::now().timestamp() - t).abs() < 300);
    fresh && v1.contains(&expected)
}

// ---- PioneerRx ----

#[tokio::test]
async fn a_signed_pioneerrx_order_is_accepted_and_can_be_read_back() {
    let s = start().await;
    let created = s
        .prx(Method::POST, "/orders", Some(&prx_order("ref-1", "NY", ALI)))
        .await
        .expect(201);
    assert_eq!(created["status"], "received");
    assert_eq!(created["referenceId"], "ref-1");
    let id = created["orderId"].as_str().unwrap();
    assert_eq!(id.len(), 36, "a GUID: {id}");

    let order = s.prx(Method::GET, &format!("/orders/{id}"), None).await.expect(200);
    assert_eq!(order["orderId"], id);
    assert_eq!(order["status"], "received");
    assert_eq!(order["referenceId"], "ref-1");
    assert_eq!(order["trackingNumber"], Value::Null);
    assert_eq!(order["items"][0]["drugName"], "Compounded semaglutide injection");

    let missing = s.prx(Method::GET, "/orders/nope", None).await.expect(404);
    assert_eq!(missing["error"]["code"], "order_not_found");

    // The ledger names the order and the pharmacy, nothing about the patient.
    let created = s.effects("pioneerrx", "order.created").await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["object"], id);
    assert_eq!(created[0]["detail"], "pioneerrx");
    // The sandbox's own signer agrees with the recipe.
    assert_eq!(
        pioneerrx::signature("2024-01-02T03:04:05.123456Z", "prx-secret"),
        prx_signature("2024-01-02T03:04:05.123456Z", "prx-secret")
    );
}

#[tokio::test]
async fn pioneerrx_refuses_a_wrong_key_signature_or_timestamp() {
    let s = start().await;
    let body = prx_order("ref-auth", "NY", ALI);
    let now = prx_now();
    let cases = [
        (
            "wrong key",
            s.prx_signed(Method::POST, "/orders", "prx-other-key", PRX_SECRET, &now),
        ),
        (
            "wrong secret",
            s.prx_signed(Method::POST, "/orders", PRX_KEY, "not-the-secret", &now),
        ),
        (
            "stale timestamp",
            s.prx_signed(
                Method::POST,
                "/orders",
                PRX_KEY,
                PRX_SECRET,
                &(Utc::now() - chrono::Duration::minutes(6))
                    .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                    .to_string(),
            ),
        ),
        (
            "future timestamp",
            s.prx_signed(
                Method::POST,
                "/orders",
                PRX_KEY,
                PRX_SECRET,
                &(Utc::now() + chrono::Duration::minutes(6))
                    .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                    .to_string(),
            ),
        ),
        (
            "millisecond timestamp",
            s.prx_signed(
                Method::POST,
                "/orders",
                PRX_KEY,
                PRX_SECRET,
                &Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            ),
        ),
        (
            "signature for another timestamp",
            s.http
                .post(format!("{}/pioneerrx/api/v1/orders", s.base))
                .header("prx-api-key", PRX_KEY)
                .header("prx-timestamp", &now)
                .header(
                    "prx-signature",
                    prx_signature("2024-01-02T03:04:05.123456Z", PRX_SECRET),
                ),
        ),
        ("no headers", s.http.post(format!("{}/pioneerrx/api/v1/orders", s.base))),
    ];
    for (case, req) in cases {
        let out = s.send(req.json(&body)).await;
        assert_eq!(out.status, 401, "{case}: {}", out.body);
        assert_eq!(out.body["error"]["code"], "unauthorized", "{case}");
        assert!(out.body["error"]["message"].is_string(), "{case}");
    }
    // A timestamp 4 minutes off is still within the window.
    let skewed = (Utc::now() - chrono::Duration::minutes(4))
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    let ok = s
        .send(
            s.prx_signed(Method::POST, "/orders", PRX_KEY, PRX_SECRET, &skewed)
                .json(&body),
        )
        .await;
    assert_eq!(ok.status, 201, "{}", ok.body);
    // Reads are signed too.
    let read = s
        .send(s.http.get(format!("{}/pioneerrx/api/v1/orders/x", s.base)))
        .await;
    assert_eq!(read.status, 401);
    assert!(s.effects("pioneerrx", "order.created").await.len() == 1);
}

#[tokio::test]
async fn pioneerrx_names_the_bad_field_and_refuses_bad_npis_and_states_with_codes() {
    let s = start().await;
    let mut no_npi = prx_order("ref-v", "NY", ALI);
    no_npi["prescriber"].as_object_mut().unwrap().remove("npi");
    let e = s.prx(Method::POST, "/orders", Some(&no_npi)).await.expect(400);
    assert_eq!(e["error"]["code"], "invalid_request");
    assert_eq!(e["error"]["field"], "prescriber.npi");

    let mut bad_qty = prx_order("ref-v", "NY", ALI);
    bad_qty["items"][0]["quantity"] = json!("2");
    let e = s.prx(Method::POST, "/orders", Some(&bad_qty)).await.expect(400);
    assert_eq!(e["error"]["field"], "items[0].quantity");

    let mut bad_dob = prx_order("ref-v", "NY", ALI);
    bad_dob["patient"]["dateOfBirth"] = json!("04/12/1985");
    let e = s.prx(Method::POST, "/orders", Some(&bad_dob)).await.expect(400);
    assert_eq!(e["error"]["field"], "patient.dateOfBirth");

    let e = s
        .send(
            s.prx_signed(Method::POST, "/orders", PRX_KEY, PRX_SECRET, &prx_now())
                .header("content-type", "application/json")
                .body("{not json"),
        )
        .await
        .expect(400);
    assert_eq!(e["error"]["code"], "invalid_request");

    for npi in ["1234567890", "12345", "198260976X"] {
        let e = s
            .prx(Method::POST, "/orders", Some(&prx_order("ref-npi", "NY", npi)))
            .await
            .expect(422);
        assert_eq!(e["error"]["code"], "invalid_npi", "{npi}");
    }
    // Colorado is a Boothwyn state, Texas is excluded everywhere: GMP serves neither.
    for state in ["CO", "TX"] {
        let e = s
            .prx(Method::POST, "/orders", Some(&prx_order("ref-st", state, ALI)))
            .await
            .expect(422);
        assert_eq!(e["error"]["code"], "state_not_served", "{state}");
    }
    assert!(s.orders("pioneerrx").await.is_empty());
    assert_eq!(s.effects("pioneerrx", "order.refused").await.len(), 5);
}

#[tokio::test]
async fn the_same_order_twice_is_two_orders() {
    let s = start().await;
    let body = prx_order("ref-dup", "FL", ALI);
    let first = s.prx(Method::POST, "/orders", Some(&body)).await.expect(201);
    let second = s.prx(Method::POST, "/orders", Some(&body)).await.expect(201);
    assert_ne!(first["orderId"], second["orderId"]);
    let orders = s.orders("pioneerrx").await;
    assert_eq!(orders.len(), 2);
    assert!(orders.iter().all(|o| o["referenceId"] == "ref-dup"));
    assert_eq!(s.effects("pioneerrx", "order.created").await.len(), 2);

    // LifeFile is no different.
    let body = lf_order("ref-dup-lf", "CO", NEELIMA);
    for _ in 0..2 {
        s.lf("strive", Method::POST, "/order", Some(&body)).await.expect(200);
    }
    assert_eq!(s.orders("strive").await.len(), 2);
    assert_eq!(s.effects("strive", "order.created").await.len(), 2);
}

#[tokio::test]
async fn pioneerrx_finds_its_orders_by_reference_id() {
    let s = start().await;
    // The pipeline's reference ids carry a colon: the query is percent-decoded.
    let lookup = "/orders?referenceId=run-7%3Apharmacy_sync";
    let none = s.prx(Method::GET, lookup, None).await.expect(200);
    assert_eq!(none, json!({ "orders": [] }));

    let first = s.prx_place("run-7:pharmacy_sync").await;
    // Neither another reference nor another pharmacy's order with the same reference is found.
    s.prx_place("run-8:pharmacy_sync").await;
    s.lf_place("boothwyn", "run-7:pharmacy_sync").await;
    let one = s.prx(Method::GET, lookup, None).await.expect(200);
    let orders = one["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 1, "{one}");
    assert_eq!(orders[0]["orderId"], first.as_str());
    assert_eq!(orders[0]["referenceId"], "run-7:pharmacy_sync");
    assert_eq!(orders[0]["status"], "received");
    assert!(orders[0]["createdAt"].is_string(), "{one}");
    assert_eq!(
        orders[0].as_object().unwrap().len(),
        4,
        "orderId, referenceId, status, createdAt: {one}"
    );

    // A repeated submission is a second order, and the lookup shows both, oldest first.
    s.advance("pioneerrx", &first, "processing").await;
    let second = s.prx_place("run-7:pharmacy_sync").await;
    let two = s.prx(Method::GET, lookup, None).await.expect(200);
    let found: Vec<(&str, &str)> = two["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["orderId"].as_str().unwrap(), o["status"].as_str().unwrap()))
        .collect();
    assert_eq!(found, [(first.as_str(), "processing"), (second.as_str(), "received")]);

    // The reference is required; the lookup is signed like every other route.
    for path in [
        "/orders",
        "/orders?referenceId=",
        "/orders?referenceId=%20",
        "/orders?reference=x",
    ] {
        let e = s.prx(Method::GET, path, None).await.expect(400);
        assert_eq!(e["error"]["code"], "invalid_request", "{path}");
        assert_eq!(e["error"]["field"], "referenceId", "{path}");
        assert!(e["error"]["message"].is_string(), "{path}");
    }
    let unsigned = s
        .send(s.http.get(format!("{}/pioneerrx/api/v1{lookup}", s.base)))
        .await
        .expect(401);
    assert_eq!(unsigned["error"]["code"], "unauthorized");
    let wrong = s
        .send(s.prx_signed(Method::GET, lookup, PRX_KEY, "not-the-secret", &prx_now()))
        .await
        .expect(401);
    assert_eq!(wrong["error"]["code"], "unauthorized");
    // A read: no order was placed or refused by asking.
    assert_eq!(s.effects("pioneerrx", "order.created").await.len(), 3);
    assert!(s.effects("pioneerrx", "order.refused").await.is_empty());
}

#[tokio::test]
async fn a_pioneerrx_order_can_be_cancelled_until_it_ships() {
    let s = start().await;
    let id = s.prx_place("ref-c1").await;
    s.advance("pioneerrx", &id, "processing").await;
    let cancelled = s
        .prx(
            Method::POST,
            &format!("/orders/{id}/cancel"),
            Some(&json!({ "reason": "patient asked" })),
        )
        .await
        .expect(200);
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["reason"], "patient asked");
    // Cancelling again changes nothing.
    let again = s
        .prx(Method::POST, &format!("/orders/{id}/cancel"), None)
        .await
        .expect(200);
    assert_eq!(again["status"], "cancelled");
    assert_eq!(s.effects("pioneerrx", "order.cancelled").await.len(), 1);

    let shipped = s.prx_place("ref-c2").await;
    s.advance("pioneerrx", &shipped, "shipped").await;
    let e = s
        .prx(Method::POST, &format!("/orders/{shipped}/cancel"), None)
        .await
        .expect(409);
    assert_eq!(e["error"]["code"], "order_not_cancellable");
    let e = s.prx(Method::POST, "/orders/nope/cancel", None).await.expect(404);
    assert_eq!(e["error"]["code"], "order_not_found");
}

// ---- LifeFile (Boothwyn, Strive) ----

#[tokio::test]
async fn lifefile_refuses_missing_or_wrong_credentials() {
    let s = start().await;
    let body = lf_order("ref-auth", "CO", NEELIMA);
    let b = LifeFileAccount::boothwyn();
    let url = format!("{}/boothwyn/lfapi/v1/order", s.base);
    let with_ids = |req: reqwest::RequestBuilder| {
        req.header("X-Vendor-ID", &b.vendor_id)
            .header("X-Location-ID", &b.location_id)
            .header("X-API-Network-ID", &b.network_id)
    };
    let cases = [
        ("no credentials", with_ids(s.http.post(&url))),
        (
            "bad password",
            with_ids(s.http.post(&url).basic_auth(&b.username, Some("wrong"))),
        ),
        (
            "Strive's credentials at Boothwyn",
            s.http
                .post(&url)
                .basic_auth(DEFAULT_STRIVE.0, Some(DEFAULT_STRIVE.1))
                .header("X-Vendor-ID", &b.vendor_id)
                .header("X-Location-ID", &b.location_id)
                .header("X-API-Network-ID", &b.network_id),
        ),
        (
            "missing X-Vendor-ID",
            s.http
                .post(&url)
                .basic_auth(&b.username, Some(&b.password))
                .header("X-Location-ID", &b.location_id)
                .header("X-API-Network-ID", &b.network_id),
        ),
        (
            "wrong X-API-Network-ID",
            s.http
                .post(&url)
                .basic_auth(&b.username, Some(&b.password))
                .header("X-Vendor-ID", &b.vendor_id)
                .header("X-Location-ID", &b.location_id)
                .header("X-API-Network-ID", "99"),
        ),
    ];
    for (case, req) in cases {
        let out = s.send(req.json(&body)).await;
        assert_eq!(out.status, 401, "{case}: {}", out.body);
        assert_eq!(out.body["type"], "error", "{case}");
        assert!(out.body["message"].is_string(), "{case}");
        assert_eq!(out.www_authenticate.as_deref(), Some("Basic realm=\"LifeFile\""));
    }
    let missing = s
        .send(
            s.http
                .post(&url)
                .basic_auth(&b.username, Some(&b.password))
                .header("X-Location-ID", &b.location_id)
                .header("X-API-Network-ID", &b.network_id)
                .json(&body),
        )
        .await
        .expect(401);
    assert!(
        missing["message"].as_str().unwrap().contains("X-Vendor-ID"),
        "{missing}"
    );
    assert!(s.orders("boothwyn").await.is_empty());
}

const DEFAULT_STRIVE: (&str, &str) = (
    era_sandbox::state::DEFAULT_STRIVE_USERNAME,
    era_sandbox::state::DEFAULT_STRIVE_PASSWORD,
);

#[tokio::test]
async fn lifefile_answers_in_its_success_and_error_envelopes() {
    let s = start().await;
    let ok = s
        .lf(
            "boothwyn",
            Method::POST,
            "/order",
            Some(&lf_order("ref-lf", "CO", NEELIMA)),
        )
        .await
        .expect(200);
    assert_eq!(ok["type"], "success");
    assert!(ok["message"].is_string());
    assert!(ok["data"]["orderId"].is_u64(), "{ok}");

    // 400 names the field.
    let mut bad = lf_order("ref-lf", "CO", NEELIMA);
    bad["order"]["rxs"][0]["quantity"] = json!(2);
    let e = s.lf("boothwyn", Method::POST, "/order", Some(&bad)).await.expect(400);
    assert_eq!(e["type"], "error");
    assert!(e["message"].as_str().unwrap().contains("order.rxs[0].quantity"), "{e}");
    assert_eq!(e.as_object().unwrap().len(), 2, "only type and message: {e}");
    let mut bad = lf_order("ref-lf", "CO", NEELIMA);
    bad["order"]["billing"]["payorType"] = json!("insurance");
    let e = s.lf("strive", Method::POST, "/order", Some(&bad)).await.expect(400);
    assert!(
        e["message"].as_str().unwrap().contains("order.billing.payorType"),
        "{e}"
    );
    let mut bad = lf_order("ref-lf", "CO", NEELIMA);
    bad["order"]["general"].as_object_mut().unwrap().remove("referenceId");
    let e = s.lf("strive", Method::POST, "/order", Some(&bad)).await.expect(400);
    assert!(
        e["message"].as_str().unwrap().contains("order.general.referenceId"),
        "{e}"
    );

    // 422 refusals: a bad NPI, and each of the six excluded states.
    let e = s
        .lf(
            "boothwyn",
            Method::POST,
            "/order",
            Some(&lf_order("ref-lf", "CO", "1164633534")),
        )
        .await
        .expect(422);
    assert_eq!(e["type"], "error");
    assert!(e["message"].as_str().unwrap().contains("NPI"), "{e}");
    for state in ["MN", "CA", "TX", "AR", "NC", "OK"] {
        for pharmacy in ["boothwyn", "strive"] {
            let e = s
                .lf(
                    pharmacy,
                    Method::POST,
                    "/order",
                    Some(&lf_order("ref-x", state, NEELIMA)),
                )
                .await
                .expect(422);
            assert!(e["message"].as_str().unwrap().contains(state), "{e}");
        }
    }
    // A GMP state is still a LifeFile state (the mesh prefers GMP there, the pharmacy does not care).
    s.lf(
        "strive",
        Method::POST,
        "/order",
        Some(&lf_order("ref-ny", "NY", NEELIMA)),
    )
    .await
    .expect(200);
    assert_eq!(s.orders("boothwyn").await.len(), 1);
    assert_eq!(s.orders("strive").await.len(), 1);
}

#[tokio::test]
async fn lifefile_status_and_shipping_follow_the_order() {
    let s = start().await;
    let id = s.lf_place("boothwyn", "ref-ship").await;
    let status = s
        .lf("boothwyn", Method::GET, &format!("/order/{id}/status"), None)
        .await
        .expect(200);
    assert_eq!(status["type"], "success");
    assert_eq!(status["data"]["status"], "received");
    assert_eq!(status["data"]["referenceId"], "ref-ship");
    assert_eq!(status["data"]["orderId"].as_u64().unwrap().to_string(), id);
    let shipping = s
        .lf("boothwyn", Method::GET, &format!("/order/{id}/shipping"), None)
        .await
        .expect(200);
    assert_eq!(shipping["data"]["shippingStatus"], "pending");
    assert_eq!(shipping["data"]["trackingNumber"], Value::Null);

    s.advance("boothwyn", &id, "shipped").await;
    let shipping = s
        .lf("boothwyn", Method::GET, &format!("/order/{id}/shipping"), None)
        .await
        .expect(200);
    let d = &shipping["data"];
    assert_eq!(d["shippingStatus"], "shipped");
    assert_eq!(d["deliveryService"], "fedex");
    let tracking = d["trackingNumber"].as_str().unwrap();
    assert!(tracking.starts_with("7946") && tracking.len() == 12, "{tracking}");
    assert!(d["trackingUrl"].as_str().unwrap().contains(tracking));
    assert!(d["shippedAt"].is_string());

    // The order belongs to Boothwyn alone.
    s.lf("strive", Method::GET, &format!("/order/{id}/status"), None)
        .await
        .expect(404);

    // Cancelling: refused once shipped, fine before; only "cancelled" may be set.
    let e = s
        .lf(
            "boothwyn",
            Method::PUT,
            &format!("/order/{id}/status"),
            Some(&json!({ "status": "cancelled" })),
        )
        .await
        .expect(409);
    assert_eq!(e["type"], "error");
    let other = s.lf_place("boothwyn", "ref-cancel").await;
    s.lf(
        "boothwyn",
        Method::PUT,
        &format!("/order/{other}/status"),
        Some(&json!({ "status": "shipped" })),
    )
    .await
    .expect(400);
    let done = s
        .lf(
            "boothwyn",
            Method::PUT,
            &format!("/order/{other}/status"),
            Some(&json!({ "status": "cancelled" })),
        )
        .await
        .expect(200);
    assert_eq!(done["data"]["status"], "cancelled");
    let status = s
        .lf("boothwyn", Method::GET, &format!("/order/{other}/status"), None)
        .await
        .expect(200);
    assert_eq!(status["data"]["status"], "cancelled");
    s.lf("boothwyn", Method::GET, "/order/123/shipping", None)
        .await
        .expect(404);
    assert_eq!(s.effects("boothwyn", "order.cancelled").await.len(), 1);
    assert_eq!(s.effects("boothwyn", "order.status").await.len(), 1);
}

#[tokio::test]
async fn lifefile_finds_each_pharmacys_orders_by_reference_id() {
    let s = start().await;
    let lookup = "/orders?referenceId=run-9%3Apharmacy_sync";
    for pharmacy in ["boothwyn", "strive"] {
        let none = s.lf(pharmacy, Method::GET, lookup, None).await.expect(200);
        assert_eq!(none["type"], "success", "{none}");
        assert!(none["message"].is_string(), "{none}");
        assert_eq!(none["data"], json!({ "orders": [] }), "{pharmacy}");
    }

    let first = s.lf_place("boothwyn", "run-9:pharmacy_sync").await;
    s.lf_place("boothwyn", "run-10:pharmacy_sync").await;
    s.prx_place("run-9:pharmacy_sync").await;
    let one = s.lf("boothwyn", Method::GET, lookup, None).await.expect(200);
    let orders = one["data"]["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 1, "{one}");
    assert!(orders[0]["orderId"].is_u64(), "LifeFile order ids are numbers: {one}");
    assert_eq!(orders[0]["orderId"].as_u64().unwrap().to_string(), first);
    assert_eq!(orders[0]["referenceId"], "run-9:pharmacy_sync");
    assert_eq!(orders[0]["status"], "received");
    // Strive does not see Boothwyn's order.
    let strive = s.lf("strive", Method::GET, lookup, None).await.expect(200);
    assert_eq!(strive["data"]["orders"], json!([]));

    // A repeated submission is a second order, and the lookup shows both, oldest first.
    let second = s.lf_place("boothwyn", "run-9:pharmacy_sync").await;
    let two = s.lf("boothwyn", Method::GET, lookup, None).await.expect(200);
    let ids: Vec<String> = two["data"]["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["orderId"].as_u64().unwrap().to_string())
        .collect();
    assert_eq!(ids, [first, second]);

    // The reference is required; the lookup takes the same credentials as every other route.
    for path in ["/orders", "/orders?referenceId="] {
        let e = s.lf("strive", Method::GET, path, None).await.expect(400);
        assert_eq!(e["type"], "error", "{path}");
        assert!(e["message"].as_str().unwrap().contains("referenceId"), "{e}");
    }
    let strives_credentials = s
        .send(
            s.http
                .get(format!("{}/boothwyn/lfapi/v1{lookup}", s.base))
                .basic_auth(DEFAULT_STRIVE.0, Some(DEFAULT_STRIVE.1)),
        )
        .await;
    assert_eq!(strives_credentials.status, 401, "{}", strives_credentials.body);
    assert_eq!(strives_credentials.body["type"], "error");
    assert_eq!(s.effects("boothwyn", "order.created").await.len(), 3);
}

// ---- callbacks ----

#[tokio::test]
async fn status_changes_are_signed_callbacks_to_each_pharmacys_path() {
    let (url, receiver) = receiver(0).await;
    let s = start_with(SandboxConfig {
        pharmacy_webhook_url: Some(url),
        ..Default::default()
    })
    .await;
    let id = s.prx_place("ref-cb").await;
    for status in ["processing", "shipped", "delivered"] {
        s.advance("pioneerrx", &id, status).await;
    }
    let lf = s.lf_place("strive", "ref-cb-lf").await;

    let got = receiver.wait_for(5).await;
    let statuses: Vec<String> = got[..4]
        .iter()
        .map(|c| c.json()["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["received", "processing", "shipped", "delivered"]);
    for c in &got {
        assert!(
            signature_ok(&c.signature, &c.body, &hook_secret(&c.pharmacy)),
            "bad signature {}",
            c.signature
        );
        // Each pharmacy signs with its own secret: another's does not verify.
        let other = if c.pharmacy == "strive" { "boothwyn" } else { "strive" };
        assert!(!signature_ok(&c.signature, &c.body, &hook_secret(other)));
        let v = c.json();
        assert_eq!(v["pharmacy"], c.pharmacy.as_str());
        assert!(v["eventId"].is_string());
        assert!(v["occurredAt"].is_string());
    }
    assert!(got[..4].iter().all(|c| c.pharmacy == "pioneerrx"));
    let received = got[0].json();
    assert_eq!(received["orderId"], id.as_str());
    assert_eq!(received["referenceId"], "ref-cb");
    assert!(received.get("trackingNumber").is_none(), "no tracking before shipping");
    let shipped = got[2].json();
    assert_eq!(shipped["carrier"], "fedex");
    let tracking = shipped["trackingNumber"].as_str().unwrap();
    assert!(tracking.starts_with("7946") && tracking.len() == 12, "{tracking}");
    assert!(tracking.bytes().all(|b| b.is_ascii_digit()));
    assert!(shipped["trackingUrl"].as_str().unwrap().ends_with(tracking));
    assert!(shipped["shippedAt"].is_string());
    let delivered = got[3].json();
    assert_eq!(delivered["trackingNumber"], tracking, "the same parcel");
    assert!(delivered["deliveredAt"].is_string());

    let strive = &got[4];
    assert_eq!(strive.pharmacy, "strive");
    assert_eq!(strive.json()["orderId"], lf.as_str(), "callback order ids are strings");
    assert_eq!(strive.json()["status"], "received");

    // The control view shows each delivery, the ledger each effect.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let events = s.events().await;
    assert_eq!(events.len(), 5);
    assert!(events.iter().all(|e| e["delivery"] == "delivered"), "{events:?}");
    assert_eq!(events[0]["attempts"][0]["status"], 200);
    assert_eq!(events[0]["attempts"][0]["trigger"], "auto");
    assert!(events[0]["attempts"][0]["url"]
        .as_str()
        .unwrap()
        .ends_with("/api/webhooks/pharmacy/pioneerrx"));
    assert_eq!(s.effects("pioneerrx", "callback.sent").await.len(), 4);
    assert_eq!(s.effects("pioneerrx", "order.status").await.len(), 3);

    // Going back, or past a final status, is a conflict; unknown pharmacies and orders are 404.
    let (code, _) = s
        .control(
            Method::POST,
            &format!("/pharmacy/pioneerrx/orders/{id}/advance"),
            Some(json!({ "status": "processing" })),
        )
        .await;
    assert_eq!(code, 409);
    let (code, _) = s
        .control(
            Method::POST,
            "/pharmacy/nope/orders/x/advance",
            Some(json!({ "status": "shipped" })),
        )
        .await;
    assert_eq!(code, 404);
    let (code, _) = s
        .control(
            Method::POST,
            "/pharmacy/strive/orders/x/advance",
            Some(json!({ "status": "shipped" })),
        )
        .await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn cancellations_and_rejections_are_called_back_with_their_reason() {
    let (url, receiver) = receiver(0).await;
    let s = start().await;
    s.set_webhook(json!({ "url": url })).await;
    let a = s.prx_place("ref-a").await;
    let b = s.prx_place("ref-b").await;
    s.prx(
        Method::POST,
        &format!("/orders/{a}/cancel"),
        Some(&json!({ "reason": "duplicate" })),
    )
    .await
    .expect(200);
    let (code, v) = s
        .control(
            Method::POST,
            &format!("/pharmacy/pioneerrx/orders/{b}/advance"),
            Some(json!({ "status": "rejected", "reason": "prescription unclear" })),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    let got = receiver.wait_for(4).await;
    let last: Vec<(String, String)> = got[2..]
        .iter()
        .map(|c| {
            let v = c.json();
            (
                v["status"].as_str().unwrap().to_owned(),
                v["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        last,
        [
            ("cancelled".to_owned(), "duplicate".to_owned()),
            ("rejected".to_owned(), "prescription unclear".to_owned())
        ]
    );
}

#[tokio::test]
async fn callbacks_can_be_delivered_again_and_in_a_chosen_order() {
    let (url, receiver) = receiver(0).await;
    let s = start().await;
    s.set_webhook(json!({ "url": url, "paused": true })).await;
    let id = s.lf_place("boothwyn", "ref-order").await;
    s.advance("boothwyn", &id, "processing").await;
    s.advance("boothwyn", &id, "shipped").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(receiver.all().is_empty(), "nothing delivered while paused");
    let events = s.events().await;
    assert!(events.iter().all(|e| e["delivery"] == "not_sent"), "{events:?}");
    let ids: Vec<String> = events.iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();

    // Duplicates: the same event three times, the same signed bytes each time.
    let (status, out) = s
        .control(
            Method::POST,
            &format!("/pharmacy/events/{}/deliver?times=3", ids[2]),
            None,
        )
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["attempts"].as_array().unwrap().len(), 3);
    let got = receiver.all();
    assert_eq!(got.len(), 3);
    for c in &got {
        assert_eq!(c.json()["eventId"], ids[2].as_str());
        assert_eq!(c.json()["status"], "shipped");
        assert_eq!(c.body, got[0].body);
        assert!(signature_ok(&c.signature, &c.body, &hook_secret(&c.pharmacy)));
    }

    // Out of order: shipped, then received, then processing.
    let order = vec![ids[2].clone(), ids[0].clone(), ids[1].clone()];
    let (status, _) = s
        .control(Method::POST, "/pharmacy/deliver", Some(json!({ "events": order })))
        .await;
    assert_eq!(status, 200);
    let got: Vec<String> = receiver.all()[3..]
        .iter()
        .map(|c| c.json()["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, ["shipped", "received", "processing"]);

    let (status, _) = s
        .control(Method::POST, "/pharmacy/deliver", Some(json!({ "events": ["nope"] })))
        .await;
    assert_eq!(status, 404);
    let (status, _) = s
        .control(
            Method::POST,
            &format!("/pharmacy/events/{}/deliver?times=0", ids[0]),
            None,
        )
        .await;
    assert_eq!(status, 400);
    let (_, filtered) = s
        .control(
            Method::GET,
            &format!("/pharmacy/events?pharmacy=boothwyn&orderId={id}"),
            None,
        )
        .await;
    let shipped = &filtered["events"][2];
    assert_eq!(shipped["attempts"].as_array().unwrap().len(), 4);
    assert_eq!(shipped["delivery"], "delivered");
    assert_eq!(s.effects("boothwyn", "callback.sent").await.len(), 6);

    // With no URL at all, a manual delivery has nowhere to go.
    s.set_webhook(json!({ "url": null })).await;
    let (status, _) = s
        .control(Method::POST, &format!("/pharmacy/events/{}/deliver", ids[0]), None)
        .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn a_failed_callback_is_retried_and_its_state_kept() {
    let (url, receiver) = receiver(2).await;
    let s = start().await;
    s.set_webhook(json!({ "url": url })).await;
    s.prx_place("ref-retry").await;
    let got = receiver.wait_for(3).await;
    let answered: Vec<u16> = got.iter().map(|c| c.answered).collect();
    assert_eq!(answered, [500, 500, 200]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let events = s.events().await;
    assert_eq!(events[0]["delivery"], "delivered");
    let triggers: Vec<&str> = events[0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["trigger"].as_str().unwrap())
        .collect();
    assert_eq!(triggers, ["auto", "retry", "retry"]);
    assert_eq!(s.effects("pioneerrx", "callback.failed").await.len(), 2);
    assert_eq!(s.effects("pioneerrx", "callback.sent").await.len(), 1);

    // A receiver that is not there: the order is still taken, the event ends failed.
    let gone = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}", gone.local_addr().unwrap());
    drop(gone);
    s.set_webhook(json!({ "url": dead })).await;
    let started = Instant::now();
    s.prx_place("ref-dead").await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "delivery never blocks the API"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = s.events().await;
        if events[1]["delivery"] == "failed" {
            assert_eq!(events[1]["attempts"].as_array().unwrap().len(), 4);
            assert!(events[1]["attempts"][0]["error"].is_string());
            break;
        }
        assert!(Instant::now() < deadline, "{events:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- other controls ----

#[tokio::test]
async fn reject_next_refuses_only_that_pharmacys_next_order() {
    let s = start().await;
    let (code, _) = s
        .control(
            Method::POST,
            "/pharmacy/boothwyn/reject-next",
            Some(json!({ "reason": "Product out of stock" })),
        )
        .await;
    assert_eq!(code, 204);
    // Other pharmacies are not affected.
    s.lf_place("strive", "ref-s").await;
    s.prx_place("ref-p").await;
    let e = s
        .lf(
            "boothwyn",
            Method::POST,
            "/order",
            Some(&lf_order("ref-r", "CO", NEELIMA)),
        )
        .await
        .expect(422);
    assert_eq!(e, json!({ "type": "error", "message": "Product out of stock" }));
    s.lf_place("boothwyn", "ref-r").await;
    assert_eq!(s.orders("boothwyn").await.len(), 1);

    s.control(
        Method::POST,
        "/pharmacy/pioneerrx/reject-next",
        Some(json!({ "reason": "Prescriber not on file" })),
    )
    .await;
    let e = s
        .prx(Method::POST, "/orders", Some(&prx_order("ref-q", "NY", ALI)))
        .await
        .expect(422);
    assert_eq!(e["error"]["code"], "rejected");
    assert_eq!(e["error"]["message"], "Prescriber not on file");
    let (code, _) = s
        .control(
            Method::POST,
            "/pharmacy/nope/reject-next",
            Some(json!({ "reason": "x" })),
        )
        .await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn reset_forgets_orders_and_events_but_keeps_the_webhook() {
    let (url, receiver) = receiver(0).await;
    let s = start().await;
    s.set_webhook(json!({ "url": url.clone() })).await;
    let id = s.prx_place("ref-reset").await;
    s.lf_place("strive", "ref-reset").await;
    s.control(
        Method::POST,
        "/pharmacy/boothwyn/reject-next",
        Some(json!({ "reason": "x" })),
    )
    .await;
    receiver.wait_for(2).await;

    let (code, _) = s.control(Method::POST, "/reset", None).await;
    assert_eq!(code, 204);
    assert!(s.orders("pioneerrx").await.is_empty());
    assert!(s.orders("strive").await.is_empty());
    assert!(s.events().await.is_empty());
    s.prx(Method::GET, &format!("/orders/{id}"), None).await.expect(404);
    // The reject-next went too; the webhook stayed.
    s.lf_place("boothwyn", "ref-after").await;
    let (_, w) = s.control(Method::GET, "/pharmacy/webhook", None).await;
    assert_eq!(w["url"], url.as_str());
    assert_eq!(w["urls"]["boothwyn"], format!("{url}/boothwyn"));
    assert_eq!(receiver.wait_for(3).await[2].pharmacy, "boothwyn");
}

#[tokio::test]
async fn orders_can_advance_on_their_own_for_the_demo() {
    let (url, receiver) = receiver(0).await;
    let s = start_with(SandboxConfig {
        pharmacy_webhook_url: Some(url),
        pharmacy_auto_advance_secs: Some(0),
        ..Default::default()
    })
    .await;
    let id = s.prx_place("ref-auto").await;
    let got = receiver.wait_for(4).await;
    let statuses: Vec<String> = got
        .iter()
        .map(|c| c.json()["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["received", "processing", "shipped", "delivered"]);
    let order = s.prx(Method::GET, &format!("/orders/{id}"), None).await.expect(200);
    assert_eq!(order["status"], "delivered");
    assert_eq!(order["carrier"], "fedex");
}

#[tokio::test]
async fn configured_credentials_and_states_replace_the_defaults() {
    let s = start_with(SandboxConfig {
        pioneerrx_api_key: "prx-custom".into(),
        pioneerrx_shared_secret: "custom-secret".into(),
        pioneerrx_states: vec!["CO".into()],
        strive: LifeFileAccount {
            password: "strive-custom".into(),
            ..LifeFileAccount::strive()
        },
        ..Default::default()
    })
    .await;
    let ok = s
        .send(
            s.prx_signed(Method::POST, "/orders", "prx-custom", "custom-secret", &prx_now())
                .json(&prx_order("ref-co", "CO", ALI)),
        )
        .await;
    assert_eq!(ok.status, 201, "{}", ok.body);
    let e = s
        .send(
            s.prx_signed(Method::POST, "/orders", "prx-custom", "custom-secret", &prx_now())
                .json(&prx_order("ref-ny", "NY", ALI)),
        )
        .await
        .expect(422);
    assert_eq!(e["error"]["code"], "state_not_served");
    let out = s
        .lf("strive", Method::POST, "/order", Some(&lf_order("ref", "CO", NEELIMA)))
        .await;
    assert_eq!(out.status, 401, "the default password no longer works");
}
