//! `/_sandbox/stripe`: test controls. Webhook target and pause, the event log with every delivery
//! attempt, deliveries on demand (again, N times, or in a chosen order), coupon and promotion code
//! redemption, completing 3D Secure, settling refunds, a delay that holds executions (to test
//! concurrent use of an idempotency key), and how many idempotency keys are held.

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{events, objects, with_ctx, Ctx};
use crate::{stripe::errors::StripeResult, Sandbox};

pub(crate) fn router() -> Router<Sandbox> {
    Router::new()
        .route("/webhook", get(get_webhook).put(put_webhook))
        .route("/events", get(list_events))
        .route("/events/{id}/deliver", post(deliver_again))
        .route("/deliver", post(deliver_in_order))
        .route("/coupons/{id}/redeem", post(redeem_coupon))
        .route("/promotion_codes/{id}/redeem", post(redeem_promotion_code))
        .route("/setup_intents/{id}/authenticate", post(authenticate_setup))
        .route("/payment_intents/{id}/authenticate", post(authenticate_payment))
        .route("/payment_intents/{id}/expire-authorization", post(expire_authorization))
        .route("/refunds/{id}/settle", post(settle_refund))
        .route("/delay", post(delay))
        .route(
            "/idempotency",
            get(|State(sandbox): State<Sandbox>| async move {
                let (keys, in_flight) = sandbox.stripe().state().keys.counts();
                Json(json!({ "keys": keys, "in_flight": in_flight }))
            }),
        )
}

fn problem(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": { "message": message.into() } }))).into_response()
}

fn webhook_json(sandbox: &Sandbox) -> Value {
    let w = sandbox.stripe().webhook();
    json!({ "url": w.url, "paused": w.paused, "secret": w.secret })
}

async fn get_webhook(State(sandbox): State<Sandbox>) -> Json<Value> {
    Json(webhook_json(&sandbox))
}

/// `{"url": "http://..." | null, "paused": bool}`; an absent field is left as it is.
async fn put_webhook(State(sandbox): State<Sandbox>, Json(body): Json<Value>) -> Response {
    let url = match body.get("url") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(u)) if u.starts_with("http://") || u.starts_with("https://") => Some(Some(u.clone())),
        Some(_) => return problem(StatusCode::BAD_REQUEST, "url must be an http(s) URL or null"),
    };
    let paused = match body.get("paused") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return problem(StatusCode::BAD_REQUEST, "paused must be a boolean"),
    };
    sandbox.stripe().set_webhook(url, paused);
    Json(webhook_json(&sandbox)).into_response()
}

/// Every event, oldest first, with its delivery status and attempts.
async fn list_events(State(sandbox): State<Sandbox>) -> Json<Value> {
    let events: Vec<Value> = sandbox
        .stripe()
        .state()
        .events
        .iter()
        .map(events::Record::describe)
        .collect();
    Json(json!({ "webhook": webhook_json(&sandbox), "events": events }))
}

/// Checks the events exist and a URL is set, then delivers each once, in the given order.
async fn deliver_all(sandbox: &Sandbox, ids: &[String]) -> Response {
    if sandbox.stripe().webhook().url.is_none() {
        return problem(
            StatusCode::CONFLICT,
            "no webhook URL is set: PUT /_sandbox/stripe/webhook first",
        );
    }
    {
        let st = sandbox.stripe().state();
        if let Some(missing) = ids.iter().find(|id| st.events.get(id).is_none()) {
            return problem(StatusCode::NOT_FOUND, format!("no such event: {missing}"));
        }
    }
    let mut attempts = Vec::new();
    for id in ids {
        let attempt = events::deliver(sandbox, id, "manual", true).await;
        attempts.push(json!({ "event": id, "attempt": attempt }));
    }
    Json(json!({ "attempts": attempts })).into_response()
}

#[derive(Debug, Deserialize)]
struct Times {
    #[serde(default = "one")]
    times: u32,
}

fn one() -> u32 {
    1
}

/// `POST /events/{id}/deliver?times=N`: delivers the event again, N times in a row.
async fn deliver_again(State(sandbox): State<Sandbox>, Path(id): Path<String>, Query(q): Query<Times>) -> Response {
    if !(1..=100).contains(&q.times) {
        return problem(StatusCode::BAD_REQUEST, "times must be between 1 and 100");
    }
    let ids = vec![id; q.times as usize];
    deliver_all(&sandbox, &ids).await
}

#[derive(Debug, Deserialize)]
struct Order {
    events: Vec<String>,
}

/// `POST /deliver {"events": [..]}`: delivers exactly these events, in this order.
async fn deliver_in_order(State(sandbox): State<Sandbox>, Json(order): Json<Order>) -> Response {
    deliver_all(&sandbox, &order.events).await
}

/// Runs a simulator action as a control request, answering Stripe's error body on failure.
fn control(sandbox: &Sandbox, work: impl FnOnce(&mut Ctx<'_>) -> StripeResult<Value>) -> Response {
    let request_id = objects::new_id("req_", 14);
    match with_ctx(sandbox, &request_id, None, work) {
        Ok(v) => Json(v).into_response(),
        Err(e) => (e.status, Json(e.body())).into_response(),
    }
}

async fn redeem_coupon(State(sandbox): State<Sandbox>, Path(id): Path<String>) -> Response {
    control(&sandbox, |cx| objects::coupons::redeem(cx, &id))
}

async fn redeem_promotion_code(State(sandbox): State<Sandbox>, Path(id): Path<String>) -> Response {
    control(&sandbox, |cx| objects::coupons::redeem_promotion_code(cx, &id))
}

async fn authenticate_setup(State(sandbox): State<Sandbox>, Path(id): Path<String>) -> Response {
    control(&sandbox, |cx| objects::setup_intents::authenticate(cx, &id))
}

async fn authenticate_payment(State(sandbox): State<Sandbox>, Path(id): Path<String>) -> Response {
    control(&sandbox, |cx| objects::payment_intents::authenticate(cx, &id))
}

async fn expire_authorization(State(sandbox): State<Sandbox>, Path(id): Path<String>) -> Response {
    control(&sandbox, |cx| objects::payment_intents::expire_authorization(cx, &id))
}

async fn settle_refund(State(sandbox): State<Sandbox>, Path(id): Path<String>) -> Response {
    control(&sandbox, |cx| objects::refunds::settle(cx, &id))
}

#[derive(Debug, Deserialize)]
struct Delay {
    ms: u64,
    #[serde(default = "one")]
    times: u32,
}

/// `POST /delay {"ms": 500, "times": 1}`: the next `times` Stripe API executions pause `ms` after
/// taking their idempotency key (the fault layer's latency fires before the key is taken).
async fn delay(State(sandbox): State<Sandbox>, Json(d): Json<Delay>) -> Response {
    if d.times == 0 || d.ms > 60_000 {
        return problem(StatusCode::BAD_REQUEST, "times must be at least 1 and ms at most 60000");
    }
    sandbox.stripe().state().delay = Some((d.ms, d.times));
    StatusCode::NO_CONTENT.into_response()
}
