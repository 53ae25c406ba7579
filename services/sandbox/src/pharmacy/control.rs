//! `/_sandbox/pharmacy`: test controls. The callback target and pause, the callback log with
//! every delivery attempt, deliveries on demand (again, N times, or in a chosen order, to test a
//! receiver against duplicates and out-of-order arrival), moving an order along, refusing a
//! pharmacy's next order, and listing what each pharmacy holds.
//!
//! - `GET|PUT /webhook` `{"url": "http://..." | null, "paused": bool}` (the base URL; each
//!   pharmacy POSTs to `{url}/{pharmacy}`)
//! - `GET /events[?pharmacy=boothwyn][&orderId=...]`
//! - `POST /events/{id}/deliver?times=N`
//! - `POST /deliver {"events": [id, ...]}`
//! - `POST /{pharmacy}/orders/{orderId}/advance {"status": "processing"|"shipped"|"delivered"|"rejected", "reason"?}`
//! - `POST /{pharmacy}/reject-next {"reason"}`
//! - `GET /{pharmacy}/orders`

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    callbacks,
    orders::{self, MoveError, Status},
    Pharmacy,
};
use crate::{webhook::problem, Sandbox};

pub(crate) fn router() -> Router<Sandbox> {
    crate::webhook::delivery_routes::<super::callbacks::Pharmacies>()
        .route("/events", get(list_events))
        .route("/{pharmacy}/orders", get(list_orders))
        .route("/{pharmacy}/orders/{order_id}/advance", post(advance))
        .route("/{pharmacy}/reject-next", post(reject_next))
}

fn no_pharmacy(slug: &str) -> Response {
    problem(
        StatusCode::NOT_FOUND,
        format!("no pharmacy {slug}: pioneerrx, boothwyn or strive"),
    )
}

pub(crate) fn webhook_json(sandbox: &Sandbox) -> Value {
    let w = sandbox.pharmacy().webhook();
    let urls: serde_json::Map<String, Value> = Pharmacy::ALL
        .iter()
        .map(|p| (p.slug().to_owned(), json!(w.url_for(*p))))
        .collect();
    let secrets: serde_json::Map<String, Value> = Pharmacy::ALL
        .iter()
        .map(|p| (p.slug().to_owned(), json!(w.secrets.of(p.slug()))))
        .collect();
    json!({ "url": w.url, "paused": w.paused, "secrets": secrets, "urls": urls })
}

#[derive(Debug, Deserialize)]
struct EventFilter {
    pharmacy: Option<String>,
    #[serde(rename = "orderId")]
    order_id: Option<String>,
}

/// Every callback event, oldest first, with its delivery state and attempts.
async fn list_events(State(sandbox): State<Sandbox>, Query(f): Query<EventFilter>) -> Json<Value> {
    let events: Vec<Value> = sandbox
        .pharmacy()
        .state()
        .events
        .iter()
        .filter(|e| f.pharmacy.as_deref().is_none_or(|p| e.pharmacy.slug() == p))
        .filter(|e| f.order_id.as_deref().is_none_or(|o| e.order_id == o))
        .map(callbacks::Event::describe)
        .collect();
    Json(json!({ "webhook": webhook_json(&sandbox), "events": events }))
}

/// `GET /{pharmacy}/orders`: the orders the pharmacy holds, oldest first.
async fn list_orders(State(sandbox): State<Sandbox>, Path(slug): Path<String>) -> Response {
    let Some(pharmacy) = Pharmacy::from_slug(&slug) else {
        return no_pharmacy(&slug);
    };
    let orders: Vec<Value> = sandbox
        .pharmacy()
        .state()
        .orders
        .iter()
        .filter(|o| o.pharmacy == pharmacy)
        .map(orders::Order::view)
        .collect();
    Json(json!({ "orders": orders })).into_response()
}

#[derive(Debug, Deserialize)]
struct Advance {
    status: String,
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /{pharmacy}/orders/{orderId}/advance`: moves the order and emits its callback.
async fn advance(
    State(sandbox): State<Sandbox>,
    Path((slug, order_id)): Path<(String, String)>,
    Json(body): Json<Advance>,
) -> Response {
    let Some(pharmacy) = Pharmacy::from_slug(&slug) else {
        return no_pharmacy(&slug);
    };
    let target = match Status::parse(&body.status) {
        Some(s @ (Status::Processing | Status::Shipped | Status::Delivered | Status::Rejected)) => s,
        _ => {
            return problem(
                StatusCode::BAD_REQUEST,
                "status must be processing, shipped, delivered or rejected",
            )
        }
    };
    match orders::advance(&sandbox, pharmacy, &order_id, target, body.reason) {
        Ok(order) => Json(order.view()).into_response(),
        Err(MoveError::NotFound) => problem(StatusCode::NOT_FOUND, format!("{slug} holds no order {order_id}")),
        Err(MoveError::Conflict(current)) => problem(
            StatusCode::CONFLICT,
            format!(
                "order {order_id} is {} and cannot move to {}",
                current.as_str(),
                target.as_str()
            ),
        ),
    }
}

#[derive(Debug, Deserialize)]
struct RejectNext {
    reason: String,
}

/// `POST /{pharmacy}/reject-next {"reason"}`: the pharmacy's next well-formed order (one that
/// passes the NPI and state checks) is refused 422 with this reason.
async fn reject_next(
    State(sandbox): State<Sandbox>,
    Path(slug): Path<String>,
    Json(body): Json<RejectNext>,
) -> Response {
    let Some(pharmacy) = Pharmacy::from_slug(&slug) else {
        return no_pharmacy(&slug);
    };
    if body.reason.trim().is_empty() {
        return problem(StatusCode::BAD_REQUEST, "reason must not be empty");
    }
    sandbox
        .pharmacy()
        .state()
        .reject_next
        .insert(pharmacy, body.reason.trim().to_owned());
    StatusCode::NO_CONTENT.into_response()
}
