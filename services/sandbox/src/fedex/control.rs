//! `/_sandbox/fedex`: test controls.
//!
//! - `GET /shipments`: every parcel FedEx knows, oldest first, with its scans newest first.
//! - `POST /shipments {"trackingNumber"?, "status"?}`: registers a parcel (a new 12-digit number
//!   when none is given) at `label_created` (the default) or walked on to `picked_up`,
//!   `in_transit`, `out_for_delivery`, `delivered` or `exception`; 201, or 409 if the number is
//!   known.
//! - `POST /shipments/{trackingNumber}/advance {"to"?}`: moves it as time would, one step (label
//!   created → picked up → in transit → out for delivery → delivered; after an exception, out for
//!   delivery again), or every step up to `to` (`picked_up`, `in_transit`, `out_for_delivery`,
//!   `delivered`, `exception`); 404 for an unknown number, 409 when `to` is not ahead.
//! - `POST /expire-tokens`: every token issued so far is expired now; `GET /tokens`:
//!   `{"issued", "valid"}`.
//! - `GET|PUT /limits {"requests_per_window": N, "window_secs": N}`: the Track API's throttle (an
//!   absent field is left as it is; 0 requests refuses every request). Reset restores FedEx's 1,400
//!   per 10 seconds.

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use chrono::Utc;
use serde_json::{json, Value};

use super::{
    limits::Settings,
    shipments::{self, Shipment, ShipmentError, Status},
};
use crate::{webhook::problem, Sandbox};

pub(crate) fn router() -> Router<Sandbox> {
    Router::new()
        .route("/shipments", get(list).post(register))
        .route("/shipments/{tracking_number}/advance", post(advance))
        .route(
            "/expire-tokens",
            post(|State(sandbox): State<Sandbox>| async move {
                sandbox.fedex().state().tokens.expire_all(Utc::now());
                StatusCode::NO_CONTENT
            }),
        )
        .route(
            "/tokens",
            get(|State(sandbox): State<Sandbox>| async move {
                Json(sandbox.fedex().state().tokens.describe(Utc::now()))
            }),
        )
        .route("/limits", get(get_limits).put(put_limits))
}

async fn list(State(sandbox): State<Sandbox>) -> Json<Value> {
    let st = sandbox.fedex().state();
    let shipments: Vec<Value> = st.shipments.all().into_iter().map(Shipment::view).collect();
    Json(json!({ "shipments": shipments }))
}

/// A control body: absent or empty is `{}`; anything else must be a JSON object.
fn object(body: &Bytes) -> Result<serde_json::Map<String, Value>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err("the body must be a JSON object".to_owned()),
    }
}

/// A status named by `key`, if present; `allowed` lists the ones this control takes.
fn status(map: &serde_json::Map<String, Value>, key: &str, allowed: &[Status]) -> Result<Option<Status>, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_str()
            .and_then(Status::parse)
            .filter(|s| allowed.contains(s))
            .map(Some)
            .ok_or_else(|| {
                let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
                format!("{key} must be one of {}", names.join(", "))
            }),
    }
}

const ANY: &[Status] = &[
    Status::LabelCreated,
    Status::PickedUp,
    Status::InTransit,
    Status::OutForDelivery,
    Status::Delivered,
    Status::Exception,
];

/// `POST /shipments`.
async fn register(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    let map = match object(&body) {
        Ok(map) => map,
        Err(why) => return problem(StatusCode::BAD_REQUEST, why),
    };
    let at = match status(&map, "status", ANY) {
        Ok(at) => at.unwrap_or(Status::LabelCreated),
        Err(why) => return problem(StatusCode::BAD_REQUEST, why),
    };
    let number = match map.get("trackingNumber") {
        None | Some(Value::Null) => None,
        Some(Value::String(n)) if (1..=34).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()) => {
            Some(n.clone())
        }
        Some(_) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "trackingNumber must be 1 to 34 digits, as FedEx's are",
            )
        }
    };
    match shipments::register(&sandbox, number, at, "manual") {
        Ok(s) => (StatusCode::CREATED, Json(s.view())).into_response(),
        Err(_) => problem(StatusCode::CONFLICT, "FedEx already knows this tracking number"),
    }
}

/// `POST /shipments/{trackingNumber}/advance`.
async fn advance(State(sandbox): State<Sandbox>, Path(number): Path<String>, body: Bytes) -> Response {
    let to = match object(&body).and_then(|map| status(&map, "to", &ANY[1..])) {
        Ok(to) => to,
        Err(why) => return problem(StatusCode::BAD_REQUEST, why),
    };
    match shipments::advance(&sandbox, &number, to) {
        Ok(s) => Json(s.view()).into_response(),
        Err(ShipmentError::NotFound) => problem(StatusCode::NOT_FOUND, "FedEx knows no such tracking number"),
        Err(ShipmentError::Conflict(current)) => problem(
            StatusCode::CONFLICT,
            match to {
                Some(to) => format!("the parcel is {} and cannot move to {}", current.as_str(), to.as_str()),
                None => format!("the parcel is {} and has no next step", current.as_str()),
            },
        ),
        Err(ShipmentError::Exists) => problem(StatusCode::CONFLICT, "FedEx already knows this tracking number"),
    }
}

async fn get_limits(State(sandbox): State<Sandbox>) -> Json<Settings> {
    Json(sandbox.fedex().state().limits.settings)
}

async fn put_limits(State(sandbox): State<Sandbox>, Json(body): Json<Value>) -> Response {
    let figure = |key: &str| match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| format!("{key} must be a non-negative integer")),
    };
    let (requests, window) = match (figure("requests_per_window"), figure("window_secs")) {
        (Ok(r), Ok(w)) => (r, w),
        (Err(why), _) | (_, Err(why)) => return problem(StatusCode::BAD_REQUEST, why),
    };
    if window == Some(0) {
        return problem(StatusCode::BAD_REQUEST, "window_secs must be at least 1");
    }
    let mut st = sandbox.fedex().state();
    let mut settings = st.limits.settings;
    if let Some(n) = requests {
        settings.requests_per_window = n;
    }
    if let Some(n) = window {
        settings.window_secs = n;
    }
    st.limits.set(settings);
    Json(settings).into_response()
}
