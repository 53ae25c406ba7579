//! `/_sandbox`: reset, the ledger, fault injection, the inbox of sent email and SMS, and per-vendor
//! controls (`/_sandbox/canvas`, `/_sandbox/stripe`, `/_sandbox/sendgrid`, `/_sandbox/hubspot`,
//! `/_sandbox/pharmacy`, `/_sandbox/zoom`, `/_sandbox/fedex`).

use std::collections::BTreeMap;

use axum::{
    extract::{Query, State},
    http::StatusCode,
    routing::{get, post},
    Json, Router,
};
use serde::Deserialize;

use crate::state::{Fault, Sandbox};

pub(crate) fn router() -> Router<Sandbox> {
    Router::new()
        .route("/health", get(|| async { Json(serde_json::json!({ "status": "ok" })) }))
        .route("/reset", post(reset))
        .route("/ledger", get(ledger))
        .route("/ledger/counts", get(counts))
        .route("/faults", get(list_faults).post(add_fault).delete(clear_faults))
        .route("/inbox", get(crate::inbox::page))
        .route("/inbox.json", get(crate::inbox::json))
        .nest("/canvas", crate::canvas::control_router())
        .nest("/stripe", crate::stripe::control_router())
        .nest("/sendgrid", crate::sendgrid::control_router())
        .nest("/hubspot", crate::hubspot::control_router())
        .nest("/pharmacy", crate::pharmacy::control_router())
        .nest("/zoom", crate::zoom::control_router())
        .nest("/fedex", crate::fedex::control_router())
}

async fn reset(State(sandbox): State<Sandbox>) -> StatusCode {
    sandbox.reset();
    StatusCode::NO_CONTENT
}

#[derive(Debug, Deserialize)]
struct LedgerQuery {
    vendor: Option<String>,
    #[serde(default)]
    since: u64,
}

async fn ledger(State(sandbox): State<Sandbox>, Query(q): Query<LedgerQuery>) -> Json<serde_json::Value> {
    let entries = sandbox.ledger(q.vendor.as_deref(), q.since);
    Json(serde_json::json!({ "entries": entries }))
}

/// Calls per `METHOD path`, the figure tests compare against a budget of upstream requests.
async fn counts(State(sandbox): State<Sandbox>, Query(q): Query<LedgerQuery>) -> Json<BTreeMap<String, u64>> {
    let mut counts = BTreeMap::new();
    for e in sandbox.ledger(q.vendor.as_deref(), q.since) {
        *counts.entry(format!("{} {}", e.method, e.path)).or_insert(0) += 1;
    }
    Json(counts)
}

async fn list_faults(State(sandbox): State<Sandbox>) -> Json<Vec<Fault>> {
    Json(sandbox.faults())
}

async fn add_fault(
    State(sandbox): State<Sandbox>,
    Json(fault): Json<Fault>,
) -> Result<StatusCode, (StatusCode, Json<serde_json::Value>)> {
    let bad = |m: &str| {
        (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "error": { "message": m } })),
        )
    };
    if !fault.path.starts_with('/') {
        return Err(bad("path must start with /"));
    }
    if fault.times == 0 {
        return Err(bad("times must be at least 1"));
    }
    if fault.latency_ms.is_none() && fault.action.is_none() {
        return Err(bad("give latency_ms, action, or both"));
    }
    if let Some(crate::FaultAction::Status { status, .. }) = &fault.action {
        if StatusCode::from_u16(*status).is_err() {
            return Err(bad("action.status must be an HTTP status code"));
        }
    }
    sandbox.add_fault(fault);
    Ok(StatusCode::CREATED)
}

async fn clear_faults(State(sandbox): State<Sandbox>) -> StatusCode {
    sandbox.clear_faults();
    StatusCode::NO_CONTENT
}
