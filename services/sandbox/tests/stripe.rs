//! The Stripe simulator over real HTTP: auth, `Request-Id`, Rack-style form decoding, the clinic's
//! objects (customers, setup and payment intents, test cards, refunds, coupons, promotion codes),
//! idempotency, signed webhook delivery (checked here with our own HMAC), the ledger's effects and
//! reset.

use std::{sync::Arc, time::Duration};

mod support;

use era_sandbox::{stripe::seed, Sandbox, SandboxConfig};
use hmac::{Hmac, Mac};
use reqwest::{header::HeaderMap as ReqHeaders, Method, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;
use support::{Received, Receiver};

const KEY: &str = era_sandbox::state::DEFAULT_STRIPE_SECRET_KEY;
const WHSEC: &str = era_sandbox::state::DEFAULT_STRIPE_WEBHOOK_SECRET;

struct Stripe {
    base: String,
    http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// One answer: status, headers, JSON body.
struct Answer {
    status: StatusCode,
    headers: ReqHeaders,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    #[track_caller]
    fn ok(self) -> Value {
        assert_eq!(self.status, 200, "{}", self.body);
        self.body
    }

    /// The `error` object of a failure with this status.
    #[track_caller]
    fn error(self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.body);
        self.body["error"].clone()
    }
}

async fn start() -> Stripe {
    start_with(Sandbox::new()).await
}

async fn start_with(sandbox: Sandbox) -> Stripe {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(era_sandbox::run(sandbox, listener, async {
        let _ = stopped.await;
    }));
    Stripe {
        base,
        http: reqwest::Client::new(),
        _stop: stop,
    }
}

impl Stripe {
    async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        Answer { status, headers, body }
    }

    fn api(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}/stripe{path}", self.base))
            .bearer_auth(KEY)
    }

    /// A form POST with the body exactly as given (so tests choose raw or escaped brackets).
    async fn post(&self, path: &str, form: &str) -> Answer {
        self.send(self.form(path, form)).await
    }

    fn form(&self, path: &str, form: &str) -> reqwest::RequestBuilder {
        self.api(Method::POST, path)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_owned())
    }

    async fn post_with_key(&self, path: &str, form: &str, key: &str) -> Answer {
        self.send(self.form(path, form).header("Idempotency-Key", key)).await
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(self.api(Method::GET, path)).await
    }

    async fn delete(&self, path: &str) -> Answer {
        self.send(self.api(Method::DELETE, path)).await
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

    async fn customer(&self) -> String {
        let c = self.post("/v1/customers", "email=pat%40example.test").await.ok();
        c["id"].as_str().unwrap().to_owned()
    }

    /// A customer with a saved card (set up with a SetupIntent), as the clinic's flow makes one.
    async fn customer_with_card(&self, card: &str) -> (String, String) {
        let cus = self.customer().await;
        let si = self
            .post(
                "/v1/setup_intents",
                &format!("customer={cus}&payment_method={card}&payment_method_types[0]=card&confirm=true"),
            )
            .await
            .ok();
        assert_eq!(si["status"], "succeeded", "{si}");
        (cus, si["payment_method"].as_str().unwrap().to_owned())
    }

    async fn charge(&self, cus: &str, pm: &str, amount: i64) -> Answer {
        self.post(
            "/v1/payment_intents",
            &format!("amount={amount}&currency=usd&customer={cus}&payment_method={pm}&confirm=true&off_session=true"),
        )
        .await
    }

    async fn counts(&self) -> Value {
        self.control(Method::GET, "/ledger/counts?vendor=stripe", None).await.1
    }

    async fn events(&self) -> Vec<Value> {
        let (_, v) = self.control(Method::GET, "/stripe/events", None).await;
        v["events"].as_array().unwrap().clone()
    }

    async fn event_id(&self, kind: &str) -> String {
        let events = self.events().await;
        let e = events
            .iter()
            .rev()
            .find(|e| e["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind}"));
        e["id"].as_str().unwrap().to_owned()
    }
}

fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect()
}

// ---- a webhook receiver ----

#[derive(Clone, Debug)]
struct Delivery {
    signature: String,
    body: Vec<u8>,
    answered: u16,
}

impl Delivery {
    fn event(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

impl From<Received> for Delivery {
    fn from(r: Received) -> Self {
        Self {
            signature: r.header("stripe-signature"),
            body: r.body,
            answered: r.answered,
        }
    }
}

/// Verifies `Stripe-Signature` as stripe-python's `Webhook.construct_event` does: split on `,`,
/// then on the first `=`; any `v1` may match HMAC-SHA256(secret, "<t>.<body>"); `t` within 300 s.
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
    let fresh = t
        .parse::<i64>()
        .is_ok_and(|t| (chrono::Utc::now().timestamp() - t).abs() < 300);
    fresh && v1.contains(&expected)
}

// ---- wire basics ----

#[tokio::test]
async fn bearer_and_basic_auth_work_and_a_bad_key_gets_stripes_401() {
    let s = start().await;
    assert_eq!(s.get("/v1/customers").await.status, 200);
    let basic = s
        .send(
            s.http
                .get(format!("{}/stripe/v1/customers", s.base))
                .basic_auth(KEY, Some("")),
        )
        .await;
    assert_eq!(basic.status, 200, "{}", basic.body);

    let bad = s
        .send(
            s.http
                .get(format!("{}/stripe/v1/customers", s.base))
                .bearer_auth("sk_test_51NotTheRightKey9876"),
        )
        .await;
    assert_eq!(bad.header("www-authenticate"), Some("Basic realm=\"Stripe\""));
    assert_eq!(
        bad.error(401),
        json!({ "type": "invalid_request_error", "message": "Invalid API Key provided: sk_test_****9876" })
    );
    let bad_basic = s
        .send(
            s.http
                .get(format!("{}/stripe/v1/customers", s.base))
                .basic_auth("sk_test_nope1234", Some("")),
        )
        .await;
    assert_eq!(
        bad_basic.error(401)["message"],
        "Invalid API Key provided: sk_test_****1234"
    );
    let none = s.send(s.http.get(format!("{}/stripe/v1/customers", s.base))).await;
    let e = none.error(401);
    assert_eq!(e["type"], "invalid_request_error");
    assert!(e["message"]
        .as_str()
        .unwrap()
        .starts_with("You did not provide an API key."));
}

#[tokio::test]
async fn a_configured_key_replaces_the_default() {
    let s = start_with(Sandbox::with_config(SandboxConfig {
        stripe_secret_key: "sk_test_custom_key_0042".into(),
        ..Default::default()
    }))
    .await;
    assert_eq!(s.get("/v1/customers").await.status, 401);
    let ok = s
        .send(
            s.http
                .get(format!("{}/stripe/v1/customers", s.base))
                .bearer_auth("sk_test_custom_key_0042"),
        )
        .await;
    assert_eq!(ok.status, 200);
}

#[tokio::test]
async fn every_response_has_a_request_id_and_json() {
    let s = start().await;
    let answers = [
        s.get("/v1/customers").await,
        s.send(s.http.get(format!("{}/stripe/v1/customers", s.base))).await,
        s.get("/v1/no_such_thing").await,
        s.post("/v1/payment_intents", "currency=usd").await,
        s.get("/v1/customers/cus_missing").await,
    ];
    let statuses: Vec<u16> = answers.iter().map(|a| a.status.as_u16()).collect();
    assert_eq!(statuses, vec![200, 401, 404, 400, 404]);
    let mut seen = std::collections::HashSet::new();
    for a in &answers {
        let id = a.header("request-id").expect("Request-Id");
        assert!(id.starts_with("req_") && id.len() > 8, "{id}");
        assert!(seen.insert(id.to_owned()), "request ids are unique");
        assert_eq!(a.header("content-type"), Some("application/json"));
    }

    // Even a response the fault layer made up.
    let (status, _) = s
        .control(
            Method::POST,
            "/faults",
            Some(json!({ "path": "/stripe/v1/customers", "action": { "kind": "status", "status": 500 } })),
        )
        .await;
    assert_eq!(status, 201);
    let faulted = s.get("/v1/customers").await;
    assert_eq!(faulted.status, 500);
    assert!(faulted.header("request-id").unwrap().starts_with("req_"));
}

#[tokio::test]
async fn unknown_routes_get_stripes_404() {
    let s = start().await;
    let e = s.get("/v1/nope").await.error(404);
    assert_eq!(e["type"], "invalid_request_error");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("Unrecognized request URL (GET: /v1/nope)."),
        "{e}"
    );
    let e = s.post("/v1/customers/cus_x/explode", "").await.error(404);
    assert!(e["message"]
        .as_str()
        .unwrap()
        .contains("(POST: /v1/customers/cus_x/explode)"));
    // A known path with a method Stripe does not serve there.
    let e = s.delete("/v1/payment_intents").await.error(404);
    assert!(e["message"].as_str().unwrap().contains("DELETE: /v1/payment_intents"));
}

#[tokio::test]
async fn nested_keys_decode_rack_style_raw_or_escaped() {
    let s = start().await;
    let c = s
        .post(
            "/v1/customers",
            "email=ada%40example.test&metadata[patient_id]=p-42&metadata%5Bnote%5D=first+visit%21&name=Ada%20L",
        )
        .await
        .ok();
    assert_eq!(c["metadata"], json!({ "patient_id": "p-42", "note": "first visit!" }));
    assert_eq!(c["name"], "Ada L");
    let cus = c["id"].as_str().unwrap();

    // expand[] (curl style) and expand[n] (the SDKs' style), raw and escaped.
    let appended = s
        .post(
            "/v1/payment_intents",
            &format!(
                "amount=1500&currency=USD&customer={cus}&payment_method=pm_card_visa&confirm=true\
                 &expand[]=latest_charge&expand[]=customer"
            ),
        )
        .await
        .ok();
    assert_eq!(appended["currency"], "usd");
    assert_eq!(appended["latest_charge"]["object"], "charge");
    assert_eq!(appended["customer"]["id"], cus);
    let indexed = s
        .post(
            "/v1/payment_intents",
            &format!(
                "amount=1500&currency=usd&customer={cus}&payment_method=pm_card_visa&confirm=true\
                 &expand%5B1%5D=customer&expand%5B0%5D=latest_charge&payment_method_types%5B0%5D=card"
            ),
        )
        .await
        .ok();
    assert_eq!(indexed["latest_charge"]["amount"], 1500);
    assert_eq!(indexed["customer"]["email"], "ada@example.test");
    assert_eq!(indexed["payment_method_types"], json!(["card"]));

    // GET parameters come from the query string; dotted paths expand nested ids.
    let pi = indexed["id"].as_str().unwrap();
    let got = s
        .get(&format!(
            "/v1/payment_intents/{pi}?expand[0]=latest_charge.customer&expand[1]=payment_method"
        ))
        .await
        .ok();
    assert_eq!(got["latest_charge"]["customer"]["id"], cus);
    assert_eq!(got["payment_method"]["card"]["last4"], "4242");

    // An empty metadata value removes the key.
    let updated = s.post(&format!("/v1/customers/{cus}"), "metadata[note]=").await.ok();
    assert_eq!(updated["metadata"], json!({ "patient_id": "p-42" }));

    // Bad values are Stripe's 400s naming the parameter.
    let e = s
        .post("/v1/payment_intents", "amount=ten&currency=usd")
        .await
        .error(400);
    assert_eq!(
        (e["code"].clone(), e["param"].clone()),
        (json!("parameter_invalid_integer"), json!("amount"))
    );
    let e = s.post("/v1/customers", "emial=x").await.error(400);
    assert_eq!(e["code"], "parameter_unknown");
    assert_eq!(e["message"], "Received unknown parameter: emial");
    let e = s.post("/v1/payment_intents", "currency=usd").await.error(400);
    assert_eq!(e["message"], "Missing required param: amount.");
}

// ---- customers ----

#[tokio::test]
async fn customers_are_created_retrieved_and_listed_newest_first() {
    let s = start().await;
    let mut made = Vec::new();
    for i in 0..5 {
        let c = s
            .post("/v1/customers", &format!("email=c{i}%40example.test&name=C{i}"))
            .await
            .ok();
        assert_eq!(c["object"], "customer");
        assert!(c["id"].as_str().unwrap().starts_with("cus_"));
        made.push(c["id"].as_str().unwrap().to_owned());
    }
    let got = s.get(&format!("/v1/customers/{}", made[2])).await.ok();
    assert_eq!(got["email"], "c2@example.test");

    let first = s.get("/v1/customers?limit=2").await.ok();
    assert_eq!(first["object"], "list");
    assert_eq!(first["url"], "/v1/customers");
    assert_eq!(ids(&first), vec![made[4].clone(), made[3].clone()]);
    assert_eq!(first["has_more"], true);
    let second = s
        .get(&format!("/v1/customers?limit=2&starting_after={}", made[3]))
        .await
        .ok();
    assert_eq!(ids(&second), vec![made[2].clone(), made[1].clone()]);
    let last = s
        .get(&format!("/v1/customers?limit=2&starting_after={}", made[1]))
        .await
        .ok();
    assert_eq!(ids(&last), vec![made[0].clone()]);
    assert_eq!(last["has_more"], false);
    let by_email = s.get("/v1/customers?email=c3%40example.test").await.ok();
    assert_eq!(ids(&by_email), vec![made[3].clone()]);
    assert_eq!(s.get("/v1/customers?limit=0").await.status, 400);

    let e = s.get("/v1/customers/cus_nobody").await.error(404);
    assert_eq!(
        e,
        json!({
            "type": "invalid_request_error", "code": "resource_missing", "param": "id",
            "message": "No such customer: 'cus_nobody'",
            "doc_url": "https://stripe.com/docs/error-codes/resource-missing"
        })
    );

    let gone = s.delete(&format!("/v1/customers/{}", made[0])).await.ok();
    assert_eq!(gone, json!({ "id": made[0], "object": "customer", "deleted": true }));
    assert_eq!(s.get(&format!("/v1/customers/{}", made[0])).await.ok()["deleted"], true);
    assert_eq!(ids(&s.get("/v1/customers?limit=100").await.ok()).len(), 4);
}

// ---- setup intents and test cards ----

#[tokio::test]
async fn a_setup_intent_confirmed_with_pm_card_visa_succeeds_and_attaches_the_card() {
    let s = start().await;
    let cus = s.customer().await;
    let si = s
        .post(
            "/v1/setup_intents",
            &format!("customer={cus}&payment_method_types[0]=card&usage=off_session"),
        )
        .await
        .ok();
    assert_eq!(si["status"], "requires_payment_method");
    assert!(si["client_secret"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}_secret_", si["id"].as_str().unwrap())));
    let si_id = si["id"].as_str().unwrap();
    let confirmed = s
        .post(
            &format!("/v1/setup_intents/{si_id}/confirm"),
            "payment_method=pm_card_visa",
        )
        .await
        .ok();
    assert_eq!(confirmed["status"], "succeeded");
    let pm = confirmed["payment_method"].as_str().unwrap();
    assert!(
        pm.starts_with("pm_") && pm != "pm_card_visa",
        "a fresh PaymentMethod: {pm}"
    );
    assert_eq!(
        s.get(&format!("/v1/setup_intents/{si_id}")).await.ok()["status"],
        "succeeded"
    );

    let method = s.get(&format!("/v1/payment_methods/{pm}")).await.ok();
    assert_eq!(method["customer"], cus);
    assert_eq!(method["card"]["brand"], "visa");
    assert_eq!(method["card"]["last4"], "4242");
    let saved = s
        .get(&format!("/v1/customers/{cus}/payment_methods?type=card"))
        .await
        .ok();
    assert_eq!(ids(&saved), vec![pm.to_owned()]);

    // Confirming again is Stripe's unexpected-state error.
    let e = s
        .post(&format!("/v1/setup_intents/{si_id}/confirm"), "")
        .await
        .error(400);
    assert_eq!(e["code"], "setup_intent_unexpected_state");

    // Dashboard-style automatic payment methods need a return_url when confirming.
    let e = s
        .post(
            "/v1/setup_intents",
            &format!("customer={cus}&payment_method=pm_card_visa&confirm=true&automatic_payment_methods[enabled]=true"),
        )
        .await
        .error(400);
    assert!(e["message"].as_str().unwrap().contains("return_url"));
}

#[tokio::test]
async fn decline_cards_refuse_to_attach() {
    let s = start().await;
    let cus = s.customer().await;
    for (card, decline) in [
        ("pm_card_chargeDeclined", "generic_decline"),
        ("pm_card_visa_chargeDeclined", "generic_decline"),
        ("pm_card_visa_chargeDeclinedInsufficientFunds", "insufficient_funds"),
        ("pm_card_chargeDeclinedLostCard", "lost_card"),
    ] {
        let e = s
            .post(
                &format!("/v1/payment_methods/{card}/attach"),
                &format!("customer={cus}"),
            )
            .await
            .error(402);
        assert_eq!(e["type"], "card_error", "{card}");
        assert_eq!(e["code"], "card_declined", "{card}");
        assert_eq!(e["decline_code"], decline, "{card}");
    }
    let e = s
        .post(
            "/v1/payment_methods/pm_card_chargeDeclinedExpiredCard/attach",
            &format!("customer={cus}"),
        )
        .await
        .error(402);
    assert_eq!(e["code"], "expired_card");

    // Through a SetupIntent: 402 with the failed SetupIntent embedded.
    let e = s
        .post(
            "/v1/setup_intents",
            &format!("customer={cus}&payment_method=pm_card_chargeDeclined&confirm=true"),
        )
        .await
        .error(402);
    assert_eq!(e["setup_intent"]["status"], "requires_payment_method");
    assert_eq!(e["setup_intent"]["last_setup_error"]["code"], "card_declined");
    let saved = s.get(&format!("/v1/customers/{cus}/payment_methods")).await.ok();
    assert!(ids(&saved).is_empty(), "no declined card is saved");

    // The card that fails later attaches fine.
    let ok = s
        .post(
            "/v1/payment_methods/pm_card_chargeCustomerFail/attach",
            &format!("customer={cus}"),
        )
        .await
        .ok();
    assert_eq!(ok["customer"], cus);
    assert_eq!(ok["card"]["last4"], "0341");
    // A card saved for one customer cannot be charged for another.
    let other = s.customer().await;
    let e = s
        .post(
            "/v1/payment_intents",
            &format!(
                "amount=500&currency=usd&customer={other}&payment_method={}",
                ok["id"].as_str().unwrap()
            ),
        )
        .await
        .error(400);
    assert!(e["message"].as_str().unwrap().contains("belongs to the Customer"));
}

// ---- payment intents ----

#[tokio::test]
async fn an_off_session_payment_succeeds_with_a_charge() {
    let s = start().await;
    let (cus, pm) = s.customer_with_card("pm_card_visa").await;
    let pi = s
        .post(
            "/v1/payment_intents",
            &format!(
                "amount=12500&currency=usd&customer={cus}&payment_method={pm}&off_session=true&confirm=true\
                 &metadata[visit_id]=v-1&description=Consult"
            ),
        )
        .await
        .ok();
    assert_eq!(pi["object"], "payment_intent");
    assert_eq!(pi["status"], "succeeded");
    assert_eq!(pi["amount"], 12500);
    assert_eq!(pi["amount_received"], 12500);
    assert_eq!(pi["metadata"], json!({ "visit_id": "v-1" }));
    assert_eq!(pi["last_payment_error"], Value::Null);
    let ch = pi["latest_charge"].as_str().unwrap();
    assert!(ch.starts_with("ch_"));
    let charge = s.get(&format!("/v1/charges/{ch}")).await.ok();
    assert_eq!(
        (
            charge["amount"].clone(),
            charge["amount_captured"].clone(),
            charge["paid"].clone()
        ),
        (json!(12500), json!(12500), json!(true))
    );
    assert_eq!(charge["payment_intent"], pi["id"]);
    assert_eq!(charge["status"], "succeeded");

    // Create, then confirm.
    let draft = s
        .post(
            "/v1/payment_intents",
            &format!("amount=900&currency=usd&customer={cus}"),
        )
        .await
        .ok();
    assert_eq!(draft["status"], "requires_payment_method");
    let id = draft["id"].as_str().unwrap();
    let e = s
        .post(&format!("/v1/payment_intents/{id}/confirm"), "")
        .await
        .error(400);
    assert_eq!(e["code"], "payment_intent_unexpected_state");
    let done = s
        .post(
            &format!("/v1/payment_intents/{id}/confirm"),
            &format!("payment_method={pm}&off_session=true"),
        )
        .await
        .ok();
    assert_eq!(done["status"], "succeeded");
    let e = s.post(&format!("/v1/payment_intents/{id}/cancel"), "").await.error(400);
    assert_eq!(e["code"], "payment_intent_unexpected_state");

    // Under 50 cents is too small for usd.
    let e = s.charge(&cus, &pm, 49).await.error(400);
    assert_eq!(e["code"], "amount_too_small");
}

#[tokio::test]
async fn charge_customer_fail_declines_with_the_payment_intent_embedded() {
    let s = start().await;
    let (cus, pm) = s.customer_with_card("pm_card_chargeCustomerFail").await;
    let e = s.charge(&cus, &pm, 5000).await.error(402);
    assert_eq!(e["type"], "card_error");
    assert_eq!(e["code"], "card_declined");
    assert_eq!(e["decline_code"], "generic_decline");
    assert_eq!(e["message"], "Your card was declined.");
    assert!(e["charge"].as_str().unwrap().starts_with("ch_"));
    assert_eq!(e["payment_method"]["id"], pm);
    let pi = &e["payment_intent"];
    assert_eq!(pi["object"], "payment_intent");
    assert_eq!(pi["status"], "requires_payment_method");
    assert_eq!(pi["last_payment_error"]["code"], "card_declined");
    assert_eq!(pi["last_payment_error"]["payment_method"]["id"], pm);
    assert_eq!(pi["latest_charge"], e["charge"]);

    let stored = s
        .get(&format!("/v1/payment_intents/{}", pi["id"].as_str().unwrap()))
        .await
        .ok();
    assert_eq!(stored["status"], "requires_payment_method");
    let charge = s
        .get(&format!("/v1/charges/{}", e["charge"].as_str().unwrap()))
        .await
        .ok();
    assert_eq!(
        (charge["status"].clone(), charge["failure_code"].clone()),
        (json!("failed"), json!("card_declined"))
    );
}

#[tokio::test]
async fn authentication_required_fails_off_session_and_waits_on_session() {
    let s = start().await;
    let cus = s.customer().await;
    let pm = s
        .post(
            "/v1/payment_methods/pm_card_authenticationRequired/attach",
            &format!("customer={cus}"),
        )
        .await
        .ok()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let e = s.charge(&cus, &pm, 3000).await.error(402);
    assert_eq!(e["type"], "card_error");
    assert_eq!(e["code"], "authentication_required");
    assert_eq!(e["decline_code"], "authentication_required");
    assert_eq!(e["payment_intent"]["status"], "requires_payment_method");
    assert_eq!(
        e["payment_intent"]["last_payment_error"]["code"],
        "authentication_required"
    );

    // On-session: requires_action until the patient authenticates.
    let pi = s
        .post(
            "/v1/payment_intents",
            &format!("amount=3000&currency=usd&customer={cus}&payment_method={pm}&confirm=true"),
        )
        .await
        .ok();
    assert_eq!(pi["status"], "requires_action");
    assert_eq!(pi["next_action"]["type"], "use_stripe_sdk");
    let id = pi["id"].as_str().unwrap();
    let (status, done) = s
        .control(
            Method::POST,
            &format!("/stripe/payment_intents/{id}/authenticate"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["status"], "succeeded");

    // Set up with 3DS once, then off-session works (pm_card_authenticationRequiredOnSetup).
    let si = s
        .post(
            "/v1/setup_intents",
            &format!("customer={cus}&payment_method=pm_card_authenticationRequiredOnSetup&confirm=true"),
        )
        .await
        .ok();
    assert_eq!(si["status"], "requires_action");
    let si_id = si["id"].as_str().unwrap();
    let (_, si) = s
        .control(
            Method::POST,
            &format!("/stripe/setup_intents/{si_id}/authenticate"),
            None,
        )
        .await;
    assert_eq!(si["status"], "succeeded");
    let pm2 = si["payment_method"].as_str().unwrap();
    assert_eq!(s.charge(&cus, pm2, 3000).await.ok()["status"], "succeeded");
}

// ---- idempotency ----

#[tokio::test]
async fn the_same_key_and_params_replay_the_stored_response_errors_included() {
    let s = start().await;
    let form = "email=once%40example.test&metadata[k]=v";
    let first = s.post_with_key("/v1/customers", form, "key-customer-1").await;
    assert_eq!(first.header("idempotency-key"), Some("key-customer-1"));
    assert_eq!(first.header("idempotent-replayed"), None);
    let again = s.post_with_key("/v1/customers", form, "key-customer-1").await;
    assert_eq!(again.status, 200);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    assert_ne!(again.header("request-id"), first.header("request-id"));
    assert_eq!(
        ids(&s.get("/v1/customers").await.ok()).len(),
        1,
        "one customer, not two"
    );

    // A 402 is stored and replayed as a 402, without charging again.
    let (cus, pm) = s.customer_with_card("pm_card_chargeCustomerFail").await;
    let charge = format!("amount=700&currency=usd&customer={cus}&payment_method={pm}&confirm=true&off_session=true");
    let declined = s.post_with_key("/v1/payment_intents", &charge, "key-decline").await;
    assert_eq!(declined.status, 402);
    let replayed = s.post_with_key("/v1/payment_intents", &charge, "key-decline").await;
    assert_eq!(replayed.status, 402);
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));
    assert_eq!(replayed.body, declined.body);
    assert_eq!(ids(&s.get("/v1/payment_intents").await.ok()).len(), 1);

    // Other parameters with a used key: 400 idempotency_error.
    let e = s
        .post_with_key("/v1/customers", "email=other%40example.test", "key-customer-1")
        .await
        .error(400);
    assert_eq!(e["type"], "idempotency_error");
    assert_eq!(
        e["message"],
        "Keys for idempotent requests can only be used with the same parameters they were first used with. \
         Try using a key other than 'key-customer-1' if you meant to execute a different request."
    );
    // ... and on another endpoint.
    let e = s.post_with_key("/v1/coupons", form, "key-customer-1").await.error(400);
    assert_eq!(e["type"], "idempotency_error");

    // A validation failure stores nothing: the key can then be used for a valid request.
    let bad = s
        .post_with_key("/v1/payment_intents", "currency=usd", "key-retry")
        .await;
    assert_eq!(bad.status, 400);
    let good = s
        .post_with_key("/v1/payment_intents", "currency=usd&amount=1000", "key-retry")
        .await;
    assert_eq!(good.status, 200, "{}", good.body);

    // GETs ignore keys.
    let a = s
        .send(s.api(Method::GET, "/v1/customers").header("Idempotency-Key", "key-get"))
        .await;
    assert_eq!(a.header("idempotent-replayed"), None);
}

#[tokio::test]
async fn a_key_still_in_flight_is_a_409() {
    let s = Arc::new(start().await);
    // The fault layer's latency runs before the handler (before the key is taken), so the
    // simulator's own delay holds the first request while it owns the key.
    let (status, _) = s
        .control(Method::POST, "/stripe/delay", Some(json!({ "ms": 800, "times": 1 })))
        .await;
    assert_eq!(status, 204);
    let first = tokio::spawn({
        let s = s.clone();
        async move {
            s.post_with_key("/v1/customers", "email=slow%40example.test", "key-slow")
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(250)).await;
    let (_, held) = s.control(Method::GET, "/stripe/idempotency", None).await;
    assert_eq!(held["in_flight"], 1);
    let conflict = s
        .post_with_key("/v1/customers", "email=slow%40example.test", "key-slow")
        .await;
    assert_eq!(conflict.header("stripe-should-retry"), Some("true"));
    let e = conflict.error(409);
    assert_eq!(e["code"], "idempotency_key_in_use");
    let first = first.await.unwrap();
    assert_eq!(first.status, 200);
    let after = s
        .post_with_key("/v1/customers", "email=slow%40example.test", "key-slow")
        .await;
    assert_eq!(after.header("idempotent-replayed"), Some("true"));
    assert_eq!(after.body, first.body);
}

// ---- refunds ----

#[tokio::test]
async fn refunds_partial_repeated_full_and_over_refund_refused() {
    let s = start().await;
    let (cus, pm) = s.customer_with_card("pm_card_visa").await;
    let pi = s.charge(&cus, &pm, 10000).await.ok();
    let pi_id = pi["id"].as_str().unwrap();
    let ch = pi["latest_charge"].as_str().unwrap();

    let r1 = s
        .post(
            "/v1/refunds",
            &format!("payment_intent={pi_id}&amount=3000&reason=requested_by_customer"),
        )
        .await
        .ok();
    assert_eq!(r1["object"], "refund");
    assert_eq!(
        (r1["amount"].clone(), r1["status"].clone()),
        (json!(3000), json!("succeeded"))
    );
    assert_eq!(r1["charge"], ch);
    assert_eq!(r1["payment_intent"], pi_id);
    let r2 = s.post("/v1/refunds", &format!("charge={ch}&amount=3000")).await.ok();
    assert_eq!(r2["amount"], 3000);
    let charge = s.get(&format!("/v1/charges/{ch}")).await.ok();
    assert_eq!(
        (charge["amount_refunded"].clone(), charge["refunded"].clone()),
        (json!(6000), json!(false))
    );

    let e = s
        .post("/v1/refunds", &format!("payment_intent={pi_id}&amount=5000"))
        .await
        .error(400);
    assert_eq!(e["type"], "invalid_request_error");
    assert_eq!(e["param"], "amount");
    assert_eq!(
        e["message"],
        "Refund amount ($50.00) is greater than unrefunded amount on charge ($40.00)"
    );

    let rest = s.post("/v1/refunds", &format!("payment_intent={pi_id}")).await.ok();
    assert_eq!(rest["amount"], 4000, "no amount refunds what remains");
    let charge = s.get(&format!("/v1/charges/{ch}")).await.ok();
    assert_eq!(
        (charge["amount_refunded"].clone(), charge["refunded"].clone()),
        (json!(10000), json!(true))
    );
    assert_eq!(charge["refunds"]["data"].as_array().unwrap().len(), 3);

    let e = s.post("/v1/refunds", &format!("charge={ch}&amount=1")).await.error(400);
    assert_eq!(e["code"], "charge_already_refunded");
    assert_eq!(e["message"], format!("Charge {ch} has already been refunded."));

    let listed = s.get(&format!("/v1/refunds?payment_intent={pi_id}")).await.ok();
    assert_eq!(ids(&listed).len(), 3);
    assert_eq!(
        s.get(&format!("/v1/refunds/{}", r1["id"].as_str().unwrap())).await.ok()["amount"],
        3000
    );
    let e = s.post("/v1/refunds", "amount=100").await.error(400);
    assert_eq!(e["code"], "parameter_missing");
}

// ---- coupons and promotion codes ----

#[tokio::test]
async fn coupons_say_whether_they_are_valid_and_promotion_codes_find_them() {
    let s = start().await;
    let welcome = s.get(&format!("/v1/coupons/{}", seed::WELCOME20)).await.ok();
    assert_eq!(welcome["percent_off"], 20.0);
    assert_eq!(welcome["amount_off"], Value::Null);
    assert_eq!(welcome["valid"], true);
    let save = s.get("/v1/coupons/SAVE50").await.ok();
    assert_eq!(
        (save["amount_off"].clone(), save["currency"].clone()),
        (json!(5000), json!("usd"))
    );
    let expired = s.get("/v1/coupons/EXPIRED10").await.ok();
    assert_eq!(expired["valid"], false);
    assert!(expired["redeem_by"].as_i64().unwrap() < chrono::Utc::now().timestamp());
    let once = s.get("/v1/coupons/ONCE").await.ok();
    assert_eq!(
        (once["max_redemptions"].clone(), once["times_redeemed"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(once["valid"], false);
    assert_eq!(
        s.get("/v1/coupons/NOPE").await.error(404)["message"],
        "No such coupon: 'NOPE'"
    );

    // amount_off is in cents; the currency is stored lowercase.
    let twice = s
        .post(
            "/v1/coupons",
            "id=TWICE&amount_off=1999&currency=USD&max_redemptions=2&duration=once",
        )
        .await
        .ok();
    assert_eq!(
        (twice["amount_off"].clone(), twice["currency"].clone()),
        (json!(1999), json!("usd"))
    );
    assert_eq!(twice["valid"], true);
    for n in 1..=2 {
        let (status, c) = s.control(Method::POST, "/stripe/coupons/TWICE/redeem", None).await;
        assert_eq!(status, 200, "{c}");
        assert_eq!(c["times_redeemed"], n);
    }
    assert_eq!(s.get("/v1/coupons/TWICE").await.ok()["valid"], false);
    let (status, _) = s.control(Method::POST, "/stripe/coupons/TWICE/redeem", None).await;
    assert_eq!(status, 400, "an exhausted coupon cannot be redeemed");
    let e = s.post("/v1/coupons", "id=TWICE&percent_off=5").await.error(400);
    assert_eq!(e["code"], "resource_already_exists");
    let e = s.post("/v1/coupons", "amount_off=100").await.error(400);
    assert_eq!(e["param"], "currency");
    let e = s
        .post("/v1/coupons", "amount_off=100&currency=usd&percent_off=5")
        .await
        .error(400);
    assert!(e["message"].as_str().unwrap().contains("only specify one"));

    // Promotion codes: found by their customer-facing code, case-insensitively.
    let found = s.get("/v1/promotion_codes?code=spring&active=true").await.ok();
    assert_eq!(ids(&found), vec![seed::SPRING_ID.to_owned()]);
    let spring = &found["data"][0];
    assert_eq!(spring["code"], "SPRING");
    assert_eq!(spring["coupon"]["id"], "WELCOME20");
    assert_eq!(spring["coupon"]["percent_off"], 20.0);
    assert_eq!(spring["promotion"], json!({ "type": "coupon", "coupon": "WELCOME20" }));
    assert!(ids(&s.get("/v1/promotion_codes?code=WINTER").await.ok()).is_empty());

    let promo = s
        .post("/v1/promotion_codes", "coupon=SAVE50&code=CLINIC50&max_redemptions=1")
        .await
        .ok();
    assert!(promo["id"].as_str().unwrap().starts_with("promo_"));
    assert_eq!(promo["coupon"]["amount_off"], 5000);
    let e = s
        .post("/v1/promotion_codes", "coupon=SAVE50&code=clinic50")
        .await
        .error(400);
    assert!(e["message"].as_str().unwrap().contains("already exists"));
    let (status, redeemed) = s
        .control(Method::POST, "/stripe/promotion_codes/clinic50/redeem", None)
        .await;
    assert_eq!(status, 200, "{redeemed}");
    assert_eq!(redeemed["times_redeemed"], 1);
    assert_eq!(s.get("/v1/coupons/SAVE50").await.ok()["times_redeemed"], 1);
    let (status, _) = s
        .control(Method::POST, "/stripe/promotion_codes/CLINIC50/redeem", None)
        .await;
    assert_eq!(status, 400, "max_redemptions reached");
    let retrieved = s.get(&format!("/v1/promotion_codes/{}", seed::SPRING_ID)).await.ok();
    assert_eq!(retrieved["code"], "SPRING");
}

// ---- events and webhooks ----

#[tokio::test]
async fn events_are_stored_and_delivered_signed() {
    let (url, receiver) = Receiver::<Delivery>::start("/hook", 0).await;
    let s = start().await;
    let (status, w) = s
        .control(Method::PUT, "/stripe/webhook", Some(json!({ "url": url })))
        .await;
    assert_eq!(status, 200);
    assert_eq!(w["secret"], WHSEC);

    let (cus, pm) = s.customer_with_card("pm_card_visa").await;
    let pi = s.charge(&cus, &pm, 4200).await.ok();
    let kinds = [
        "customer.created",
        "setup_intent.created",
        "payment_method.attached",
        "setup_intent.succeeded",
        "payment_intent.created",
        "charge.succeeded",
        "payment_intent.succeeded",
    ];
    let got = receiver.wait_for(kinds.len()).await;
    let delivered: Vec<String> = got
        .iter()
        .map(|d| d.event()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(delivered, kinds, "delivered in the order they happened");
    for d in &got {
        assert!(
            signature_ok(&d.signature, &d.body, WHSEC),
            "bad signature {}",
            d.signature
        );
        assert!(!signature_ok(&d.signature, &d.body, "whsec_other_secret"));
    }
    let succeeded = got.last().unwrap().event();
    assert_eq!(succeeded["object"], "event");
    assert!(succeeded["id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(succeeded["data"]["object"]["id"], pi["id"]);
    assert_eq!(succeeded["data"]["object"]["status"], "succeeded");
    assert_eq!(succeeded["livemode"], false);
    assert!(succeeded["request"]["id"].as_str().unwrap().starts_with("req_"));

    // The API serves the same events.
    let listed = s.get("/v1/events?type=payment_intent.succeeded").await.ok();
    assert_eq!(ids(&listed), vec![succeeded["id"].as_str().unwrap().to_owned()]);
    let charges = s.get("/v1/events?type=charge.*").await.ok();
    assert_eq!(ids(&charges).len(), 1);
    let one = s
        .get(&format!("/v1/events/{}", succeeded["id"].as_str().unwrap()))
        .await
        .ok();
    assert_eq!(one, succeeded);

    // The control view shows each delivery.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let events = s.events().await;
    assert!(events.iter().all(|e| e["delivery"] == "delivered"), "{events:?}");
    assert_eq!(events[0]["attempts"][0]["status"], 200);
    assert_eq!(events[0]["attempts"][0]["trigger"], "auto");
    assert_eq!(s.counts().await["EFFECT event.delivered"], kinds.len());
}

#[tokio::test]
async fn a_webhook_url_can_be_configured_at_start_and_paused() {
    let (url, receiver) = Receiver::<Delivery>::start("/hook", 0).await;
    let s = start_with(Sandbox::with_config(SandboxConfig {
        stripe_webhook_url: Some(url),
        ..Default::default()
    }))
    .await;
    s.customer().await;
    assert_eq!(receiver.wait_for(1).await[0].event()["type"], "customer.created");

    s.control(Method::PUT, "/stripe/webhook", Some(json!({ "paused": true })))
        .await;
    s.customer().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.all().len(), 1, "nothing delivered while paused");
    let events = s.events().await;
    assert_eq!(events[1]["delivery"], "not_sent");
    assert_eq!(events[1]["event"]["pending_webhooks"], 0);
}

#[tokio::test]
async fn events_can_be_delivered_again_and_in_a_chosen_order() {
    let (url, receiver) = Receiver::<Delivery>::start("/hook", 0).await;
    let s = start().await;
    s.control(
        Method::PUT,
        "/stripe/webhook",
        Some(json!({ "url": url, "paused": true })),
    )
    .await;
    let (cus, pm) = s.customer_with_card("pm_card_visa").await;
    s.charge(&cus, &pm, 2500).await.ok();
    let created = s.event_id("customer.created").await;
    let attached = s.event_id("payment_method.attached").await;
    let succeeded = s.event_id("payment_intent.succeeded").await;

    // Duplicate delivery: the same event three times, each validly signed.
    let (status, out) = s
        .control(
            Method::POST,
            &format!("/stripe/events/{succeeded}/deliver?times=3"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["attempts"].as_array().unwrap().len(), 3);
    let got = receiver.all();
    assert_eq!(got.len(), 3);
    for d in &got {
        assert_eq!(d.event()["id"], succeeded.as_str());
        assert!(signature_ok(&d.signature, &d.body, WHSEC));
        assert_eq!(d.body, got[0].body, "the same bytes every time");
    }

    // Out of order: exactly the order asked for.
    let order = vec![succeeded.clone(), created.clone(), attached.clone()];
    let (status, _) = s
        .control(Method::POST, "/stripe/deliver", Some(json!({ "events": order })))
        .await;
    assert_eq!(status, 200);
    let got: Vec<String> = receiver.all()[3..]
        .iter()
        .map(|d| d.event()["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, order);

    let (status, _) = s
        .control(Method::POST, "/stripe/deliver", Some(json!({ "events": ["evt_nope"] })))
        .await;
    assert_eq!(status, 404);
    let events = s.events().await;
    let record = events.iter().find(|e| e["id"] == succeeded.as_str()).unwrap();
    assert_eq!(record["attempts"].as_array().unwrap().len(), 4);
    assert_eq!(record["delivery"], "delivered");
}

#[tokio::test]
async fn a_failed_delivery_is_retried() {
    let (url, receiver) = Receiver::<Delivery>::start("/hook", 2).await;
    let s = start().await;
    s.control(Method::PUT, "/stripe/webhook", Some(json!({ "url": url })))
        .await;
    s.customer().await;
    let got = receiver.wait_for(3).await;
    let answered: Vec<u16> = got.iter().map(|d| d.answered).collect();
    assert_eq!(answered, vec![500, 500, 200]);
    assert!(got.iter().all(|d| d.event()["type"] == "customer.created"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let events = s.events().await;
    assert_eq!(events[0]["delivery"], "delivered");
    let triggers: Vec<&str> = events[0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["trigger"].as_str().unwrap())
        .collect();
    assert_eq!(triggers, vec!["auto", "retry", "retry"]);
    let counts = s.counts().await;
    assert_eq!(counts["EFFECT event.delivery_failed"], 2);
    assert_eq!(counts["EFFECT event.delivered"], 1);
}

// ---- ledger and reset ----

#[tokio::test]
async fn the_ledger_shows_every_effect() {
    let s = start().await;
    let (cus, pm) = s.customer_with_card("pm_card_visa").await;
    let pi = s.charge(&cus, &pm, 8000).await.ok();
    s.post(
        "/v1/refunds",
        &format!("payment_intent={}&amount=1000", pi["id"].as_str().unwrap()),
    )
    .await
    .ok();
    let (bad_cus, bad_pm) = s.customer_with_card("pm_card_chargeCustomerFail").await;
    let declined = s.charge(&bad_cus, &bad_pm, 8000).await.error(402);
    s.control(Method::POST, "/stripe/coupons/WELCOME20/redeem", None).await;

    let counts = s.counts().await;
    for (effect, n) in [
        ("EFFECT customer.created", 2),
        ("EFFECT payment_method.attached", 2),
        ("EFFECT setup_intent.succeeded", 2),
        ("EFFECT payment_intent.succeeded", 1),
        ("EFFECT payment_intent.payment_failed", 1),
        ("EFFECT charge.created", 2),
        ("EFFECT refund.created", 1),
        ("EFFECT coupon.redeemed", 1),
    ] {
        assert_eq!(counts[effect], n, "{effect}: {counts}");
    }
    // Calls are still counted as calls.
    assert_eq!(counts["POST /stripe/v1/customers"], 2);

    let (_, ledger) = s.control(Method::GET, "/ledger?vendor=stripe", None).await;
    let entries = ledger["entries"].as_array().unwrap();
    let effect = |kind: &str| {
        entries
            .iter()
            .filter(|e| e["method"] == "EFFECT" && e["path"] == kind)
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(effect("payment_intent.succeeded")[0]["object"], pi["id"]);
    assert_eq!(effect("payment_intent.succeeded")[0]["detail"], "$80.00");
    assert_eq!(effect("payment_intent.succeeded")[0]["status"], Value::Null);
    assert_eq!(
        effect("payment_intent.payment_failed")[0]["object"],
        declined["payment_intent"]["id"]
    );
    assert_eq!(effect("customer.created")[0]["vendor"], "stripe");
}

#[tokio::test]
async fn reset_restores_the_seeded_coupons_and_forgets_everything_else() {
    let s = start().await;
    let cus = s.customer().await;
    s.control(Method::POST, "/stripe/coupons/WELCOME20/redeem", None).await;
    s.delete("/v1/coupons/SAVE50").await.ok();
    assert_eq!(s.get("/v1/coupons/SAVE50").await.status, 404);
    s.post_with_key("/v1/customers", "name=x", "key-before-reset")
        .await
        .ok();

    let (status, _) = s.control(Method::POST, "/reset", None).await;
    assert_eq!(status, 204);
    assert_eq!(s.get(&format!("/v1/customers/{cus}")).await.status, 404);
    assert_eq!(s.get("/v1/coupons/SAVE50").await.ok()["amount_off"], 5000);
    assert_eq!(s.get("/v1/coupons/WELCOME20").await.ok()["times_redeemed"], 0);
    assert_eq!(s.get("/v1/coupons/ONCE").await.ok()["valid"], false);
    assert_eq!(s.get("/v1/coupons/EXPIRED10").await.ok()["valid"], false);
    assert_eq!(ids(&s.get("/v1/promotion_codes?code=SPRING").await.ok()).len(), 1);
    assert!(ids(&s.get("/v1/events").await.ok()).is_empty());
    assert!(s.events().await.is_empty());
    // Idempotency keys are forgotten too.
    let fresh = s.post_with_key("/v1/customers", "name=y", "key-before-reset").await;
    assert_eq!(fresh.status, 200);
    assert_eq!(fresh.header("idempotent-replayed"), None);
}

#[tokio::test]
async fn the_root_v1_path_serves_stripe_for_stripe_node() {
    // stripe-node can only change host and port: its requests go to `/v1/...` at the root.
    let s = start().await;
    let created = s
        .send(
            s.http
                .post(format!("{}/v1/customers?expand[0]=invoice_settings.default_payment_method", s.base))
                .bearer_auth(KEY)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("email=node%40example.test&payment_method=pm_card_visa&invoice_settings[default_payment_method]=pm_card_visa"),
        )
        .await
        .ok();
    assert_eq!(created["email"], "node@example.test");
    assert_eq!(
        created["invoice_settings"]["default_payment_method"]["card"]["last4"],
        "4242"
    );
    let via_prefix = s
        .get(&format!("/v1/customers/{}", created["id"].as_str().unwrap()))
        .await
        .ok();
    assert_eq!(via_prefix["id"], created["id"]);
    let unauthenticated = s.send(s.http.get(format!("{}/v1/customers", s.base))).await;
    assert!(unauthenticated.header("request-id").is_some());
    assert_eq!(unauthenticated.status, 401);
    // The ledger counts it under the Stripe prefix, like every other Stripe call.
    let counts = s.counts().await;
    assert_eq!(counts["POST /stripe/v1/customers"], 1);
    assert_eq!(counts["GET /stripe/v1/customers"], 1);
}

#[tokio::test]
async fn an_authorisation_that_lapses_is_cancelled_and_cannot_be_captured() {
    let s = start().await;
    let (cus, pm) = s.customer_with_card("pm_card_visa").await;
    let pi = s
        .post(
            "/v1/payment_intents",
            &format!(
                "amount=29900&currency=usd&customer={cus}&payment_method={pm}&off_session=true&confirm=true\
                 &capture_method=manual"
            ),
        )
        .await
        .ok();
    assert_eq!(pi["status"], "requires_capture");
    let id = pi["id"].as_str().unwrap();
    let (status, expired) = s
        .control(
            Method::POST,
            &format!("/stripe/payment_intents/{id}/expire-authorization"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{expired}");
    assert_eq!(
        (expired["status"].as_str(), expired["cancellation_reason"].as_str()),
        (Some("canceled"), Some("automatic"))
    );
    let e = s
        .post(&format!("/v1/payment_intents/{id}/capture"), "")
        .await
        .error(400);
    assert_eq!(e["code"], "payment_intent_unexpected_state");
    // Only an authorisation waiting for capture can lapse.
    let (status, _) = s
        .control(
            Method::POST,
            &format!("/stripe/payment_intents/{id}/expire-authorization"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
