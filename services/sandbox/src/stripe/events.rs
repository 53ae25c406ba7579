//! Stripe events (stripe.md §3): each state change is stored as an `evt_...` and, when a webhook
//! URL is set and not paused, POSTed there in emission order with
//! `Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`. A delivery answered
//! with anything but 2xx (or not answered) is retried a few times with a short backoff. The
//! `/_sandbox/stripe` controls deliver chosen events again, or in a chosen order.

use std::{sync::Mutex, time::Duration};

use chrono::{SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use http::header::{CONTENT_TYPE, USER_AGENT};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::sync::mpsc;

use super::{objects::Row, API_VERSION};
use crate::Sandbox;

/// Waits before each automatic retry of a failed delivery.
const RETRY_DELAYS_MS: &[u64] = &[200, 500, 1000];

/// One delivery attempt.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Attempt {
    pub(crate) at: String,
    pub(crate) url: String,
    /// `auto` (as the event happened), `retry`, or `manual` (a control route).
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

/// A stored event and how its delivery went.
#[derive(Clone, Debug)]
pub(crate) struct Record {
    pub(crate) id: String,
    pub(crate) kind: String,
    pub(crate) event: Value,
    /// The exact bytes POSTed (and signed) on every delivery.
    pub(crate) body: String,
    /// `not_sent` (no webhook, or paused), `pending`, `delivered`, `failed`.
    pub(crate) delivery: &'static str,
    pub(crate) attempts: Vec<Attempt>,
}

impl Row for Record {
    fn id(&self) -> &str {
        &self.id
    }
}

impl Record {
    pub(crate) fn new(
        id: &str,
        kind: &str,
        object: Value,
        previous: Option<Value>,
        request: Value,
        created: i64,
        deliver: bool,
    ) -> Self {
        let mut data = json!({ "object": object });
        if let Some(previous) = previous {
            data["previous_attributes"] = previous;
        }
        let event = json!({
            "id": id,
            "object": "event",
            "api_version": API_VERSION,
            "created": created,
            "data": data,
            "livemode": false,
            "pending_webhooks": u8::from(deliver),
            "request": request,
            "type": kind,
        });
        Self {
            id: id.to_owned(),
            kind: kind.to_owned(),
            body: event.to_string(),
            event,
            delivery: if deliver { "pending" } else { "not_sent" },
            attempts: Vec::new(),
        }
    }

    /// The control view: the event, its delivery status and every attempt.
    pub(crate) fn describe(&self) -> Value {
        json!({
            "id": self.id,
            "type": self.kind,
            "created": self.event["created"],
            "delivery": self.delivery,
            "attempts": self.attempts,
            "event": self.event,
        })
    }
}

/// `t=<t>,v1=<hex>`: HMAC-SHA256 keyed with the endpoint secret over `"<t>.<body>"`.
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
    /// Queues `id`; the worker starts on first use (and again if its runtime went away).
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
        if !sandbox.stripe().webhook().active() {
            set_delivery(&sandbox, &id, "not_sent");
            continue;
        }
        let ok = deliver(&sandbox, &id, "auto", false).await.is_some_and(|a| a.ok());
        if !ok {
            // Retries run on their own so one failing event does not hold up the next.
            tokio::spawn(retry(sandbox.clone(), id));
        }
    }
}

async fn retry(sandbox: Sandbox, id: String) {
    for (i, ms) in RETRY_DELAYS_MS.iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(*ms)).await;
        if !sandbox.stripe().webhook().active() {
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
    if let Some(r) = sandbox.stripe().state().events.get_mut(id) {
        if r.delivery != "delivered" {
            r.delivery = delivery;
        }
    }
}

/// POSTs event `id` once to the webhook URL (even if paused), records the attempt and a ledger
/// effect. `None` if there is no such event or no URL. `last` marks a failure as final.
pub(crate) async fn deliver(sandbox: &Sandbox, id: &str, trigger: &'static str, last: bool) -> Option<Attempt> {
    let handle = sandbox.stripe();
    let webhook = handle.webhook();
    let url = webhook.url?;
    let body = handle.state().events.get(id)?.body.clone();
    let t = Utc::now().timestamp();
    let signature = signature_header(&webhook.secret, t, &body);
    let result = handle
        .http
        .post(&url)
        .header(CONTENT_TYPE, "application/json; charset=utf-8")
        .header(USER_AGENT, "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
        .header("Stripe-Signature", signature)
        .body(body)
        .send()
        .await;
    let (status, error) = match result {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let _ = resp.bytes().await;
            (Some(status), None)
        }
        Err(e) => (None, Some(e.to_string())),
    };
    let attempt = Attempt {
        at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        url: url.clone(),
        trigger,
        status,
        error,
    };
    {
        let mut st = handle.state();
        let record = st.events.get_mut(id)?;
        record.attempts.push(attempt.clone());
        if attempt.ok() {
            record.delivery = "delivered";
        } else if record.delivery != "delivered" {
            record.delivery = if last || trigger == "manual" {
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
        "event.delivered"
    } else {
        "event.delivery_failed"
    };
    sandbox.record_effect("stripe", kind, Some(id), Some(&format!("{outcome} {url} ({trigger})")));
    Some(attempt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_stripes_scheme() {
        // Python: hmac.new(b"whsec_test", b'1700000000.{"id":"evt_1"}', hashlib.sha256).hexdigest()
        assert_eq!(
            signature_header("whsec_test", 1_700_000_000, r#"{"id":"evt_1"}"#),
            "t=1700000000,v1=c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925"
        );
    }

    #[test]
    fn an_event_has_stripes_envelope() {
        let r = Record::new(
            "evt_1",
            "customer.created",
            json!({ "id": "cus_1" }),
            None,
            json!({ "id": "req_1", "idempotency_key": null }),
            1,
            true,
        );
        assert_eq!(r.event["object"], "event");
        assert_eq!(r.event["data"]["object"]["id"], "cus_1");
        assert_eq!(r.event["pending_webhooks"], 1);
        assert_eq!(r.delivery, "pending");
        assert_eq!(serde_json::from_str::<Value>(&r.body).unwrap(), r.event);
    }
}
