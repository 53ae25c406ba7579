//! `/_sandbox/stripe`: test controls. Webhook target and pause, the event log with every delivery
//! attempt, deliveries on demand (again, N times, or in a chosen order), coupon and promotion code
//! redemption, completing 3D Secure, settling refunds, a delay that holds executions (to test
//! concurrent use of an idempotency key), and how many idempotency keys are held.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{events, objects, with_ctx, Ctx};
use crate::{stripe::errors::StripeResult, webhook::problem, Sandbox};

pub(crate) fn router() -> Router<Sandbox> {
    crate::webhook::delivery_routes::<super::events::Stripe>()
        .route("/events", get(list_events))
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

pub(crate) fn webhook_json(sandbox: &Sandbox) -> Value {
    let w = sandbox.stripe().webhook();
    json!({ "url": w.url, "paused": w.paused, "secret": w.secret })
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
    #[serde(default = "crate::webhook::one")]
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
