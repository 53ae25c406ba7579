//! The REST surface: one module per area, merged here behind the shared layers.

pub mod appointments;
pub mod approvals;
pub mod auth;
pub mod fulfilment;
pub mod identity;
pub mod logins;
pub mod notifications;
pub mod ops;
pub mod patient_detail;
pub mod patients;
pub mod payments;
pub mod plugin;
pub mod routing;
pub mod rx_queue;
pub mod views;
pub mod webhooks;

use axum::{
    extract::{DefaultBodyLimit, Request},
    http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    Router,
};
use era_kit::context::{RequestContext, REQUEST_ID_HEADER};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::Instrument;

use crate::{error::ApiError, AppState};

pub use self::{
    appointments::*, approvals::*, auth::*, fulfilment::*, identity::*, logins::*, notifications::*, ops::*,
    patient_detail::*, patients::*, payments::*, plugin::*, routing::*, rx_queue::*, webhooks::*,
};

/// The whole edge.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.max_body_bytes;
    let cors = cors(&state.config.cors_allowed_origins);
    Router::new()
        .merge(auth::router())
        .merge(logins::router())
        .merge(notifications::router())
        .merge(routing::router())
        .merge(rx_queue::router())
        .merge(approvals::router())
        .merge(fulfilment::router())
        .merge(appointments::router())
        .merge(patients::router())
        .merge(patient_detail::router())
        .merge(identity::router())
        .merge(webhooks::router())
        .merge(plugin::router())
        .merge(payments::router())
        .merge(ops::router())
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(middleware::from_fn(refuse_nul))
        .layer(middleware::from_fn_with_state(state.clone(), crate::limits::limit))
        .layer(middleware::from_fn_with_state(state.clone(), crate::metrics::track))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(cors)
        .layer(middleware::from_fn(request_context))
        .layer(guards(&state.config))
        .with_state(state)
}

/// Outermost: a deadline on every request (its body included) and a cap on requests served at
/// once, past which a request is refused at once rather than queued.
fn guards(
    config: &crate::config::Config,
) -> impl tower::Layer<
    axum::routing::Route,
    Service = impl tower::Service<Request, Response = Response, Error = std::convert::Infallible, Future = impl Send>
                  + Clone
                  + Send
                  + Sync
                  + 'static,
> + Clone {
    use tower::ServiceBuilder;
    ServiceBuilder::new()
        .layer(axum::error_handling::HandleErrorLayer::new(
            |err: tower::BoxError| async move {
                if err.is::<tower::timeout::error::Elapsed>() {
                    ApiError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "request_timeout",
                        "the request took too long",
                    )
                    .into_response()
                } else {
                    let mut response = ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "overloaded",
                        "the edge is serving as many requests as it can; try again shortly",
                    )
                    .into_response();
                    response
                        .headers_mut()
                        .insert("retry-after", HeaderValue::from_static("1"));
                    response
                }
            },
        ))
        .load_shed()
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            config.max_concurrent_requests,
        ))
        .timeout(std::time::Duration::from_secs(config.request_timeout_secs))
}

fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter(|o| !o.trim().is_empty())
        .filter_map(|o| o.trim().parse().ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static(REQUEST_ID_HEADER),
        ])
        .expose_headers([HeaderName::from_static(REQUEST_ID_HEADER)])
        .max_age(std::time::Duration::from_secs(600))
}

/// Gives every request an id (the caller's, when well formed) and a trace, logs it by route and
/// status only, and echoes the id in `x-request-id`.
async fn request_context(req: Request, next: Next) -> Response {
    let ctx = RequestContext::from_headers(req.headers());
    let span = tracing::info_span!(
        "http",
        method = %req.method(),
        request_id = %ctx.request_id,
        trace_id = %ctx.trace_id(),
        status = tracing::field::Empty,
    );
    let request_id = HeaderValue::from_str(&ctx.request_id).ok();
    let api = req.uri().path().starts_with("/api/");
    let started = std::time::Instant::now();
    let mut response = ctx.scope(next.run(req)).instrument(span.clone()).await;
    span.record("status", response.status().as_u16());
    span.in_scope(|| tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "request"));
    if let Some(id) = request_id {
        response.headers_mut().insert(REQUEST_ID_HEADER, id);
    }
    // API answers carry sessions, tokens and patients' data: no browser or proxy may keep them.
    if api && !response.headers().contains_key(header::CACHE_CONTROL) {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Builds the gRPC request for a call made on behalf of `caller`.
pub(crate) fn grpc<T>(state: &AppState, caller: &era_kit::auth::Caller, message: T) -> tonic::Request<T> {
    era_kit::client::request(message, &state.internal, caller)
}

/// The `Idempotency-Key` header, when sent (empty otherwise).
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    match headers.get("idempotency-key") {
        None => Ok(String::new()),
        Some(v) => v
            .to_str()
            .map(|s| s.trim().to_owned())
            .map_err(|_| ApiError::field("Idempotency-Key", "must be printable text")),
    }
}

/// A JSON body whose rejections use the API's error body. Besides what axum's `Json` checks (the
/// content type, the size, the shape), no text in it may hold a NUL character: no database the
/// services write to can store one, and it is never part of a real name, note or id.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !json_content_type(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state).await?;
        let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes)?;
        if let Some(field) = nul_in_json(&bytes) {
            return Err(ApiError::field(&field, "must not contain a NUL character"));
        }
        Ok(Self(value))
    }
}

/// `application/json`, or any `application/…+json`, as axum's `Json` takes.
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence
        .strip_prefix("application/")
        .is_some_and(|subtype| subtype == "json" || subtype.ends_with("+json"))
}

/// The field (`routes[0].note`, or `body`) of the first text in a JSON document that holds a NUL
/// character (`\u0000`), if any does.
fn nul_in_json(bytes: &[u8]) -> Option<String> {
    fn find(value: &serde_json::Value, path: &str) -> Option<String> {
        let here = || {
            if path.is_empty() {
                "body".to_owned()
            } else {
                path.to_owned()
            }
        };
        match value {
            serde_json::Value::String(s) => s.contains('\0').then(here),
            serde_json::Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, v)| find(v, &format!("{path}[{i}]"))),
            serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
                let field = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if k.contains('\0') {
                    return Some(here());
                }
                find(v, &field)
            }),
            _ => None,
        }
    }
    // The escape is the only way a NUL can be in JSON text; most bodies are spared the second parse.
    if !bytes.windows(6).any(|w| w == b"\\u0000") {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    find(&value, "")
}

/// Refuses a query string or path that holds a NUL character (`%00`): no database the services
/// write to can store one, so it would otherwise fail deep inside a service as an internal error.
async fn refuse_nul(req: Request, next: Next) -> Response {
    let nul = |s: &str| s.as_bytes().windows(3).any(|w| w.eq_ignore_ascii_case(b"%00"));
    let uri = req.uri();
    let bad = match uri.query() {
        // The parameter it is in, when the query reads as pairs.
        Some(query) if nul(query) => Some(
            serde_urlencoded::from_str::<Vec<(String, String)>>(query)
                .ok()
                .and_then(|pairs| pairs.into_iter().find(|(k, v)| v.contains('\0') || k.contains('\0')))
                .map_or_else(|| "query".to_owned(), |(k, _)| k.replace('\0', "")),
        ),
        _ if nul(uri.path()) => Some("path".to_owned()),
        _ => None,
    };
    match bad {
        Some(field) => ApiError::field(&field, "must not contain a NUL character (%00)").into_response(),
        None => next.run(req).await,
    }
}

impl<T: serde::Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_in_any_text_of_a_body_is_found_with_its_field() {
        let find = |body: &str| nul_in_json(body.as_bytes());
        assert_eq!(find(r#"{"routes":[{"note":"a"}]}"#), None);
        assert_eq!(
            find(r#"{"routes":[{"note":"a\u0000b"}]}"#).as_deref(),
            Some("routes[0].note")
        );
        assert_eq!(find(r#""\u0000""#).as_deref(), Some("body"));
        assert_eq!(find(r#"{"a\u0000":1}"#).as_deref(), Some("body"));
        // An escaped backslash before `u0000` is text, not a NUL.
        assert_eq!(find(r#"{"note":"\\u0000"}"#), None);
    }

    #[test]
    fn json_content_types_are_axums() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(v));
            json_content_type(&h)
        };
        assert!(with("application/json"));
        assert!(with("application/json; charset=utf-8"));
        assert!(with("Application/JSON;charset=utf-8"));
        assert!(with("application/cloudevents+json"));
        assert!(!with("text/json"));
        assert!(!with("application/x-www-form-urlencoded"));
        assert!(!json_content_type(&HeaderMap::new()));
    }
}
