//! Status and tracking callbacks. Each status change of an order is an event, POSTed as JSON to
//! `{webhook url}/{pharmacy}` when a URL is set and not paused:
//!
//! ```json
//! {"eventId": "…", "pharmacy": "pioneerrx", "orderId": "…", "referenceId": "…",
//!  "status": "shipped", "carrier": "fedex", "trackingNumber": "794612345678",
//!  "trackingUrl": "https://www.fedex.com/fedextrack/?trknbr=794612345678",
//!  "shippedAt": "…", "occurredAt": "…"}
//! ```
//!
//! `carrier`, `trackingNumber`, `trackingUrl` and `shippedAt` appear once the order has shipped,
//! `deliveredAt` once delivered, `reason` on a cancellation or rejection that gave one; `orderId`
//! is always a string. The raw body is signed with
//! `X-Pharmacy-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, each pharmacy
//! with its own secret (`pharmacy_webhook_secrets`).
//!
//! The real pharmacies' pushes differ (LifeFile's "Data Push" uses Basic auth; PioneerRx's Rx
//! Event API is its own format): this is the one shape the sandbox sends so the mesh's receiver
//! can be tested for what matters, which is signatures, duplicates and out-of-order arrival.
//! Deliveries run on one worker in emission order and never hold up the API; a failed one is
//! retried a few times, and every attempt is kept with the event (`/_sandbox/pharmacy/events`).

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::{
    orders::{time, Order, Status},
    Pharmacy,
};
use crate::{
    webhook::{Attempt, Outgoing, Sender, Signing},
    Sandbox,
};

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Pharmacy-Signature";

/// A callback and how its delivery went.
#[derive(Clone, Debug)]
pub(crate) struct Event {
    pub(crate) id: String,
    pub(crate) pharmacy: Pharmacy,
    pub(crate) order_id: String,
    pub(crate) status: Status,
    pub(crate) payload: Value,
    /// The exact bytes POSTed (and signed) on every delivery.
    pub(crate) body: String,
    /// `not_sent` (no URL, or paused, when it happened), `pending`, `delivered`, `failed`.
    pub(crate) delivery: &'static str,
    pub(crate) attempts: Vec<Attempt>,
}

impl Event {
    /// The event for `order`'s current status, which it reached at `at`.
    pub(crate) fn new(order: &Order, at: DateTime<Utc>, deliver: bool) -> Self {
        let id = uuid::Uuid::new_v4().to_string();
        let mut p = Map::new();
        p.insert("eventId".into(), json!(id));
        p.insert("pharmacy".into(), json!(order.pharmacy.slug()));
        p.insert("orderId".into(), json!(order.id));
        p.insert("referenceId".into(), json!(order.reference_id));
        p.insert("status".into(), json!(order.status));
        if let Some(s) = &order.shipment {
            p.insert("carrier".into(), json!(s.carrier));
            p.insert("trackingNumber".into(), json!(s.tracking_number));
            p.insert("trackingUrl".into(), json!(s.tracking_url));
            p.insert("shippedAt".into(), json!(time(s.shipped_at)));
            if let Some(d) = s.delivered_at {
                p.insert("deliveredAt".into(), json!(time(d)));
            }
        }
        if let Some(reason) = &order.reason {
            p.insert("reason".into(), json!(reason));
        }
        p.insert("occurredAt".into(), json!(time(at)));
        let payload = Value::Object(p);
        Self {
            body: payload.to_string(),
            id,
            pharmacy: order.pharmacy,
            order_id: order.id.clone(),
            status: order.status,
            payload,
            delivery: if deliver { "pending" } else { "not_sent" },
            attempts: Vec::new(),
        }
    }

    /// The control view: the callback, its delivery state and every attempt.
    pub(crate) fn describe(&self) -> Value {
        json!({
            "id": self.id,
            "pharmacy": self.pharmacy.slug(),
            "orderId": self.order_id,
            "status": self.status,
            "delivery": self.delivery,
            "attempts": self.attempts,
            "payload": self.payload,
        })
    }
}

/// The pharmacies' callbacks, delivered to `{PHARMACY_WEBHOOK_URL}/{pharmacy}` with
/// `X-Pharmacy-Signature`.
#[derive(Debug)]
pub(crate) struct Pharmacies;

impl Sender for Pharmacies {
    const CONTROL: &'static str = "pharmacy";

    fn active(sandbox: &Sandbox) -> bool {
        sandbox.pharmacy().webhook().active()
    }

    fn has_url(sandbox: &Sandbox) -> bool {
        sandbox.pharmacy().webhook().url.is_some()
    }

    fn exists(sandbox: &Sandbox, id: &str) -> bool {
        sandbox.pharmacy().state().events.iter().any(|e| e.id == id)
    }

    fn outgoing(sandbox: &Sandbox, id: &str) -> Option<Outgoing> {
        let handle = sandbox.pharmacy();
        let webhook = handle.webhook();
        let (pharmacy, body) = {
            let st = handle.state();
            let e = st.events.iter().find(|e| e.id == id)?;
            (e.pharmacy, e.body.clone())
        };
        Some(Outgoing {
            url: webhook.url_for(pharmacy)?,
            secret: webhook.secrets.of(pharmacy.slug())?.to_owned(),
            body,
            content_type: "application/json",
            user_agent: format!("era-sandbox-{}/1.0", pharmacy.slug()),
            signing: Signing::Stripe {
                header: SIGNATURE_HEADER,
            },
        })
    }

    fn update<R>(sandbox: &Sandbox, id: &str, f: impl FnOnce(&mut &'static str, &mut Vec<Attempt>) -> R) -> Option<R> {
        let mut st = sandbox.pharmacy().state();
        let e = st.events.iter_mut().find(|e| e.id == id)?;
        Some(f(&mut e.delivery, &mut e.attempts))
    }

    fn effect(sandbox: &Sandbox, id: &str, attempt: &Attempt) {
        let Some((pharmacy, status)) = sandbox
            .pharmacy()
            .state()
            .events
            .iter()
            .find(|e| e.id == id)
            .map(|e| (e.pharmacy, e.status))
        else {
            return;
        };
        let kind = if attempt.ok() {
            "callback.sent"
        } else {
            "callback.failed"
        };
        let detail = format!("{} {}", status.as_str(), attempt.summary());
        sandbox.record_effect(pharmacy.slug(), kind, Some(id), Some(&detail));
    }

    fn http(sandbox: &Sandbox) -> reqwest::Client {
        sandbox.pharmacy().http.clone()
    }

    fn set_webhook(sandbox: &Sandbox, url: Option<Option<String>>, paused: Option<bool>) {
        sandbox.pharmacy().set_webhook(url, paused);
    }

    fn webhook_view(sandbox: &Sandbox) -> Value {
        super::control::webhook_json(sandbox)
    }
}
