//! Stripe events (stripe.md §3): each state change is stored as an `evt_...` and, when a webhook
//! URL is set and not paused, POSTed there in emission order with
//! `Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`. A delivery answered
//! with anything but 2xx (or not answered) is retried a few times with a short backoff. The
//! `/_sandbox/stripe` controls deliver chosen events again, or in a chosen order.

use serde_json::{json, Value};

use super::{objects::Row, API_VERSION};
use crate::{
    webhook::{Attempt, Outgoing, Sender, Signing},
    Sandbox,
};

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

/// Stripe's events, delivered to `STRIPE_WEBHOOK_URL` with `Stripe-Signature`.
#[derive(Debug)]
pub(crate) struct Stripe;

impl Sender for Stripe {
    const CONTROL: &'static str = "stripe";

    fn active(sandbox: &Sandbox) -> bool {
        sandbox.stripe().webhook().active()
    }

    fn has_url(sandbox: &Sandbox) -> bool {
        sandbox.stripe().webhook().url.is_some()
    }

    fn exists(sandbox: &Sandbox, id: &str) -> bool {
        sandbox.stripe().state().events.get(id).is_some()
    }

    fn outgoing(sandbox: &Sandbox, id: &str) -> Option<Outgoing> {
        let handle = sandbox.stripe();
        let webhook = handle.webhook();
        Some(Outgoing {
            body: handle.state().events.get(id)?.body.clone(),
            url: webhook.url?,
            secret: webhook.secret,
            content_type: "application/json; charset=utf-8",
            user_agent: "Stripe/1.0 (+https://stripe.com/docs/webhooks)".into(),
            signing: Signing::Stripe {
                header: "Stripe-Signature",
            },
        })
    }

    fn update<R>(sandbox: &Sandbox, id: &str, f: impl FnOnce(&mut &'static str, &mut Vec<Attempt>) -> R) -> Option<R> {
        let mut st = sandbox.stripe().state();
        let record = st.events.get_mut(id)?;
        Some(f(&mut record.delivery, &mut record.attempts))
    }

    fn effect(sandbox: &Sandbox, id: &str, attempt: &Attempt) {
        let kind = if attempt.ok() {
            "event.delivered"
        } else {
            "event.delivery_failed"
        };
        sandbox.record_effect("stripe", kind, Some(id), Some(&attempt.summary()));
    }

    fn http(sandbox: &Sandbox) -> reqwest::Client {
        sandbox.stripe().http.clone()
    }

    fn set_webhook(sandbox: &Sandbox, url: Option<Option<String>>, paused: Option<bool>) {
        sandbox.stripe().set_webhook(url, paused);
    }

    fn webhook_view(sandbox: &Sandbox) -> Value {
        super::control::webhook_json(sandbox)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
