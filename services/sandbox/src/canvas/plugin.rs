//! The clinic's Canvas plugin, as it runs inside Canvas: when something happens in the EMR it POSTs
//! a small signed JSON event to the Integration Service (the edge). `prescription_webhook` sends
//! PRESCRIPTION_CREATED and PRESCRIPTION_UPDATED to `{url}/prescription`, `portal_invite` sends
//! PATIENT_CREATED to `{url}/patient-created`, where `url` is `canvas_plugin_webhook_url` (e.g.
//! `http://127.0.0.1:8080/api/webhooks/canvas`):
//!
//! ```json
//! {"id": "…", "type": "PRESCRIPTION_CREATED", "medicationRequestId": "…", "patientId": "…",
//!  "occurredAt": "2026-01-05T10:00:00.000Z"}
//! ```
//!
//! `medicationRequestId` is absent on PATIENT_CREATED. The raw body is signed as the edge verifies
//! the plugin, which is not Stripe's scheme: `X-Timestamp: <RFC 3339 with microseconds>` and
//! `X-Signature: <hex HMAC-SHA256(canvas_plugin_secret, "<timestamp>.<body>")>` (each delivery has
//! its own timestamp, so a redelivery within a second is not mistaken for a replay). Events are the notice, not the truth:
//! the receiver reads the patient or MedicationRequest back from the FHIR API.
//!
//! Events are delivered by the shared queue in the order the changes happened (each is emitted
//! under the Canvas lock that made its change), retried a few times, and kept with every attempt
//! (`/_sandbox/canvas/events`) until a reset, which keeps the webhook target set at run time.
//!
//! Controls under `/_sandbox/canvas`:
//! - `GET|PUT /webhook` `{"url": "http://…/api/webhooks/canvas" | null, "paused": bool}`
//! - `GET /events[?type=PRESCRIPTION_CREATED][&patientId=…]`
//! - `POST /events/{id}/deliver?times=N`
//! - `POST /deliver {"events": [id, …]}`

use std::{
    fmt,
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::{
    webhook::{problem, Attempt, Outgoing, Queue, Sender, Signing},
    Sandbox, SandboxConfig,
};

/// What happened in Canvas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventType {
    PrescriptionCreated,
    PrescriptionUpdated,
    PatientCreated,
}

impl EventType {
    const ALL: [EventType; 3] = [
        EventType::PrescriptionCreated,
        EventType::PrescriptionUpdated,
        EventType::PatientCreated,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EventType::PrescriptionCreated => "PRESCRIPTION_CREATED",
            EventType::PrescriptionUpdated => "PRESCRIPTION_UPDATED",
            EventType::PatientCreated => "PATIENT_CREATED",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The plugin that reacts to it, which names the User-Agent.
    fn plugin(self) -> &'static str {
        match self {
            EventType::PrescriptionCreated | EventType::PrescriptionUpdated => "prescription_webhook",
            EventType::PatientCreated => "portal_invite",
        }
    }

    /// The route under the base URL the plugin posts it to.
    fn path(self) -> &'static str {
        match self {
            EventType::PrescriptionCreated | EventType::PrescriptionUpdated => "prescription",
            EventType::PatientCreated => "patient-created",
        }
    }
}

/// One plugin event and how its delivery went.
#[derive(Clone, Debug)]
pub(crate) struct Event {
    pub(crate) id: String,
    pub(crate) kind: EventType,
    pub(crate) patient_id: String,
    pub(crate) payload: Value,
    /// The exact bytes POSTed (and signed) on every delivery.
    pub(crate) body: String,
    /// `not_sent` (no URL, or paused, when it happened), `pending`, `delivered`, `failed`.
    pub(crate) delivery: &'static str,
    pub(crate) attempts: Vec<Attempt>,
}

impl Event {
    fn new(
        kind: EventType,
        patient_id: &str,
        medication_request_id: Option<&str>,
        at: DateTime<Utc>,
        deliver: bool,
    ) -> Self {
        let id = uuid::Uuid::new_v4().to_string();
        let mut p = Map::new();
        p.insert("id".into(), json!(id));
        p.insert("type".into(), json!(kind.as_str()));
        if let Some(mr) = medication_request_id {
            p.insert("medicationRequestId".into(), json!(mr));
        }
        p.insert("patientId".into(), json!(patient_id));
        p.insert(
            "occurredAt".into(),
            json!(at.to_rfc3339_opts(SecondsFormat::Millis, true)),
        );
        let payload = Value::Object(p);
        Self {
            body: payload.to_string(),
            id,
            kind,
            patient_id: patient_id.to_owned(),
            payload,
            delivery: if deliver { "pending" } else { "not_sent" },
            attempts: Vec::new(),
        }
    }

    /// The control view: the event, its delivery state and every attempt.
    fn describe(&self) -> Value {
        json!({
            "id": self.id,
            "type": self.kind.as_str(),
            "delivery": self.delivery,
            "attempts": self.attempts,
            "payload": self.payload,
        })
    }
}

/// Where the plugin posts; set at start from the config, changed at run time by
/// `PUT /_sandbox/canvas/webhook`.
#[derive(Clone)]
pub(crate) struct Webhook {
    /// The base URL; each event type appends its route.
    pub(crate) url: Option<String>,
    pub(crate) paused: bool,
    secret: String,
}

impl Webhook {
    pub(crate) fn active(&self) -> bool {
        self.url.is_some() && !self.paused
    }

    fn url_for(&self, kind: EventType) -> Option<String> {
        let base = self.url.as_deref()?;
        Some(format!("{}/{}", base.trim_end_matches('/'), kind.path()))
    }
}

/// The plugin's part of the sandbox handle.
pub(crate) struct Handle {
    events: Mutex<Vec<Event>>,
    webhook: Mutex<Webhook>,
    queue: Queue<Plugin>,
    http: reqwest::Client,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The secret is the mesh's admin JWT key under era-dev: never printed.
        f.debug_struct("canvas::plugin::Handle")
            .field("webhook_url", &self.webhook().url)
            .finish_non_exhaustive()
    }
}

impl Handle {
    pub(crate) fn new(config: &SandboxConfig) -> Self {
        Self {
            events: Mutex::default(),
            webhook: Mutex::new(Webhook {
                url: config.canvas_plugin_webhook_url.clone(),
                paused: false,
                secret: config.canvas_plugin_secret.clone(),
            }),
            queue: Queue::default(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        }
    }

    fn events(&self) -> MutexGuard<'_, Vec<Event>> {
        self.events.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn webhook(&self) -> Webhook {
        self.webhook.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `url`: `Some(None)` clears it; `None` leaves each field as it is.
    fn set_webhook(&self, url: Option<Option<String>>, paused: Option<bool>) {
        let mut w = self.webhook.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(url) = url {
            w.url = url;
        }
        if let Some(paused) = paused {
            w.paused = paused;
        }
    }

    /// Forgets every event; the webhook target stays. Deliveries still on their way find nothing
    /// and stop.
    pub(crate) fn reset(&self) {
        self.events().clear();
    }
}

/// Stores a plugin event and queues it for delivery; its id. Call it while holding the Canvas
/// lock under which the change was made, so events are emitted (and delivered) in the order of
/// the changes they announce.
pub(crate) fn emit(
    sandbox: &Sandbox,
    kind: EventType,
    patient_id: &str,
    medication_request_id: Option<&str>,
) -> String {
    let handle = sandbox.canvas_plugin();
    let active = handle.webhook().active();
    let event = Event::new(kind, patient_id, medication_request_id, Utc::now(), active);
    let id = event.id.clone();
    let mut events = handle.events();
    events.push(event);
    if active {
        handle.queue.push(sandbox, id.clone());
    }
    id
}

/// The plugin's events, delivered to `{canvas_plugin_webhook_url}/{route}` with `X-Timestamp` and
/// `X-Signature`.
#[derive(Debug)]
pub(crate) struct Plugin;

impl Sender for Plugin {
    const CONTROL: &'static str = "canvas";

    fn active(sandbox: &Sandbox) -> bool {
        sandbox.canvas_plugin().webhook().active()
    }

    fn has_url(sandbox: &Sandbox) -> bool {
        sandbox.canvas_plugin().webhook().url.is_some()
    }

    fn exists(sandbox: &Sandbox, id: &str) -> bool {
        sandbox.canvas_plugin().events().iter().any(|e| e.id == id)
    }

    fn outgoing(sandbox: &Sandbox, id: &str) -> Option<Outgoing> {
        let handle = sandbox.canvas_plugin();
        let webhook = handle.webhook();
        let (kind, body) = {
            let events = handle.events();
            let e = events.iter().find(|e| e.id == id)?;
            (e.kind, e.body.clone())
        };
        Some(Outgoing {
            url: webhook.url_for(kind)?,
            secret: webhook.secret,
            body,
            content_type: "application/json",
            user_agent: format!("canvas-plugin-{}/1.0", kind.plugin()),
            signing: Signing::CanvasPlugin,
        })
    }

    fn update<R>(sandbox: &Sandbox, id: &str, f: impl FnOnce(&mut &'static str, &mut Vec<Attempt>) -> R) -> Option<R> {
        let mut events = sandbox.canvas_plugin().events();
        let e = events.iter_mut().find(|e| e.id == id)?;
        Some(f(&mut e.delivery, &mut e.attempts))
    }

    fn effect(sandbox: &Sandbox, id: &str, attempt: &Attempt) {
        let Some(kind) = sandbox
            .canvas_plugin()
            .events()
            .iter()
            .find(|e| e.id == id)
            .map(|e| e.kind)
        else {
            return;
        };
        let effect = if attempt.ok() {
            "plugin_event.sent"
        } else {
            "plugin_event.failed"
        };
        let detail = format!("{} {}", kind.as_str(), attempt.summary());
        sandbox.record_effect("canvas", effect, Some(id), Some(&detail));
    }

    fn http(sandbox: &Sandbox) -> reqwest::Client {
        sandbox.canvas_plugin().http.clone()
    }

    fn set_webhook(sandbox: &Sandbox, url: Option<Option<String>>, paused: Option<bool>) {
        sandbox.canvas_plugin().set_webhook(url, paused);
    }

    fn webhook_view(sandbox: &Sandbox) -> Value {
        webhook_json(sandbox)
    }
}

/// The plugin's controls: its webhook, its events, deliveries on demand.
pub(crate) fn router() -> Router<Sandbox> {
    crate::webhook::delivery_routes::<Plugin>().route("/events", get(list_events))
}

/// The target, pause and each route's URL. The secret is left out: under era-dev it is the mesh's
/// `ADMIN_JWT_SECRET`, which signs admin sessions, and the sandbox's control token must not lead
/// to it.
pub(crate) fn webhook_json(sandbox: &Sandbox) -> Value {
    let w = sandbox.canvas_plugin().webhook();
    json!({
        "url": w.url,
        "paused": w.paused,
        "urls": {
            "prescription": w.url_for(EventType::PrescriptionCreated),
            "patientCreated": w.url_for(EventType::PatientCreated),
        },
    })
}

#[derive(Debug, Deserialize)]
struct EventFilter {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(rename = "patientId")]
    patient_id: Option<String>,
}

/// Every plugin event, oldest first, with its delivery state and attempts.
async fn list_events(State(sandbox): State<Sandbox>, Query(f): Query<EventFilter>) -> Response {
    let kind = match f.kind.as_deref().map(EventType::parse) {
        Some(None) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "type must be PRESCRIPTION_CREATED, PRESCRIPTION_UPDATED or PATIENT_CREATED",
            )
        }
        Some(kind) => kind,
        None => None,
    };
    let events: Vec<Value> = sandbox
        .canvas_plugin()
        .events()
        .iter()
        .filter(|e| kind.is_none_or(|k| e.kind == k))
        .filter(|e| f.patient_id.as_deref().is_none_or(|p| e.patient_id == p))
        .map(Event::describe)
        .collect();
    Json(json!({ "webhook": webhook_json(&sandbox), "events": events })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prescription_event_names_the_request_and_a_patient_event_does_not() {
        let at = Utc::now();
        let e = Event::new(EventType::PrescriptionCreated, "p1", Some("mr1"), at, true);
        let v: Value = serde_json::from_str(&e.body).unwrap();
        assert_eq!(v, e.payload, "the body is the payload's bytes");
        assert_eq!(v["id"], e.id.as_str());
        assert_eq!(v["type"], "PRESCRIPTION_CREATED");
        assert_eq!(v["medicationRequestId"], "mr1");
        assert_eq!(v["patientId"], "p1");
        let occurred = v["occurredAt"].as_str().unwrap();
        assert!(DateTime::parse_from_rfc3339(occurred).is_ok(), "{occurred}");
        assert_eq!(e.delivery, "pending");

        let p = Event::new(EventType::PatientCreated, "p2", None, at, false);
        assert!(p.payload.get("medicationRequestId").is_none());
        assert_eq!(p.payload["type"], "PATIENT_CREATED");
        assert_eq!(p.delivery, "not_sent");
    }

    #[test]
    fn each_event_type_goes_to_its_plugins_route() {
        let w = Webhook {
            url: Some("http://127.0.0.1:8080/api/webhooks/canvas/".into()),
            paused: false,
            secret: String::new(),
        };
        assert_eq!(
            w.url_for(EventType::PrescriptionUpdated).as_deref(),
            Some("http://127.0.0.1:8080/api/webhooks/canvas/prescription")
        );
        assert_eq!(
            w.url_for(EventType::PatientCreated).as_deref(),
            Some("http://127.0.0.1:8080/api/webhooks/canvas/patient-created")
        );
        assert_eq!(EventType::PrescriptionCreated.plugin(), "prescription_webhook");
        assert_eq!(EventType::PatientCreated.plugin(), "portal_invite");
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
    }
}
