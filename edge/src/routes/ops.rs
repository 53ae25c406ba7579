//! Operations: liveness, readiness, metrics, the OpenAPI document and its docs page.

use std::time::Duration;

use axum::{
    extract::{Path, State},
    http::{header, HeaderMap, StatusCode},
    response::{Html, IntoResponse, Response},
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
        .route("/docs/assets/{file}", get(docs_asset))
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

mod viewer {
    include!(concat!(env!("OUT_DIR"), "/docs_assets.rs"));
}

/// What may run on the docs page: its own scripts and styles (Swagger UI sets inline styles), calls
/// to this edge, nothing framed or from elsewhere.
const DOCS_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The API, rendered by Swagger UI from `/openapi.json`; every asset is served by the edge itself.
pub async fn docs() -> Response {
    if viewer::ASSETS.is_empty() {
        // The build could not fetch the viewer (no npm or registry): say so rather than show a
        // blank page.
        return (
            [(header::CACHE_CONTROL, "no-store")],
            Html(
                "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Era integration mesh API</title></head>\
                 <body style=\"font-family:sans-serif;max-width:40rem;margin:3rem auto\"><h1>Era integration mesh API</h1>\
                 <p>The API viewer was not built into this edge (npm could not fetch <code>swagger-ui-dist</code> when it was \
                 compiled). The document itself is at <a href=\"/openapi.json\">/openapi.json</a>.</p></body></html>",
            ),
        )
            .into_response();
    }
    (
        [
            (header::CONTENT_SECURITY_POLICY, DOCS_POLICY),
            (header::CACHE_CONTROL, "no-cache"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(include_str!("docs.html")),
    )
        .into_response()
}

/// The viewer's files, and the script that starts it.
pub async fn docs_asset(Path(file): Path<String>) -> Response {
    if file == "init.js" {
        return (
            [
                (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            include_str!("docs-init.js"),
        )
            .into_response();
    }
    match viewer::ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=86400"),
            ],
            *bytes,
        )
            .into_response(),
        None => ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such file").into_response(),
    }
}
