//! Operations: liveness, readiness, metrics, the OpenAPI document and its docs page.

use std::time::Duration;

use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{Html, IntoResponse},
    routing::get,
    Json, Router,
};
use era_kit::{
    auth::{bearer, constant_time_eq},
    health::pb::{health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest},
    ExposeSecret,
};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::{error::ApiError, AppState};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/docs", get(docs))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "alive")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` when every service reports SERVING.
    pub status: String,
    /// Each service's gRPC health: `SERVING`, `NOT_SERVING` or `UNREACHABLE`.
    #[schema(value_type = Object)]
    pub services: std::collections::BTreeMap<String, String>,
}

/// Whether the request may see operational detail: always when `OPS_TOKEN` is unset, else only
/// with it.
fn operator(state: &AppState, headers: &HeaderMap) -> bool {
    state.config.secrets.ops_token.as_ref().is_none_or(|ops| {
        bearer(headers).is_some_and(|token| constant_time_eq(token.as_bytes(), ops.expose_secret().as_bytes()))
    })
}

/// Readiness: 200 only when every service reports SERVING. With `OPS_TOKEN` set, the services'
/// states are listed only for a request bearing it.
#[utoipa::path(
    get, path = "/readyz", tag = "ops",
    security((), ("ops_token" = [])),
    responses((status = 200, body = Readiness), (status = 503, body = Readiness))
)]
pub async fn readyz(State(state): State<AppState>, headers: HeaderMap) -> impl IntoResponse {
    // One check at a time, reused for a second: a load balancer (or an attacker) polling hard
    // costs the services nothing more.
    let mut last = state.readiness.lock().await;
    let readiness = match last.as_ref() {
        Some((at, r)) if at.elapsed() < Duration::from_secs(1) => r.clone(),
        _ => {
            let r = check_services(&state).await;
            *last = Some((std::time::Instant::now(), r.clone()));
            r
        }
    };
    drop(last);
    let code = if readiness.status == "ready" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut readiness = readiness;
    if !operator(&state, &headers) {
        readiness.services.clear();
    }
    (code, Json(readiness))
}

async fn check_services(state: &AppState) -> Readiness {
    let checks = state.clients.health.iter().map(|(service, channel)| {
        let mut client = HealthClient::new(channel.clone());
        async move {
            let ask = client.check(HealthCheckRequest {
                service: (*service).to_owned(),
            });
            let status = match tokio::time::timeout(Duration::from_secs(2), ask).await {
                Ok(Ok(resp)) if resp.get_ref().status == ServingStatus::Serving as i32 => "SERVING",
                Ok(Ok(_)) => "NOT_SERVING",
                _ => "UNREACHABLE",
            };
            ((*service).to_owned(), status.to_owned())
        }
    });
    let services: std::collections::BTreeMap<_, _> = futures::future::join_all(checks).await.into_iter().collect();
    let ready = services.values().all(|s| s == "SERVING");
    Readiness {
        status: if ready { "ready" } else { "not_ready" }.into(),
        services,
    }
}

/// Prometheus text format; with `OPS_TOKEN` set, only for a request bearing it.
#[utoipa::path(
    get, path = "/metrics", tag = "ops",
    security((), ("ops_token" = [])),
    responses(
        (status = 200, description = "Prometheus metrics"),
        (status = 401, description = "`OPS_TOKEN` is set and the request does not bear it", body = crate::error::ErrorBody),
    )
)]
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<impl IntoResponse, ApiError> {
    if !operator(&state, &headers) {
        return Err(ApiError::unauthorized(
            "ops_token_required",
            "metrics take Authorization: Bearer <OPS_TOKEN>",
        ));
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    ))
}

/// This API as OpenAPI 3.1, generated from the handlers.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", responses((status = 200, description = "OpenAPI 3.1")))]
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(crate::openapi::ApiDoc::openapi())
}

/// A page listing every route from `/openapi.json`, with no assets fetched from elsewhere.
pub async fn docs() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}
