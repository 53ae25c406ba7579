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
//! `X-Pharmacy-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, one secret for
//! all three pharmacies (`pharmacy_webhook_secret`).
//!
//! The real pharmacies' pushes differ (LifeFile's "Data Push" uses Basic auth; PioneerRx's Rx
//! Event API is its own format): this is the one shape the sandbox sends so the mesh's receiver
//! can be tested for what matters, which is signatures, duplicates and out-of-order arrival.
//! Deliveries run on one worker in emission order and never hold up the API; a failed one is
//! retried a few times, and every attempt is kept with the event (`/_sandbox/pharmacy/events`).

use std::{sync::Mutex, time::Duration};

use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use http::header::{CONTENT_TYPE, USER_AGENT};
use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::Sha256;
use tokio::sync::mpsc;

use super::{
    orders::{time, Order, Status},
    Pharmacy,
};
use crate::Sandbox;

/// Waits before each automatic retry of a failed delivery.
const RETRY_DELAYS_MS: &[u64] = &[200, 500, 1000];

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Pharmacy-Signature";

/// One delivery attempt.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Attempt {
    pub(crate) at: String,
    pub(crate) url: String,
    /// `auto` (as the change happened), `retry`, or `manual` (a control route).
    pub(crate) trigger: &'static str,
    /// The receiver's status; `None` when it could not be reached.
    pub(crate) status: Option<u16>,
    pub(crate) error: Option<String>,
}

impl Attempt {
    pub(crate) fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

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

/// `t=<t>,v1=<hex>`: HMAC-SHA256 keyed with the webhook secret over `"<t>.<body>"`.
pub fn signature_header(secret: &str, t: i64, body: &str) -> String {
    // HMAC takes keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body.as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Events waiting for their first delivery, in emission order, drained by one worker task.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    tx: Mutex<Option<mpsc::UnboundedSender<String>>>,
}

impl Queue {
    /// Queues event `id`; the worker starts on first use (and again if its runtime went away).
    pub(crate) fn push(&self, sandbox: &Sandbox, id: String) {
        let mut tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        if tx.as_ref().is_none_or(mpsc::UnboundedSender::is_closed) {
            let (sender, receiver) = mpsc::unbounded_channel();
            tokio::spawn(worker(sandbox.clone(), receiver));
            *tx = Some(sender);
        }
        if let Some(sender) = tx.as_ref() {
            let _ = sender.send(id);
        }
    }
}

async fn worker(sandbox: Sandbox, mut queue: mpsc::UnboundedReceiver<String>) {
    while let Some(id) = queue.recv().await {
        if !sandbox.pharmacy().webhook().active() {
            set_delivery(&sandbox, &id, "not_sent");
            continue;
        }
        let ok = deliver(&sandbox, &id, "auto", false).await.is_some_and(|a| a.ok());
        if !ok {
            // Retries run on their own so one failing receiver does not hold up the next event.
            tokio::spawn(retry(sandbox.clone(), id));
        }
    }
}

async fn retry(sandbox: Sandbox, id: String) {
    for (i, ms) in RETRY_DELAYS_MS.iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(*ms)).await;
        if !sandbox.pharmacy().webhook().active() {
            set_delivery(&sandbox, &id, "failed");
            return;
        }
        let last = i + 1 == RETRY_DELAYS_MS.len();
        match deliver(&sandbox, &id, "retry", last).await {
            Some(a) if !a.ok() => continue,
            // Delivered, or the event is gone (a reset).
            _ => return,
        }
    }
}

fn set_delivery(sandbox: &Sandbox, id: &str, delivery: &'static str) {
    if let Some(e) = sandbox.pharmacy().state().events.iter_mut().find(|e| e.id == id) {
        if e.delivery != "delivered" {
            e.delivery = delivery;
        }
    }
}

/// POSTs event `id` once (even if paused), records the attempt and a ledger effect
/// (`callback.sent`, or `callback.failed`). `None` if there is no such event or no URL. `last`
/// marks a failure as final.
pub(crate) async fn deliver(sandbox: &Sandbox, id: &str, trigger: &'static str, last: bool) -> Option<Attempt> {
    let handle = sandbox.pharmacy();
    let webhook = handle.webhook();
    let (pharmacy, status, body) = {
        let st = handle.state();
        let e = st.events.iter().find(|e| e.id == id)?;
        (e.pharmacy, e.status, e.body.clone())
    };
    let url = webhook.url_for(pharmacy)?;
    let signature = signature_header(&webhook.secret, Utc::now().timestamp(), &body);
    let result = handle
        .http
        .post(&url)
        .header(CONTENT_TYPE, "application/json")
        .header(USER_AGENT, format!("era-sandbox-{}/1.0", pharmacy.slug()))
        .header(SIGNATURE_HEADER, signature)
        .body(body)
        .send()
        .await;
    let (code, error) = match result {
        Ok(resp) => {
            let code = resp.status().as_u16();
            let _ = resp.bytes().await;
            (Some(code), None)
        }
        Err(e) => (None, Some(e.to_string())),
    };
    let attempt = Attempt {
        at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        url: url.clone(),
        trigger,
        status: code,
        error,
    };
    {
        let mut st = handle.state();
        let e = st.events.iter_mut().find(|e| e.id == id)?;
        e.attempts.push(attempt.clone());
        if attempt.ok() {
            e.delivery = "delivered";
        } else if e.delivery != "delivered" {
            e.delivery = if last || trigger == "manual" {
                "failed"
            } else {
                "pending"
            };
        }
    }
    let outcome = match (&attempt.status, &attempt.error) {
        (Some(s), _) => s.to_string(),
        (None, Some(e)) => e.clone(),
        (None, None) => String::new(),
    };
    let kind = if attempt.ok() {
        "callback.sent"
    } else {
        "callback.failed"
    };
    let detail = format!("{} {outcome} {url} ({trigger})", status.as_str());
    sandbox.record_effect(pharmacy.slug(), kind, Some(id), Some(&detail));
    Some(attempt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_stripes_scheme() {
        // The same vector as Stripe's: hmac.new(b"whsec_test", b'1700000000.{"id":"evt_1"}',
        // hashlib.sha256).hexdigest()
        assert_eq!(
            signature_header("whsec_test", 1_700_000_000, r#"{"id":"evt_1"}"#),
            "t=1700000000,v1=c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925"
        );
    }
}
