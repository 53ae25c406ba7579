//! The sandbox over real HTTP: the ledger counts calls, and injected faults fire exactly N times.

use std::time::{Duration, Instant};

use era_sandbox::Sandbox;
use serde_json::{json, Value};

struct Running {
    base: String,
    http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
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
    async fn get(&self, path: &str) -> reqwest::Result<reqwest::Response> {
        self.http.get(format!("{}{path}", self.base)).send().await
    }

    async fn fault(&self, fault: Value) {
        let resp = self
            .http
            .post(format!("{}/_sandbox/faults", self.base))
            .json(&fault)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
    }

    async fn ledger(&self) -> Vec<Value> {
        let v: Value = self.get("/_sandbox/ledger").await.unwrap().json().await.unwrap();
        v["entries"].as_array().unwrap().clone()
    }
}

#[tokio::test]
async fn every_vendor_prefix_answers_and_is_counted() {
    let sandbox = start().await;
    for (vendor, prefix) in era_sandbox::VENDORS {
        let resp = sandbox.get(&format!("{prefix}/some/route")).await.unwrap();
        assert_eq!(resp.status(), 404, "{vendor}");
        let body: Value = resp.json().await.unwrap();
        if *vendor == "canvas-fhir" {
            // The FHIR simulator answers unknown routes as Canvas does, with an OperationOutcome.
            assert_eq!(body["issue"][0]["code"], "not-found", "{vendor}");
        } else if *vendor == "stripe" {
            // So does Stripe's, with its own error.
            assert_eq!(body["error"]["type"], "invalid_request_error", "{vendor}");
        } else {
            assert_eq!(body["error"]["type"], "not_simulated", "{vendor}");
        }
    }
    let ledger = sandbox.ledger().await;
    assert_eq!(ledger.len(), era_sandbox::VENDORS.len());
    assert_eq!(ledger[2]["vendor"], "stripe");
    let counts: Value = sandbox
        .get("/_sandbox/ledger/counts?vendor=stripe")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counts, json!({ "GET /stripe/some/route": 1 }));

    let reset = sandbox
        .http
        .post(format!("{}/_sandbox/reset", sandbox.base))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 204);
    assert!(sandbox.ledger().await.is_empty());
}

#[tokio::test]
async fn a_status_fault_fires_for_the_next_n_calls_only() {
    let sandbox = start().await;
    sandbox
        .fault(json!({
            "method": "GET", "path": "/canvas-fhir/Patient", "times": 2,
            "action": { "kind": "status", "status": 503, "body": { "issue": "down" } }
        }))
        .await;
    for _ in 0..2 {
        let resp = sandbox.get("/canvas-fhir/Patient?name=x").await.unwrap();
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.json::<Value>().await.unwrap(), json!({ "issue": "down" }));
    }
    // The fault is spent: the call reaches the simulator, which wants a bearer token.
    assert_eq!(sandbox.get("/canvas-fhir/Patient").await.unwrap().status(), 401);
    // Another route was never affected: Stripe's asks for its API key.
    assert_eq!(sandbox.get("/stripe/v1/customers").await.unwrap().status(), 401);
    let faults: Value = sandbox.get("/_sandbox/faults").await.unwrap().json().await.unwrap();
    assert_eq!(faults, json!([]));
    let ledger = sandbox.ledger().await;
    assert_eq!(ledger[0]["fault"], "status 503");
    assert_eq!(ledger[2]["fault"], Value::Null);
}

#[tokio::test]
async fn latency_delays_the_answer() {
    let sandbox = start().await;
    sandbox.fault(json!({ "path": "/zoom", "latency_ms": 300 })).await;
    let started = Instant::now();
    // Zoom is simulated: without a token the answer is its 401, late all the same.
    assert_eq!(sandbox.get("/zoom/v2/users/me/meetings").await.unwrap().status(), 401);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn a_dropped_connection_gives_the_caller_no_response_but_is_in_the_ledger() {
    let sandbox = start().await;
    for kind in ["drop_before", "drop_after"] {
        sandbox
            .fault(json!({ "path": "/stripe/v1/payment_intents", "action": { "kind": kind } }))
            .await;
        let err = sandbox.get("/stripe/v1/payment_intents").await.expect_err(kind);
        assert!(err.is_request() || err.is_connect() || err.is_body(), "{kind}: {err:?}");
    }
    let ledger = sandbox.ledger().await;
    let faults: Vec<_> = ledger
        .iter()
        .map(|e| (e["fault"].clone(), e["status"].clone()))
        .collect();
    assert_eq!(
        faults,
        vec![(json!("drop_before"), Value::Null), (json!("drop_after"), json!(401))]
    );
}

#[tokio::test]
async fn a_malformed_fault_is_refused_with_the_reason() {
    let sandbox = start().await;
    let resp = sandbox
        .http
        .post(format!("{}/_sandbox/faults", sandbox.base))
        .json(&json!({ "path": "stripe", "latency_ms": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["message"],
        "path must start with /"
    );
}
