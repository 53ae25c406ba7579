//! Signed event delivery, shared by the simulators that push to a receiver (Stripe's events, the
//! pharmacies' callbacks, the clinic's Canvas plugin): each event is POSTed signed with an
//! HMAC-SHA256 over `"<t>.<body>"` (each sender chooses how the signature travels, [`Signing`]) in
//! emission order by one worker per vendor, never holding up the API; a failed delivery is retried
//! a few times on its own task; every attempt is kept with the event, and the control routes
//! deliver chosen events again or in a chosen order.

use std::{marker::PhantomData, sync::Mutex, time::Duration};

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Json, Response},
    routing::{get, post},
    Router,
};
use chrono::{SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use http::header::{CONTENT_TYPE, USER_AGENT};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::sync::mpsc;

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

    /// `<status> <url> (<trigger>)`, or the transport error instead of the status: the ledger's detail.
    pub(crate) fn summary(&self) -> String {
        let outcome = match (&self.status, &self.error) {
            (Some(s), _) => s.to_string(),
            (None, Some(e)) => e.clone(),
            (None, None) => String::new(),
        };
        format!("{outcome} {} ({})", self.url, self.trigger)
    }
}

/// Lowercase hex HMAC-SHA256 keyed with `secret` over `"<t>.<body>"`: the MAC every sender's
/// scheme carries.
fn timestamped_hmac(secret: &str, t: &str, body: &str) -> String {
    // HMAC takes keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// `t=<t>,v1=<hex>`: HMAC-SHA256 keyed with the webhook secret over `"<t>.<body>"` (Stripe's scheme,
/// which the pharmacies' callbacks use too).
pub fn signature_header(secret: &str, t: i64, body: &str) -> String {
    format!("t={t},v1={}", timestamped_hmac(secret, &t.to_string(), body))
}

/// The Canvas plugin's `X-Signature` for `X-Timestamp: <t>`: lowercase hex HMAC-SHA256(secret,
/// `"<t>.<body>"`), as the edge verifies the clinic's plugin.
pub fn plugin_signature(secret: &str, t: &str, body: &str) -> String {
    timestamped_hmac(secret, t, body)
}

/// The Canvas plugin's timestamp header.
pub(crate) const PLUGIN_TIMESTAMP_HEADER: &str = "X-Timestamp";
/// The Canvas plugin's signature header.
pub(crate) const PLUGIN_SIGNATURE_HEADER: &str = "X-Signature";

/// How a sender signs what it POSTs: the receivers verify different schemes over the same MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signing {
    /// `<header>: t=<unix>,v1=<hex>` (Stripe's scheme, which the pharmacies' callbacks use too).
    Stripe { header: &'static str },
    /// `X-Timestamp: <RFC 3339, microseconds>` and `X-Signature: <hex>` (the clinic's Canvas
    /// plugin). The edge refuses a signature it has seen, so two deliveries of one event must not
    /// share a timestamp: whole seconds would make a redelivery within the second a "replay".
    CanvasPlugin,
}

impl Signing {
    /// The headers carrying the signature of `body` made at `t`.
    fn headers(self, secret: &str, at: chrono::DateTime<Utc>, body: &str) -> Vec<(&'static str, String)> {
        match self {
            Signing::Stripe { header } => vec![(header, signature_header(secret, at.timestamp(), body))],
            Signing::CanvasPlugin => {
                let t = at.to_rfc3339_opts(SecondsFormat::Micros, true);
                let signature = plugin_signature(secret, &t, body);
                vec![(PLUGIN_TIMESTAMP_HEADER, t), (PLUGIN_SIGNATURE_HEADER, signature)]
            }
        }
    }
}

/// What one delivery POSTs.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) url: String,
    pub(crate) secret: String,
    pub(crate) body: String,
    pub(crate) content_type: &'static str,
    pub(crate) user_agent: String,
    /// How the signature travels.
    pub(crate) signing: Signing,
}

/// A vendor simulator whose events are delivered to a receiver.
pub(crate) trait Sender: Send + Sync + 'static {
    /// The name control errors use, e.g. `stripe` in `/_sandbox/stripe/webhook`.
    const CONTROL: &'static str;
    /// Whether first deliveries go out now (a URL is set and not paused).
    fn active(sandbox: &Sandbox) -> bool;
    /// Whether a URL is set (manual deliveries go out even when paused).
    fn has_url(sandbox: &Sandbox) -> bool;
    fn exists(sandbox: &Sandbox, id: &str) -> bool;
    /// What to POST for event `id`; `None` when the event or the URL is gone.
    fn outgoing(sandbox: &Sandbox, id: &str) -> Option<Outgoing>;
    /// Runs `f` on the event's delivery state (`not_sent`, `pending`, `delivered`, `failed`) and
    /// attempts; `None` when the event is gone.
    fn update<R>(sandbox: &Sandbox, id: &str, f: impl FnOnce(&mut &'static str, &mut Vec<Attempt>) -> R) -> Option<R>;
    /// Records the attempt in the ledger.
    fn effect(sandbox: &Sandbox, id: &str, attempt: &Attempt);
    fn http(sandbox: &Sandbox) -> reqwest::Client;
    /// Sets the receiver's URL (`Some(None)` clears it) and pause; `None` leaves each as it is.
    fn set_webhook(sandbox: &Sandbox, url: Option<Option<String>>, paused: Option<bool>);
    /// The control view of where events go (`GET /webhook`).
    fn webhook_view(sandbox: &Sandbox) -> Value;
}

/// Events waiting for their first delivery, in emission order, drained by one worker task.
pub(crate) struct Queue<S> {
    tx: Mutex<Option<mpsc::UnboundedSender<String>>>,
    sender: PhantomData<fn() -> S>,
}

impl<S> Default for Queue<S> {
    fn default() -> Self {
        Self {
            tx: Mutex::new(None),
            sender: PhantomData,
        }
    }
}

impl<S> std::fmt::Debug for Queue<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Queue { .. }")
    }
}

impl<S: Sender> Queue<S> {
    /// Queues event `id`; the worker starts on first use (and again if its runtime went away).
    pub(crate) fn push(&self, sandbox: &Sandbox, id: String) {
        let mut tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        if tx.as_ref().is_none_or(mpsc::UnboundedSender::is_closed) {
            let (sender, receiver) = mpsc::unbounded_channel();
            tokio::spawn(worker::<S>(sandbox.clone(), receiver));
            *tx = Some(sender);
        }
        if let Some(sender) = tx.as_ref() {
            let _ = sender.send(id);
        }
    }
}

async fn worker<S: Sender>(sandbox: Sandbox, mut queue: mpsc::UnboundedReceiver<String>) {
    while let Some(id) = queue.recv().await {
        if !S::active(&sandbox) {
            set_delivery::<S>(&sandbox, &id, "not_sent");
            continue;
        }
        let ok = deliver::<S>(&sandbox, &id, "auto", false).await.is_some_and(|a| a.ok());
        if !ok {
            // Retries run on their own so one failing event does not hold up the next.
            tokio::spawn(retry::<S>(sandbox.clone(), id));
        }
    }
}

async fn retry<S: Sender>(sandbox: Sandbox, id: String) {
    for (i, ms) in RETRY_DELAYS_MS.iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(*ms)).await;
        if !S::active(&sandbox) {
            set_delivery::<S>(&sandbox, &id, "failed");
            return;
        }
        let last = i + 1 == RETRY_DELAYS_MS.len();
        match deliver::<S>(&sandbox, &id, "retry", last).await {
            Some(a) if !a.ok() => continue,
            // Delivered, or the event is gone (a reset).
            _ => return,
        }
    }
}

fn set_delivery<S: Sender>(sandbox: &Sandbox, id: &str, delivery: &'static str) {
    S::update(sandbox, id, |state, _| {
        if *state != "delivered" {
            *state = delivery;
        }
    });
}

/// POSTs event `id` once (even if paused), records the attempt and a ledger effect. `None` if
/// there is no such event or no URL. `last` marks a failure as final.
pub(crate) async fn deliver<S: Sender>(
    sandbox: &Sandbox,
    id: &str,
    trigger: &'static str,
    last: bool,
) -> Option<Attempt> {
    let out = S::outgoing(sandbox, id)?;
    let mut request = S::http(sandbox)
        .post(&out.url)
        .header(CONTENT_TYPE, out.content_type)
        .header(USER_AGENT, out.user_agent);
    // Signed afresh on each attempt: a redelivery is the same bytes at a new time, as a vendor's is.
    for (name, value) in out.signing.headers(&out.secret, Utc::now(), &out.body) {
        request = request.header(name, value);
    }
    let result = request.body(out.body).send().await;
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
        url: out.url,
        trigger,
        status,
        error,
    };
    S::update(sandbox, id, |state, attempts| {
        attempts.push(attempt.clone());
        if attempt.ok() {
            *state = "delivered";
        } else if *state != "delivered" {
            *state = if last || trigger == "manual" {
                "failed"
            } else {
                "pending"
            };
        }
    })?;
    S::effect(sandbox, id, &attempt);
    Some(attempt)
}

/// A control route's error: `{"error": {"message": ...}}`.
pub(crate) fn problem(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": { "message": message.into() } }))).into_response()
}

/// A `PUT /webhook` body, `{"url": "http://..." | null, "paused": bool}`: the URL to set (`Some(None)`
/// clears it) and the pause; an absent field is left as it is. The error says which field is wrong.
pub(crate) fn webhook_update(body: &Value) -> Result<(Option<Option<String>>, Option<bool>), &'static str> {
    let url = match body.get("url") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(u)) if u.starts_with("http://") || u.starts_with("https://") => Some(Some(u.clone())),
        Some(_) => return Err("url must be an http(s) URL or null"),
    };
    let paused = match body.get("paused") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err("paused must be a boolean"),
    };
    Ok((url, paused))
}

/// `GET`/`PUT /webhook` (where events go: `{"url": "http://..." | null, "paused": bool}`, an absent
/// field left as it is), `POST /events/{id}/deliver?times=N` (the event again, N times in a row)
/// and `POST /deliver {"events": [..]}` (exactly these, in this order).
pub(crate) fn delivery_routes<S: Sender>() -> Router<Sandbox> {
    Router::new()
        .route("/webhook", get(get_webhook::<S>).put(put_webhook::<S>))
        .route("/events/{id}/deliver", post(deliver_again::<S>))
        .route("/deliver", post(deliver_in_order::<S>))
}

async fn get_webhook<S: Sender>(State(sandbox): State<Sandbox>) -> Json<Value> {
    Json(S::webhook_view(&sandbox))
}

async fn put_webhook<S: Sender>(State(sandbox): State<Sandbox>, Json(body): Json<Value>) -> Response {
    let (url, paused) = match webhook_update(&body) {
        Ok(update) => update,
        Err(why) => return problem(StatusCode::BAD_REQUEST, why),
    };
    S::set_webhook(&sandbox, url, paused);
    Json(S::webhook_view(&sandbox)).into_response()
}

#[derive(Debug, Deserialize)]
struct Times {
    #[serde(default = "one")]
    times: u32,
}

pub(crate) fn one() -> u32 {
    1
}

async fn deliver_again<S: Sender>(
    State(sandbox): State<Sandbox>,
    Path(id): Path<String>,
    Query(q): Query<Times>,
) -> Response {
    if !(1..=100).contains(&q.times) {
        return problem(StatusCode::BAD_REQUEST, "times must be between 1 and 100");
    }
    deliver_all::<S>(&sandbox, &vec![id; q.times as usize]).await
}

#[derive(Debug, Deserialize)]
struct InOrder {
    events: Vec<String>,
}

async fn deliver_in_order<S: Sender>(State(sandbox): State<Sandbox>, Json(order): Json<InOrder>) -> Response {
    deliver_all::<S>(&sandbox, &order.events).await
}

/// Checks a URL is set and the events exist, then delivers each once, in the given order, and
/// answers every attempt.
async fn deliver_all<S: Sender>(sandbox: &Sandbox, ids: &[String]) -> Response {
    if !S::has_url(sandbox) {
        return problem(
            StatusCode::CONFLICT,
            format!("no webhook URL is set: PUT /_sandbox/{}/webhook first", S::CONTROL),
        );
    }
    if let Some(missing) = ids.iter().find(|id| !S::exists(sandbox, id)) {
        return problem(StatusCode::NOT_FOUND, format!("no such event: {missing}"));
    }
    let mut attempts = Vec::new();
    for id in ids {
        let attempt = deliver::<S>(sandbox, id, "manual", true).await;
        attempts.push(json!({ "event": id, "attempt": attempt }));
    }
    Json(json!({ "attempts": attempts })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_stripes_scheme() {
        // Python: hmac.new(b"whsec_test", b'1700000000.{"id":"evt_1"}', hashlib.sha256).hexdigest()
        assert_eq!(
            signature_header("whsec_test", 1_700_000_000, r#"{"id":"evt_1"}"#),
            "t=1700000000,v1=c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925"
        );
    }

    #[test]
    fn plugin_signature_is_hex_hmac_over_timestamp_dot_body() {
        // Python: hmac.new(b"whsec_test", b'1700000000.{"id":"evt_1"}', hashlib.sha256).hexdigest()
        // (the same MAC as Stripe's, carried bare in X-Signature).
        let body = r#"{"id":"evt_1"}"#;
        assert_eq!(
            plugin_signature("whsec_test", "1700000000", body),
            "c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925"
        );
        // Computed here over "<t>.<body>" with HMAC directly, not through the sandbox's helper.
        let t = "2024-04-05T19:34:38.123456Z";
        let mut mac = Hmac::<Sha256>::new_from_slice(b"plugin-secret").unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(br#"{"type":"PATIENT_CREATED"}"#);
        let expected = hex::encode(mac.finalize().into_bytes());
        let got = plugin_signature("plugin-secret", t, r#"{"type":"PATIENT_CREATED"}"#);
        assert_eq!(got, expected);
        assert_eq!(got, got.to_lowercase());
        assert_eq!(got.len(), 64);
        let at = chrono::DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc);
        let headers = Signing::CanvasPlugin.headers("plugin-secret", at, r#"{"type":"PATIENT_CREATED"}"#);
        assert_eq!(headers, [("X-Timestamp", t.to_owned()), ("X-Signature", expected)]);
    }

    #[test]
    fn stripe_signing_keeps_its_one_header() {
        let headers = Signing::Stripe {
            header: "Stripe-Signature",
        }
        .headers(
            "whsec_test",
            chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            r#"{"id":"evt_1"}"#,
        );
        assert_eq!(
            headers,
            [(
                "Stripe-Signature",
                "t=1700000000,v1=c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925".to_owned()
            )]
        );
    }
}
