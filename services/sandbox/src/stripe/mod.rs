//! Stripe: the v1 API under `/stripe` (so stripe-python's `api_base` is `http://<sandbox>/stripe`;
//! stripe-node, which only takes host and port, is served the same API at the root `/v1`), wire
//! compatible with both SDKs, following `shared/reference/stripe.md`:
//! form-encoded parameters decoded Rack-style ([`form`]), Bearer or Basic secret-key auth
//! ([`auth`]), a `Request-Id` on every response, idempotency keys ([`idempotency`]), Stripe's
//! error bodies ([`errors`]) and test PaymentMethods ([`cards`]). Every state change is an event
//! (`GET /v1/events`) that is signed and POSTed to the configured webhook URL ([`events`]); test
//! controls live under `/_sandbox/stripe` ([`control`]).

use std::{
    collections::HashMap,
    fmt,
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::State as AxumState,
    http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::any,
    Router,
};
use chrono::Utc;
use serde_json::{json, Value};

use crate::{Sandbox, SandboxConfig};

mod auth;
mod cards;
mod control;
mod errors;
mod events;
mod form;
mod idempotency;
mod objects;
pub mod seed;

pub use crate::webhook::signature_header;
pub(crate) use control::router as control_router;
use errors::{StripeError, StripeResult};
use form::Params;
use objects::{
    coupons::{Coupon, PromotionCode},
    customers::Customer,
    payment_intents::{Charge, PaymentIntent},
    payment_methods::PaymentMethod,
    refunds::Refund,
    setup_intents::SetupIntent,
    Table,
};

/// The API version reported when a request does not name one (events carry it too).
pub const API_VERSION: &str = "2024-06-20";

/// Everything Stripe remembers; reset puts it back to [`seed`].
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) customers: Table<Customer>,
    pub(crate) payment_methods: Table<PaymentMethod>,
    pub(crate) setup_intents: Table<SetupIntent>,
    pub(crate) payment_intents: Table<PaymentIntent>,
    pub(crate) charges: Table<Charge>,
    pub(crate) refunds: Table<Refund>,
    pub(crate) coupons: Table<Coupon>,
    pub(crate) promotion_codes: Table<PromotionCode>,
    pub(crate) events: Table<events::Record>,
    pub(crate) keys: idempotency::Keys,
    /// Test knob: the next `times` executions pause `ms` after taking their idempotency key.
    pub(crate) delay: Option<(u64, u32)>,
}

/// Where events go; set at start from the config and changed at run time by `/_sandbox/stripe/webhook`.
#[derive(Clone, Debug)]
pub(crate) struct Webhook {
    pub(crate) url: Option<String>,
    pub(crate) paused: bool,
    pub(crate) secret: String,
}

impl Webhook {
    fn active(&self) -> bool {
        self.url.is_some() && !self.paused
    }
}

/// Stripe's part of the sandbox handle.
pub(crate) struct Handle {
    state: Mutex<State>,
    webhook: Mutex<Webhook>,
    pub(crate) queue: crate::webhook::Queue<events::Stripe>,
    pub(crate) http: reqwest::Client,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("stripe::Handle")
            .field("webhook_url", &self.webhook().url)
            .finish_non_exhaustive()
    }
}

impl Handle {
    pub(crate) fn new(config: &SandboxConfig) -> Self {
        Self {
            state: Mutex::new(seed::state(Utc::now().timestamp())),
            webhook: Mutex::new(Webhook {
                url: config.stripe_webhook_url.clone(),
                paused: false,
                secret: config.stripe_webhook_secret.clone(),
            }),
            queue: crate::webhook::Queue::default(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn webhook(&self) -> Webhook {
        self.webhook.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn set_webhook(&self, url: Option<Option<String>>, paused: Option<bool>) -> Webhook {
        let mut w = self.webhook.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(url) = url {
            w.url = url;
        }
        if let Some(paused) = paused {
            w.paused = paused;
        }
        w.clone()
    }

    /// Objects, events and idempotency keys back to the seed; the webhook target stays.
    pub(crate) fn reset(&self) {
        *self.state() = seed::state(Utc::now().timestamp());
    }
}

/// One request's view while it executes: the state, and what it emitted.
pub(crate) struct Ctx<'a> {
    pub(crate) st: &'a mut State,
    pub(crate) now: i64,
    request_id: String,
    idempotency_key: Option<String>,
    webhook_active: bool,
    effects: Vec<Effect>,
    emitted: Vec<String>,
    /// Magic test ids (`pm_card_visa`) already turned into a PaymentMethod by this request.
    pub(crate) magic: HashMap<String, String>,
}

#[derive(Debug)]
struct Effect {
    kind: String,
    object: String,
    detail: Option<String>,
}

impl Ctx<'_> {
    /// Stores an event about `object` (already rendered) and queues it for delivery.
    pub(crate) fn emit(&mut self, kind: &str, object: Value, previous: Option<Value>) {
        let id = objects::new_id("evt_", 24);
        let request = json!({ "id": self.request_id, "idempotency_key": self.idempotency_key });
        let record = events::Record::new(&id, kind, object, previous, request, self.now, self.webhook_active);
        self.st.events.insert(record);
        self.emitted.push(id);
    }

    /// A ledger effect, recorded once the request's state lock is released.
    pub(crate) fn effect(&mut self, kind: &str, object: &str, detail: Option<String>) {
        self.effects.push(Effect {
            kind: kind.to_owned(),
            object: object.to_owned(),
            detail,
        });
    }
}

/// `/stripe`: every path is answered here, so unknown ones get Stripe's own 404.
pub(crate) fn api_router() -> Router<Sandbox> {
    Router::new().route("/{*rest}", any(handle)).fallback(handle)
}

/// Serves a root `/v1/...` request (stripe-node cannot add a path prefix) as `/stripe/v1/...`
/// through `vendors`, the prefixed routes behind the ledger and fault layer.
pub(crate) async fn serve_alias(vendors: Router, mut req: axum::extract::Request) -> Response {
    let rewritten = match req.uri().path_and_query() {
        Some(pq) => format!("/stripe{pq}"),
        None => "/stripe/".to_owned(),
    };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = rewritten.parse().ok();
    if let Ok(uri) = Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
    match tower::ServiceExt::oneshot(vendors, req).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// Adds a `Request-Id` to a response the fault layer made up for a `/stripe` route.
pub(crate) fn stamp(response: &mut Response) {
    if let Ok(v) = HeaderValue::from_str(&objects::new_id("req_", 14)) {
        response.headers_mut().insert("request-id", v);
    }
}

/// A finished response body before headers are added.
struct Reply {
    status: StatusCode,
    body: Vec<u8>,
    replayed: bool,
}

impl Reply {
    fn json(status: StatusCode, body: &Value) -> Self {
        Self {
            status,
            body: body.to_string().into_bytes(),
            replayed: false,
        }
    }
}

impl From<StripeError> for Reply {
    fn from(e: StripeError) -> Self {
        Self::json(e.status, &e.body())
    }
}

async fn handle(
    AxumState(sandbox): AxumState<Sandbox>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = objects::new_id("req_", 14);
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned);
    let reply = pipeline(&sandbox, &method, &uri, &headers, &body, &request_id, key.as_deref()).await;

    let mut response = (reply.status, reply.body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-store"));
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("request-id", v);
    }
    let version = headers
        .get("stripe-version")
        .cloned()
        .unwrap_or(HeaderValue::from_static(API_VERSION));
    h.insert("stripe-version", version);
    if let Some(v) = key.and_then(|k| HeaderValue::from_str(&k).ok()) {
        h.insert("idempotency-key", v);
    }
    if reply.replayed {
        h.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    match reply.status {
        StatusCode::CONFLICT => {
            h.insert("stripe-should-retry", HeaderValue::from_static("true"));
        }
        StatusCode::UNAUTHORIZED => {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Stripe\""),
            );
        }
        _ => {}
    }
    response
}

/// Releases an idempotency key that was taken but never finished (the caller went away).
struct KeyGuard<'a> {
    handle: &'a Handle,
    key: Option<String>,
}

impl KeyGuard<'_> {
    fn finish(mut self, reply: &Reply) {
        if let Some(key) = self.key.take() {
            let stored = idempotency::Stored {
                status: reply.status.as_u16(),
                body: reply.body.clone(),
            };
            self.handle.state().keys.finish(&key, stored, Utc::now());
        }
    }
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.handle.state().keys.abandon(&key);
        }
    }
}

async fn pipeline(
    sandbox: &Sandbox,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    request_id: &str,
    key: Option<&str>,
) -> Reply {
    let path = uri.path();
    let segments: Option<Vec<String>> = path
        .strip_prefix("/v1/")
        .map(|rest| rest.split('/').map(|s| form::percent_decode(s, false)).collect());
    let Some((handler, segments)) = segments.and_then(|s| objects::route(method, &s).map(|h| (h, s))) else {
        return StripeError::unrecognized_url(method.as_str(), path).into();
    };
    if let Err(e) = auth::check(headers, &sandbox.config().stripe_secret_key) {
        return e.into();
    }
    let form_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !body.is_empty() && !form_body {
        return StripeError::param(
            "parameter_invalid_string",
            "Invalid request: Stripe's v1 API takes application/x-www-form-urlencoded bodies.".to_owned(),
            "",
        )
        .into();
    }
    let body = String::from_utf8_lossy(body);
    let params = Params::decode(&[uri.query().unwrap_or(""), &body]);
    let expand = match params.expand() {
        Ok(e) => e,
        Err(e) => return e.into(),
    };

    let handle = sandbox.stripe();
    // GET and DELETE are idempotent already; Stripe ignores keys on them.
    let key = key.filter(|_| *method == Method::POST);
    let mut guard = KeyGuard { handle, key: None };
    if let Some(key) = key {
        if key.len() > 255 {
            return StripeError::param(
                "parameter_invalid_string",
                "Idempotency-Key is too long: keys can be at most 255 characters.".to_owned(),
                "Idempotency-Key",
            )
            .into();
        }
        let fingerprint = format!("{method} {path} {}", params.canonical());
        let begin = handle.state().keys.begin(key, &fingerprint, Utc::now());
        match begin {
            idempotency::Begin::Execute => guard.key = Some(key.to_owned()),
            idempotency::Begin::Replay(stored) => {
                return Reply {
                    status: StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK),
                    body: stored.body,
                    replayed: true,
                }
            }
            idempotency::Begin::Mismatch => return StripeError::idempotency_mismatch(key).into(),
            idempotency::Begin::InFlight => return StripeError::idempotency_in_use(key).into(),
        }
    }
    let pause = {
        let mut st = handle.state();
        match st.delay.as_mut() {
            Some((ms, times)) if *times > 0 => {
                let ms = *ms;
                *times -= 1;
                if *times == 0 {
                    st.delay = None;
                }
                Some(ms)
            }
            _ => None,
        }
    };
    if let Some(ms) = pause {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    let result = execute(sandbox, handler, &params, &segments, &expand, request_id, key);
    match result {
        Ok(value) => {
            let reply = Reply::json(StatusCode::OK, &value);
            guard.finish(&reply);
            reply
        }
        // Dropping the guard releases the key: nothing is stored for a validation failure.
        Err(e) if e.validation => e.into(),
        Err(e) => {
            let reply = Reply::from(e);
            guard.finish(&reply);
            reply
        }
    }
}

/// Runs one handler under the state lock, then records its effects and queues its events.
fn execute(
    sandbox: &Sandbox,
    handler: objects::Handler,
    params: &Params,
    segments: &[String],
    expand: &[String],
    request_id: &str,
    key: Option<&str>,
) -> StripeResult<Value> {
    with_ctx(sandbox, request_id, key, |cx| {
        handler(cx, params, segments).map(|mut v| {
            objects::expand(&mut v, expand, cx.st);
            v
        })
    })
}

/// Runs `work` with the state locked and queues the events it emitted for delivery; once the lock
/// is released, records the ledger effects it noted.
pub(crate) fn with_ctx<T>(
    sandbox: &Sandbox,
    request_id: &str,
    key: Option<&str>,
    work: impl FnOnce(&mut Ctx<'_>) -> T,
) -> T {
    let handle = sandbox.stripe();
    let webhook_active = handle.webhook().active();
    let (result, effects) = {
        let mut st = handle.state();
        let mut cx = Ctx {
            st: &mut st,
            now: Utc::now().timestamp(),
            request_id: request_id.to_owned(),
            idempotency_key: key.map(str::to_owned),
            webhook_active,
            effects: Vec::new(),
            emitted: Vec::new(),
            magic: HashMap::new(),
        };
        let result = work(&mut cx);
        let (effects, emitted) = (cx.effects, cx.emitted);
        // Queued before the lock is released, so concurrent requests' events keep their order.
        if webhook_active {
            for id in emitted {
                handle.queue.push(sandbox, id);
            }
        }
        (result, effects)
    };
    for e in effects {
        sandbox.record_effect("stripe", &e.kind, Some(&e.object), e.detail.as_deref());
    }
    result
}
