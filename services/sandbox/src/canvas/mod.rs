//! Canvas Medical: the OAuth token endpoint on the EMR host (served under `/canvas`) and the FHIR R4
//! API on the `fumage-` host (served under `/canvas-fhir`), following the wire facts in
//! `shared/reference/canvas.md`. State is in memory and starts from the demo clinic in [`seed`].
//!
//! The clinic's own Canvas plugin runs here too ([`plugin`]): a patient created over FHIR, and a
//! prescription a physician writes, stops or adjusts (`/_sandbox/canvas/prescriptions`, standing
//! in for the EMR's Prescribe command, [`prescribe`]), is announced to the Integration Service as a
//! signed event.

use std::fmt;

use axum::{
    body::Bytes,
    extract::{DefaultBodyLimit, Path, Query, State as AxumState},
    http::{
        header::{HOST, LOCATION},
        HeaderMap, Method, StatusCode, Uri,
    },
    response::{IntoResponse, Response},
    routing::{any, get, post},
    Json, Router,
};
use chrono::Utc;
use serde_json::{json, Value};

use crate::Sandbox;

mod auth;
mod fields;
mod outcome;
pub(crate) mod plugin;
mod prescribe;
mod resources;
mod search;
pub mod seed;
mod store;

use outcome::{FhirError, FhirResult};
use resources::Kind;
use search::SearchRequest;

/// The Canvas plugin's `X-Signature` (hex HMAC-SHA256 over `"<X-Timestamp>.<body>"`).
pub use crate::webhook::plugin_signature;

/// PDF uploads (DocumentReference) arrive base64-encoded in the JSON body.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Everything Canvas remembers: issued tokens and the FHIR resources.
pub(crate) struct State {
    pub(crate) tokens: auth::Tokens,
    pub(crate) store: store::Store,
}

impl State {
    /// A fresh instance: no tokens, the demo clinic's records.
    pub(crate) fn seeded() -> Self {
        Self {
            tokens: auth::Tokens::default(),
            store: seed::store(Utc::now()),
        }
    }
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("canvas::State")
            .field("tokens_issued", &self.tokens.issued())
            .finish_non_exhaustive()
    }
}

/// `/canvas`: the EMR host. Only the token endpoint is simulated; the caller adds the
/// not-simulated fallback for the rest.
pub(crate) fn emr_router() -> Router<Sandbox> {
    // Canvas documents the trailing slash; a client that drops it is still answered.
    Router::new()
        .route("/auth/token/", post(auth::token))
        .route("/auth/token", post(auth::token))
}

/// `/canvas-fhir`: the FHIR API. Canvas's base has no path prefix, so paging links omit this one.
pub(crate) fn fhir_router() -> Router<Sandbox> {
    Router::new()
        .route("/{resource_type}", any(type_level))
        .route("/{resource_type}/{id}", any(instance_level))
        .fallback(|uri: Uri| async move { FhirError::unknown_route(uri.path()) })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// `/_sandbox/canvas`: test controls: tokens, the plugin's webhook and events ([`plugin`]), and a
/// physician's prescriptions ([`prescribe`]).
pub(crate) fn control_router() -> Router<Sandbox> {
    plugin::router()
        .merge(prescribe::router())
        .route(
            "/expire-tokens",
            post(|AxumState(sandbox): AxumState<Sandbox>| async move {
                sandbox.canvas().tokens.expire_all(Utc::now());
                StatusCode::NO_CONTENT
            }),
        )
        .route(
            "/tokens",
            get(|AxumState(sandbox): AxumState<Sandbox>| async move {
                Json(json!({ "issued": sandbox.canvas().tokens.issued() }))
            }),
        )
}

/// `/<Type>`: search (GET) and create (POST).
async fn type_level(
    AxumState(sandbox): AxumState<Sandbox>,
    Path(resource_type): Path<String>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> FhirResult<Response> {
    // Routing comes before authentication: an unknown type is a 404 with or without a token.
    let kind = Kind::parse(&resource_type).ok_or_else(|| FhirError::unknown_route(uri.path()))?;
    auth::authorize(&sandbox, &headers)?;
    let host = host(&headers, &uri);
    match method {
        Method::GET => search(&sandbox, kind, &uri, &host),
        Method::POST => create(&sandbox, kind, &body, &host),
        _ => Err(FhirError::not_supported()),
    }
}

/// `/<Type>/<id>`: read (GET) and update (PUT); PATCH and DELETE are not supported.
async fn instance_level(
    AxumState(sandbox): AxumState<Sandbox>,
    Path((resource_type, id)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> FhirResult<Response> {
    let kind = Kind::parse(&resource_type).ok_or_else(|| FhirError::unknown_route(uri.path()))?;
    auth::authorize(&sandbox, &headers)?;
    let host = host(&headers, &uri);
    match method {
        Method::GET => read(&sandbox, kind, &id, &host),
        Method::PUT => update(&sandbox, kind, &id, &body, &host, unmodified_since(&headers)?),
        _ => Err(FhirError::not_supported()),
    }
}

/// The host the caller used, for `Location` and permalinks (Canvas writes them as http://).
fn host(headers: &HeaderMap, uri: &Uri) -> String {
    headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| uri.authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".to_owned())
}

fn location(host: &str, kind: Kind, id: &str, version: &str) -> String {
    format!("http://{host}/canvas-fhir/{}/{id}/_history/{version}", kind.name())
}

fn parse_body(kind: Kind, body: &[u8], url_id: Option<&str>) -> FhirResult<Value> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| FhirError::invalid(format!("Request body is not valid JSON: {e}")))?;
    resources::check_body(kind, &value, url_id)?;
    Ok(value)
}

/// 201 with an empty body; the new id is only in `Location` (canvas.md §2).
fn create(sandbox: &Sandbox, kind: Kind, body: &[u8], host: &str) -> FhirResult<Response> {
    if !kind.spec().create {
        return Err(FhirError::not_supported());
    }
    let mut body = parse_body(kind, body, None)?;
    // The server assigns identity and versioning; a client's guesses are dropped.
    if let Some(fields) = body.as_object_mut() {
        fields.remove("id");
        fields.remove("meta");
    }
    let now = Utc::now();
    let mut canvas = sandbox.canvas();
    let resource = resources::create(kind, body, &mut canvas.store, now)?;
    let id = canvas.store.insert(kind, resource, now);
    if kind == Kind::Patient {
        // The portal_invite plugin announces every new patient; emitted under the lock that
        // stored the patient, so it follows that patient's creation in the event order.
        plugin::emit(sandbox, plugin::EventType::PatientCreated, &id, None);
    }
    Ok((StatusCode::CREATED, [(LOCATION, location(host, kind, &id, "1"))]).into_response())
}

fn read(sandbox: &Sandbox, kind: Kind, id: &str, host: &str) -> FhirResult<Response> {
    if !kind.spec().read {
        return Err(FhirError::not_supported());
    }
    let canvas = sandbox.canvas();
    let resource = canvas
        .store
        .get(kind, id)
        .ok_or_else(|| FhirError::not_found(kind.name(), id))?;
    Ok(Json(resources::render(kind, resource, host)).into_response())
}

/// `If-Unmodified-Since` (RFC 1123), Canvas's conditional update (canvas.md §2).
fn unmodified_since(headers: &HeaderMap) -> FhirResult<Option<chrono::DateTime<Utc>>> {
    let Some(value) = headers.get("if-unmodified-since") else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| FhirError::invalid("If-Unmodified-Since is not a valid date"))?;
    chrono::DateTime::parse_from_rfc2822(text)
        .map(|d| Some(d.with_timezone(&Utc)))
        .map_err(|_| FhirError::invalid("If-Unmodified-Since is not a valid date"))
}

/// 200 with an empty body; `Location` names the new version, as some clients read it. With
/// `If-Unmodified-Since`, a resource changed after that second is refused with 412.
fn update(
    sandbox: &Sandbox,
    kind: Kind,
    id: &str,
    body: &[u8],
    host: &str,
    since: Option<chrono::DateTime<Utc>>,
) -> FhirResult<Response> {
    if !kind.spec().update {
        return Err(FhirError::not_supported());
    }
    let now = Utc::now();
    let mut canvas = sandbox.canvas();
    let current = canvas
        .store
        .get(kind, id)
        .cloned()
        .ok_or_else(|| FhirError::not_found(kind.name(), id))?;
    if let Some(since) = since {
        let updated = fields::str_at(&current, "/meta/lastUpdated")
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc).timestamp());
        // HTTP dates have whole seconds: changed "since" means in a later second.
        if updated.is_some_and(|u| u > since.timestamp()) {
            return Err(FhirError::conflict());
        }
    }
    let body = parse_body(kind, body, Some(id))?;
    let next = resources::update(kind, &current, body, &canvas.store, now)?;
    canvas.store.replace(kind, id, next, now);
    let version = canvas
        .store
        .get(kind, id)
        .and_then(|r| fields::str_at(r, "/meta/versionId"))
        .unwrap_or("1")
        .to_owned();
    Ok((StatusCode::OK, [(LOCATION, location(host, kind, id, &version))]).into_response())
}

fn search(sandbox: &Sandbox, kind: Kind, uri: &Uri, host: &str) -> FhirResult<Response> {
    let Query(pairs) =
        Query::<Vec<(String, String)>>::try_from_uri(uri).map_err(|_| FhirError::invalid("Malformed query string"))?;
    let spec = kind.spec();
    let req = SearchRequest::parse(pairs, spec.params, spec.sorts)?;
    let results = resources::search(kind, &sandbox.canvas().store, &req)?;
    let rendered = results.iter().map(|r| resources::render(kind, r, host)).collect();
    Ok(Json(req.bundle(kind.name(), rendered, resources::default_count(kind))).into_response())
}
