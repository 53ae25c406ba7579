//! The clinic's Canvas plugin over real HTTP: a physician's prescriptions (`/_sandbox/canvas/
//! prescriptions`) become FHIR MedicationRequests readable through the API, and each change, like a
//! patient created over FHIR, is a signed event POSTed to a receiver run here (its `X-Signature`
//! checked with our own HMAC); redelivery, chosen order, pause, field errors, reset and the guard.

use std::time::{Duration, Instant};

mod support;

use chrono::{DateTime, Utc};
use era_sandbox::{
    canvas::seed::{self, DemoPatient, ALI_NOLAN_ID, NEELIMA_SINGH_ID},
    Sandbox, SandboxConfig,
};
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;
use support::{Received, Receiver};

/// Not the default: the configured secret is the one that signs.
const SECRET: &str = "plugin-secret-for-these-tests-0123456789";
const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Delivery {
    path: String,
    timestamp: String,
    signature: String,
    user_agent: String,
    content_type: String,
    body: Vec<u8>,
}

impl Delivery {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// `X-Signature` is lowercase hex HMAC-SHA256(secret, "<X-Timestamp>.<raw body>") and the
    /// timestamp is RFC 3339 within 300 s, as the edge checks.
    fn signed_with(&self, secret: &str) -> bool {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(self.timestamp.as_bytes());
        mac.update(b".");
        mac.update(&self.body);
        let expected = hex::encode(mac.finalize().into_bytes());
        let fresh = chrono::DateTime::parse_from_rfc3339(&self.timestamp)
            .is_ok_and(|t| (Utc::now().timestamp() - t.timestamp()).abs() < 300);
        fresh && self.signature == expected
    }
}

impl From<Received> for Delivery {
    fn from(r: Received) -> Self {
        Self {
            timestamp: r.header("x-timestamp"),
            signature: r.header("x-signature"),
            user_agent: r.header("user-agent"),
            content_type: r.header("content-type"),
            path: r.path,
            body: r.body,
        }
    }
}

/// A receiver listening like the edge does, under `/api/webhooks/canvas`.
async fn receiver() -> (String, Receiver<Delivery>) {
    Receiver::start("/api/webhooks/canvas", 0).await
}

struct Canvas {
    base: String,
    http: reqwest::Client,
    /// The OAuth client the token endpoint accepts.
    client: (String, String),
    token: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// A sandbox whose plugin posts to `url` (if any) signed with [`SECRET`].
async fn start(url: Option<String>) -> Canvas {
    start_with(SandboxConfig {
        canvas_plugin_webhook_url: url,
        canvas_plugin_secret: SECRET.into(),
        ..Default::default()
    })
    .await
}

async fn start_with(config: SandboxConfig) -> Canvas {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let client = (config.canvas_client_id.clone(), config.canvas_client_secret.clone());
    tokio::spawn(era_sandbox::run(Sandbox::with_config(config), listener, async {
        let _ = stopped.await;
    }));
    let mut canvas = Canvas {
        base,
        http: reqwest::Client::new(),
        client,
        token: String::new(),
        _stop: stop,
    };
    canvas.token = canvas.new_token().await;
    canvas
}

impl Canvas {
    async fn new_token(&self) -> String {
        let token: Value = self
            .http
            .post(format!("{}/canvas/auth/token/", self.base))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &self.client.0),
                ("client_secret", &self.client.1),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        token["access_token"].as_str().unwrap().to_owned()
    }

    /// A `/_sandbox` call; status and JSON body (`null` when empty).
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

    /// A prescription that must be written; its MedicationRequest id and event id.
    async fn prescribe(&self, patient: &str, medication: &str, dose: &str) -> (String, String) {
        let (status, body) = self
            .control(
                Method::POST,
                "/canvas/prescriptions",
                Some(json!({ "patientId": patient, "medication": medication, "doseLabel": dose })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        (
            body["medicationRequestId"].as_str().unwrap().to_owned(),
            body["eventId"].as_str().unwrap().to_owned(),
        )
    }

    async fn fhir_get(&self, path: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .get(format!("{}/canvas-fhir{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap())
    }

    async fn medication_request(&self, id: &str) -> Value {
        let (status, body) = self.fhir_get(&format!("/MedicationRequest/{id}")).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn events(&self) -> Vec<Value> {
        let (status, body) = self.control(Method::GET, "/canvas/events", None).await;
        assert_eq!(status, 200, "{body}");
        body["events"].as_array().unwrap().clone()
    }

    /// Waits until every event has left `pending` (deliveries answer asynchronously).
    async fn settled_events(&self) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let events = self.events().await;
            if events.iter().all(|e| e["delivery"] != "pending") {
                return events;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "{events:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Ledger effects of `kind` recorded for Canvas.
    async fn effects(&self, kind: &str) -> Vec<Value> {
        let (_, body) = self.control(Method::GET, "/ledger?vendor=canvas", None).await;
        body["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["method"] == "EFFECT" && e["path"] == kind)
            .cloned()
            .collect()
    }
}

fn patient_in(state: &str) -> DemoPatient {
    seed::patients().into_iter().find(|p| p.state == state).unwrap()
}

fn is_recent(rfc3339: &str) -> bool {
    DateTime::parse_from_rfc3339(rfc3339).is_ok_and(|t| (Utc::now() - t.with_timezone(&Utc)).num_seconds().abs() < 60)
}

#[tokio::test]
async fn a_prescription_is_a_fhir_medication_request_announced_by_one_signed_event() {
    let (url, receiver) = receiver().await;
    let canvas = start(Some(url.clone())).await;
    let alabama = patient_in("AL");
    let (id, event_id) = canvas.prescribe(&alabama.id, "semaglutide", "0.25 mg weekly").await;

    // The resource Canvas stores, read through the FHIR API like any other.
    let mr = canvas.medication_request(&id).await;
    assert_eq!(mr["resourceType"], "MedicationRequest");
    assert_eq!(mr["id"], id.as_str());
    assert_eq!(mr["meta"]["versionId"], "1");
    assert_eq!(mr["status"], "active");
    assert_eq!(mr["intent"], "order");
    assert_eq!(mr["category"][0]["coding"][0]["code"], "outpatient");
    assert_eq!(mr["reportedBoolean"], false);
    assert_eq!(
        mr["medicationCodeableConcept"],
        json!({
            "coding": [{ "system": RXNORM, "code": "1991302", "display": "semaglutide" }],
            "text": "Semaglutide 2.5 mg/mL subcutaneous solution (compounded)",
        })
    );
    assert_eq!(mr["subject"]["reference"], format!("Patient/{}", alabama.id));
    assert!(is_recent(mr["authoredOn"].as_str().unwrap()), "{}", mr["authoredOn"]);
    // Alabama is Ali Nolan's state.
    assert_eq!(mr["requester"]["reference"], format!("Practitioner/{ALI_NOLAN_ID}"));
    let dosage = &mr["dosageInstruction"][0];
    assert_eq!(dosage["text"], "Inject 0.25 mg subcutaneously once weekly");
    assert_eq!(
        dosage["doseAndRate"][0]["doseQuantity"],
        json!({ "value": 0.25, "unit": "mg" })
    );
    let dispense = &mr["dispenseRequest"];
    assert_eq!(dispense["numberOfRepeatsAllowed"], 2);
    assert_eq!(dispense["quantity"], json!({ "value": 2, "unit": "mL" }));
    assert_eq!(dispense["expectedSupplyDuration"]["value"], 28);
    assert_eq!(dispense["expectedSupplyDuration"]["unit"], "days");
    assert!(dispense["performer"]["display"]
        .as_str()
        .unwrap()
        .starts_with("Name: Era Compounding Pharmacy|"));
    // It is found by the searches the canvas service makes.
    let (_, bundle) = canvas
        .fhir_get(&format!("/MedicationRequest?patient=Patient/{}", alabama.id))
        .await;
    assert!(
        bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["resource"]["id"] == id.as_str()),
        "{bundle}"
    );

    // One event, signed as the edge verifies the plugin.
    let got = receiver.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(receiver.all().len(), 1, "exactly one event");
    let d = &got[0];
    assert_eq!(d.path, "/api/webhooks/canvas/prescription");
    assert!(d.signed_with(SECRET), "{d:?}");
    assert!(!d.signed_with(era_sandbox::state::DEFAULT_CANVAS_AUTH_SECRET));
    assert_eq!(d.signature, d.signature.to_lowercase());
    assert_eq!(d.user_agent, "canvas-plugin-prescription_webhook/1.0");
    assert_eq!(d.content_type, "application/json");
    let event = d.json();
    assert_eq!(event["id"], event_id.as_str());
    assert_eq!(event["type"], "PRESCRIPTION_CREATED");
    assert_eq!(event["medicationRequestId"], id.as_str());
    assert_eq!(event["patientId"], alabama.id.as_str());
    assert!(is_recent(event["occurredAt"].as_str().unwrap()));
    assert_eq!(event.as_object().unwrap().len(), 5, "{event}");

    // The control view and the ledger say the same.
    let events = canvas.settled_events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["id"], event_id.as_str());
    assert_eq!(events[0]["delivery"], "delivered");
    assert_eq!(events[0]["payload"], event);
    assert_eq!(events[0]["attempts"][0]["status"], 200);
    assert_eq!(events[0]["attempts"][0]["trigger"], "auto");
    assert_eq!(events[0]["attempts"][0]["url"], format!("{url}/prescription"));
    let created = canvas.effects("prescription.created").await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["object"], id.as_str());
    assert_eq!(canvas.effects("plugin_event.sent").await.len(), 1);
}

#[tokio::test]
async fn ondansetron_is_tablets_as_needed_from_the_states_prescriber() {
    let canvas = start(None).await;
    let colorado = patient_in("CO");
    let (id, _) = canvas.prescribe(&colorado.id, "ondansetron", "4 mg as needed").await;
    let mr = canvas.medication_request(&id).await;
    assert_eq!(mr["medicationCodeableConcept"]["coding"][0]["code"], "104894");
    assert_eq!(mr["medicationCodeableConcept"]["coding"][0]["display"], "ondansetron");
    assert_eq!(
        mr["medicationCodeableConcept"]["text"],
        "Ondansetron 4 MG Disintegrating Oral Tablet"
    );
    // Colorado is not one of Ali Nolan's states.
    assert_eq!(mr["requester"]["reference"], format!("Practitioner/{NEELIMA_SINGH_ID}"));
    let dosage = &mr["dosageInstruction"][0];
    assert_eq!(dosage["text"], "Dissolve 1 tablet on the tongue as needed");
    let quantity = &dosage["doseAndRate"][0]["doseQuantity"];
    assert_eq!(quantity, &json!({ "value": 4, "unit": "mg" }));
    assert!(quantity["value"].is_u64(), "a whole dose is a JSON integer");
    assert_eq!(
        mr["dispenseRequest"]["quantity"],
        json!({ "value": 30, "unit": "tablets" })
    );
    assert_eq!(mr["dispenseRequest"]["expectedSupplyDuration"]["value"], 30);

    let (id, _) = canvas.prescribe(&colorado.id, "tirzepatide", "2.5 mg weekly").await;
    let mr = canvas.medication_request(&id).await;
    assert_eq!(mr["medicationCodeableConcept"]["coding"][0]["code"], "2601723");
    assert_eq!(
        mr["medicationCodeableConcept"]["text"],
        "Tirzepatide 10 mg/mL subcutaneous solution (compounded)"
    );
    assert_eq!(
        mr["dosageInstruction"][0]["text"],
        "Inject 2.5 mg subcutaneously once weekly"
    );
}

#[tokio::test]
async fn adjusting_and_stopping_are_new_versions_announced_as_prescription_updated() {
    let (url, receiver) = receiver().await;
    let canvas = start(Some(url)).await;
    let patient = patient_in("GA");
    let (id, created) = canvas.prescribe(&patient.id, "semaglutide", "0.25 mg weekly").await;
    let before = canvas.medication_request(&id).await;

    let (status, adjusted) = canvas
        .control(
            Method::POST,
            &format!("/canvas/prescriptions/{id}/adjust"),
            Some(json!({ "doseLabel": "0.5 mg weekly" })),
        )
        .await;
    assert_eq!(status, 200, "{adjusted}");
    assert_eq!(adjusted["medicationRequestId"], id.as_str());
    assert_eq!(adjusted["status"], "active");
    let mr = canvas.medication_request(&id).await;
    assert_eq!(mr["meta"]["versionId"], "2");
    assert_eq!(mr["status"], "active");
    assert_eq!(
        mr["dosageInstruction"][0]["text"],
        "Inject 0.5 mg subcutaneously once weekly"
    );
    assert_eq!(
        mr["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"],
        json!({ "value": 0.5, "unit": "mg" })
    );
    assert_eq!(mr["medicationCodeableConcept"], before["medicationCodeableConcept"]);
    assert_eq!(mr["authoredOn"], before["authoredOn"]);

    // No body: stopped.
    let (status, stopped) = canvas
        .control(Method::POST, &format!("/canvas/prescriptions/{id}/stop"), None)
        .await;
    assert_eq!(status, 200, "{stopped}");
    assert_eq!(stopped["medicationRequestId"], id.as_str());
    assert_eq!(stopped["status"], "stopped");
    let mr = canvas.medication_request(&id).await;
    assert_eq!(mr["status"], "stopped");
    assert_eq!(mr["meta"]["versionId"], "3");
    assert!(mr["meta"]["lastUpdated"].as_str().unwrap() >= before["meta"]["lastUpdated"].as_str().unwrap());

    // Three events, in the order the changes happened, each signed.
    let got = receiver.wait_for(3).await;
    let seen: Vec<(String, String)> = got
        .iter()
        .map(|d| {
            let v = d.json();
            (
                v["id"].as_str().unwrap().to_owned(),
                v["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (created, "PRESCRIPTION_CREATED".to_owned()),
            (
                adjusted["eventId"].as_str().unwrap().to_owned(),
                "PRESCRIPTION_UPDATED".to_owned()
            ),
            (
                stopped["eventId"].as_str().unwrap().to_owned(),
                "PRESCRIPTION_UPDATED".to_owned()
            ),
        ]
    );
    for d in &got {
        assert!(d.signed_with(SECRET));
        assert_eq!(d.path, "/api/webhooks/canvas/prescription");
        assert_eq!(d.json()["medicationRequestId"], id.as_str());
        assert_eq!(d.json()["patientId"], patient.id.as_str());
    }

    // A stopped prescription changes no more; nothing is emitted for a refusal.
    let (status, body) = canvas
        .control(Method::POST, &format!("/canvas/prescriptions/{id}/stop"), None)
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("stopped"));
    let (status, _) = canvas
        .control(
            Method::POST,
            &format!("/canvas/prescriptions/{id}/adjust"),
            Some(json!({ "doseLabel": "1 mg weekly" })),
        )
        .await;
    assert_eq!(status, 409);
    let (status, _) = canvas
        .control(Method::POST, "/canvas/prescriptions/nope/stop", None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = canvas
        .control(
            Method::POST,
            "/canvas/prescriptions/nope/adjust",
            Some(json!({ "doseLabel": "1 mg weekly" })),
        )
        .await;
    assert_eq!(status, 404);

    // The other ends a physician can choose; any other status is refused.
    let (other, _) = canvas.prescribe(&patient.id, "tirzepatide", "2.5 mg weekly").await;
    let (status, body) = canvas
        .control(
            Method::POST,
            &format!("/canvas/prescriptions/{other}/stop"),
            Some(json!({ "status": "completed" })),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("status"));
    assert_eq!(canvas.medication_request(&other).await["status"], "active");
    let (status, body) = canvas
        .control(
            Method::POST,
            &format!("/canvas/prescriptions/{other}/stop"),
            Some(json!({ "status": "entered-in-error" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "entered-in-error");
    assert_eq!(canvas.medication_request(&other).await["status"], "entered-in-error");

    let events = canvas.settled_events().await;
    assert_eq!(events.len(), 5);
    let (_, updated) = canvas
        .control(Method::GET, "/canvas/events?type=PRESCRIPTION_UPDATED", None)
        .await;
    assert_eq!(updated["events"].as_array().unwrap().len(), 3);
    assert_eq!(canvas.effects("prescription.adjusted").await.len(), 1);
    assert_eq!(canvas.effects("prescription.stopped").await.len(), 2);
}

#[tokio::test]
async fn events_are_delivered_again_and_in_a_chosen_order() {
    let (url, receiver) = receiver().await;
    let canvas = start(None).await;
    let patient = patient_in("FL");
    // No URL: stored, not sent.
    let (id, _) = canvas.prescribe(&patient.id, "semaglutide", "0.25 mg weekly").await;
    let (status, w) = canvas
        .control(
            Method::PUT,
            "/canvas/webhook",
            Some(json!({ "url": url, "paused": true })),
        )
        .await;
    assert_eq!(status, 200, "{w}");
    assert_eq!(w["url"], url.as_str());
    assert_eq!(w["paused"], true);
    assert_eq!(w["urls"]["prescription"], format!("{url}/prescription"));
    assert_eq!(w["urls"]["patientCreated"], format!("{url}/patient-created"));
    assert!(w.get("secret").is_none(), "the signing secret is never shown");
    let (_, shown) = canvas.control(Method::GET, "/canvas/webhook", None).await;
    assert_eq!(shown, w);
    // Paused: stored, not sent.
    canvas
        .control(
            Method::POST,
            &format!("/canvas/prescriptions/{id}/adjust"),
            Some(json!({ "doseLabel": "0.5 mg weekly" })),
        )
        .await;
    canvas
        .control(Method::POST, &format!("/canvas/prescriptions/{id}/stop"), None)
        .await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(
        receiver.all().is_empty(),
        "nothing delivered without a URL or while paused"
    );
    let events = canvas.events().await;
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e["delivery"] == "not_sent"), "{events:?}");
    assert!(events.iter().all(|e| e["attempts"].as_array().unwrap().is_empty()));
    let ids: Vec<String> = events.iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();

    // Duplicates: the same event three times, the same bytes, each signed.
    let (status, out) = canvas
        .control(
            Method::POST,
            &format!("/canvas/events/{}/deliver?times=3", ids[0]),
            None,
        )
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["attempts"].as_array().unwrap().len(), 3);
    let got = receiver.all();
    assert_eq!(got.len(), 3);
    for d in &got {
        assert_eq!(d.body, got[0].body);
        assert_eq!(d.json()["id"], ids[0].as_str());
        assert_eq!(d.json()["type"], "PRESCRIPTION_CREATED");
        assert!(d.signed_with(SECRET));
    }

    // Out of order: the stop, the creation, the adjustment.
    let order = vec![ids[2].clone(), ids[0].clone(), ids[1].clone()];
    let (status, _) = canvas
        .control(Method::POST, "/canvas/deliver", Some(json!({ "events": order })))
        .await;
    assert_eq!(status, 200);
    let got: Vec<String> = receiver.all()[3..]
        .iter()
        .map(|d| d.json()["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, order);

    let events = canvas.events().await;
    assert_eq!(events[0]["attempts"].as_array().unwrap().len(), 4);
    assert!(events.iter().all(|e| e["delivery"] == "delivered"), "{events:?}");
    assert!(events[0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["trigger"] == "manual"));
    let (status, _) = canvas
        .control(Method::POST, "/canvas/deliver", Some(json!({ "events": ["nope"] })))
        .await;
    assert_eq!(status, 404);
    let (status, _) = canvas
        .control(
            Method::POST,
            &format!("/canvas/events/{}/deliver?times=0", ids[0]),
            None,
        )
        .await;
    assert_eq!(status, 400);

    // Unpaused, the next event goes out by itself.
    canvas
        .control(Method::PUT, "/canvas/webhook", Some(json!({ "paused": false })))
        .await;
    canvas.prescribe(&patient.id, "ondansetron", "4 mg as needed").await;
    assert_eq!(receiver.wait_for(7).await[6].json()["type"], "PRESCRIPTION_CREATED");

    // With no URL at all, a manual delivery has nowhere to go.
    let (status, _) = canvas
        .control(Method::PUT, "/canvas/webhook", Some(json!({ "url": null })))
        .await;
    assert_eq!(status, 200);
    let (status, _) = canvas
        .control(Method::POST, &format!("/canvas/events/{}/deliver", ids[0]), None)
        .await;
    assert_eq!(status, 409);
    let (status, _) = canvas
        .control(Method::PUT, "/canvas/webhook", Some(json!({ "url": "ftp://x" })))
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn prescription_errors_name_the_field() {
    let canvas = start(None).await;
    let patient = patient_in("NY").id;
    let cases = [
        (
            json!({ "medication": "semaglutide", "doseLabel": "0.25 mg weekly" }),
            "patientId",
        ),
        (
            json!({ "patientId": patient, "doseLabel": "0.25 mg weekly" }),
            "medication",
        ),
        (
            json!({ "patientId": patient, "medication": "semaglutide" }),
            "doseLabel",
        ),
        (
            json!({ "patientId": patient, "medication": "aspirin", "doseLabel": "81 mg daily" }),
            "medication",
        ),
        (
            json!({ "patientId": patient, "medication": "semaglutide", "doseLabel": "weekly 0.25 mg" }),
            "doseLabel",
        ),
        (
            json!({ "patientId": patient, "medication": "semaglutide", "doseLabel": "0.25" }),
            "doseLabel",
        ),
        (
            json!({ "patientId": 7, "medication": "semaglutide", "doseLabel": "0.25 mg" }),
            "patientId",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = canvas
            .control(Method::POST, "/canvas/prescriptions", Some(body.clone()))
            .await;
        assert_eq!(status, 400, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{body}: {message}");
    }
    let (status, answer) = canvas
        .control(
            Method::POST,
            "/canvas/prescriptions",
            Some(json!({ "patientId": "0000", "medication": "semaglutide", "doseLabel": "0.25 mg" })),
        )
        .await;
    assert_eq!(status, 404, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("Patient"));
    let resp = canvas
        .http
        .post(format!("{}/_sandbox/canvas/prescriptions", canvas.base))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let (status, _) = canvas
        .control(
            Method::POST,
            &format!("/canvas/prescriptions/{}/adjust", "x"),
            Some(json!({ "doseLabel": "a lot" })),
        )
        .await;
    assert_eq!(status, 400, "the dose is checked before the prescription is looked up");
    let (status, _) = canvas.control(Method::GET, "/canvas/events?type=NOPE", None).await;
    assert_eq!(status, 400);

    // Nothing was written, nothing emitted.
    assert!(canvas.events().await.is_empty());
    assert!(canvas.effects("prescription.created").await.is_empty());
}

#[tokio::test]
async fn a_patient_created_over_fhir_is_announced_by_portal_invite() {
    let (url, receiver) = receiver().await;
    let canvas = start(Some(url)).await;
    let resp = canvas
        .http
        .post(format!("{}/canvas-fhir/Patient", canvas.base))
        .bearer_auth(&canvas.token)
        .json(&json!({
            "resourceType": "Patient",
            "extension": [{ "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex", "valueCode": "F" }],
            "name": [{ "use": "official", "family": "Lovelace", "given": ["Ada"] }],
            "gender": "female",
            "birthDate": "1984-06-02",
            "telecom": [{ "system": "email", "value": "ada.lovelace@example.test" }],
            "address": [{ "line": ["1 Test St"], "city": "Denver", "state": "CO", "postalCode": "80202", "country": "US" }],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let id = location
        .split('/')
        .rev()
        .nth(2)
        .expect("…/Patient/{id}/_history/1")
        .to_owned();
    assert_eq!(canvas.fhir_get(&format!("/Patient/{id}")).await.0, 200);

    let d = &receiver.wait_for(1).await[0];
    assert_eq!(d.path, "/api/webhooks/canvas/patient-created");
    assert_eq!(d.user_agent, "canvas-plugin-portal_invite/1.0");
    assert!(d.signed_with(SECRET));
    let event = d.json();
    assert_eq!(event["type"], "PATIENT_CREATED");
    assert_eq!(event["patientId"], id.as_str());
    assert!(event["id"].is_string());
    assert!(event.get("medicationRequestId").is_none(), "{event}");
    let (_, mine) = canvas
        .control(Method::GET, &format!("/canvas/events?patientId={id}"), None)
        .await;
    assert_eq!(mine["events"].as_array().unwrap().len(), 1);
    assert_eq!(mine["events"][0]["type"], "PATIENT_CREATED");

    // A refused create announces nothing.
    let refused = canvas
        .http
        .post(format!("{}/canvas-fhir/Patient", canvas.base))
        .bearer_auth(&canvas.token)
        .json(&json!({ "resourceType": "Patient" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(receiver.all().len(), 1);
    assert_eq!(canvas.events().await.len(), 1);
}

#[tokio::test]
async fn reset_forgets_events_and_prescriptions_but_keeps_the_webhook() {
    let (url, receiver) = receiver().await;
    let mut canvas = start(None).await;
    canvas
        .control(Method::PUT, "/canvas/webhook", Some(json!({ "url": url })))
        .await;
    let patient = patient_in("OH").id;
    let (id, _) = canvas.prescribe(&patient, "semaglutide", "0.25 mg weekly").await;
    receiver.wait_for(1).await;

    let (status, _) = canvas.control(Method::POST, "/reset", None).await;
    assert_eq!(status, 204);
    assert!(canvas.events().await.is_empty());
    // Reset revokes tokens too: read with a new one.
    canvas.token = canvas.new_token().await;
    assert_eq!(canvas.fhir_get(&format!("/MedicationRequest/{id}")).await.0, 404);
    let (status, _) = canvas
        .control(Method::POST, &format!("/canvas/prescriptions/{id}/stop"), None)
        .await;
    assert_eq!(status, 404, "the prescription went with the reset");
    let (_, w) = canvas.control(Method::GET, "/canvas/webhook", None).await;
    assert_eq!(w["url"], url.as_str());
    canvas.prescribe(&patient, "tirzepatide", "2.5 mg weekly").await;
    assert_eq!(receiver.wait_for(2).await[1].json()["type"], "PRESCRIPTION_CREATED");
}

#[tokio::test]
async fn the_plugin_controls_need_the_control_token() {
    const TOKEN: &str = "control-token-0123456789abcdef";
    let canvas = start_with(SandboxConfig {
        control_token: Some(TOKEN.into()),
        ..Default::default()
    })
    .await;
    let patient = patient_in("AL").id;
    let body = json!({ "patientId": patient, "medication": "semaglutide", "doseLabel": "0.25 mg weekly" });
    let url = format!("{}/_sandbox/canvas/prescriptions", canvas.base);
    let refused = canvas.http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    for path in ["/_sandbox/canvas/events", "/_sandbox/canvas/webhook"] {
        let resp = canvas.http.get(format!("{}{path}", canvas.base)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let accepted = canvas
        .http
        .post(&url)
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::CREATED);
    let events: Value = canvas
        .http
        .get(format!("{}/_sandbox/canvas/events", canvas.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        events["events"].as_array().unwrap().len(),
        1,
        "only the authorised call wrote"
    );
}
