//! The one error body of the REST API, `{"error":{"code","message","fields"?}}`, and the one table
//! from gRPC status to HTTP status.

use axum::{
    extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;
use tonic::Code;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldError {
    /// The field as the caller named it, e.g. `routes[0].pharmacyId`.
    pub field: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code to branch on, e.g. `state_excluded`, `invalid_argument`.
    pub code: String,
    /// For people. Never holds PHI, upstream bodies or internals.
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldError>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// An error on its way to the client.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: ErrorDetail,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            detail: ErrorDetail {
                code: code.into(),
                message: message.into(),
                fields: Vec::new(),
            },
        }
    }

    pub fn unauthorized(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn invalid(fields: Vec<FieldError>) -> Self {
        let message = fields
            .iter()
            .map(|f| format!("{}: {}", f.field, f.reason))
            .collect::<Vec<_>>()
            .join("; ");
        let mut err = Self::new(StatusCode::BAD_REQUEST, "invalid_argument", message);
        err.detail.fields = fields;
        err
    }

    pub fn field(field: &str, reason: impl Into<String>) -> Self {
        Self::invalid(vec![FieldError {
            field: field.into(),
            reason: reason.into(),
        }])
    }

    pub fn internal(err: &anyhow::Error) -> Self {
        tracing::error!(error = format!("{err:#}"), "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "internal error")
    }
}

/// Server-side failures whose reason (and the service's message for it) the caller sees: operators
/// and portals must tell a Canvas outage or a tampered record from a bug. The messages are written
/// by canvas for callers; any other server error is described by its class only.
const SERVER_REASONS_SHOWN: &[&str] = &[
    "CANVAS_UNAVAILABLE",
    "STRIPE_UNAVAILABLE",
    "HUBSPOT_UNAVAILABLE",
    "ROUTING_UNAVAILABLE",
    "RECORD_INTEGRITY",
];

/// The HTTP status and default code for each gRPC code. No wildcard: every code is decided here.
pub fn http_status(code: Code) -> (StatusCode, &'static str) {
    match code {
        Code::Ok => (StatusCode::OK, "ok"),
        Code::InvalidArgument | Code::OutOfRange => (StatusCode::BAD_REQUEST, "invalid_argument"),
        Code::FailedPrecondition => (StatusCode::UNPROCESSABLE_ENTITY, "failed_precondition"),
        Code::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        Code::AlreadyExists => (StatusCode::CONFLICT, "already_exists"),
        Code::Aborted => (StatusCode::CONFLICT, "conflict"),
        Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        Code::PermissionDenied => (StatusCode::FORBIDDEN, "forbidden"),
        Code::ResourceExhausted => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        Code::Unimplemented => (StatusCode::NOT_IMPLEMENTED, "not_implemented"),
        Code::Unavailable | Code::Cancelled => (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable"),
        Code::DeadlineExceeded => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
        Code::Internal | Code::Unknown | Code::DataLoss => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
    }
}

/// Proto field paths (`routes[0].pharmacy_id`) in the REST API's lowerCamelCase.
fn camel_path(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        if status.code() == Code::Unauthenticated {
            // The edge authenticated the caller already: a service refusing the edge's own token
            // means the two disagree on INTERNAL_TOKEN_SECRET, not that the user must log in again.
            tracing::error!("a service refused the edge's internal token; check INTERNAL_TOKEN_SECRET");
            return Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "internal error");
        }
        let (http, default_code) = http_status(status.code());
        if http.is_server_error() && status.code() != Code::Unimplemented {
            // The service logged the cause; the client learns only the class of failure.
            tracing::warn!(code = ?status.code(), "service call failed");
            // A service that names the failure (`CANVAS_UNAVAILABLE`, `RECORD_INTEGRITY`) wrote its
            // message for the caller; anything else is described by class only.
            if let Some(reason) = era_kit::error::reason_of(&status) {
                if SERVER_REASONS_SHOWN.contains(&reason.as_str()) {
                    return Self::new(http, &reason.to_lowercase(), status.message());
                }
            }
            let message = match status.code() {
                Code::Unavailable | Code::Cancelled => "a service is unavailable; try again",
                Code::DeadlineExceeded => "a service did not answer in time",
                _ => "internal error",
            };
            return Self::new(http, default_code, message);
        }
        let code = era_kit::error::reason_of(&status).map_or_else(|| default_code.to_owned(), |r| r.to_lowercase());
        let fields = era_kit::error::violations_of(&status)
            .into_iter()
            .map(|v| FieldError {
                field: camel_path(&v.field),
                reason: v.reason,
            })
            .collect();
        Self {
            status: http,
            detail: ErrorDetail {
                code,
                message: status.message().to_owned(),
                fields,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(ErrorBody { error: self.detail })).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
        }
        // Every 429 says when to come back (the rate limits set their exact wait over this).
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, http::HeaderValue::from_static("60"));
        }
        response
    }
}

/// Body and parameter rejections become the same error body, in the API's own words: which field
/// and why (`routes[0].priority: must be an integer`), never the deserializer's phrasing and never
/// the offending value, since a wrongly typed field of an intake form can be a name or a birth date.
fn rejection(status: StatusCode, text: String) -> ApiError {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(status, "payload_too_large", "the request body is too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::new(status, "unsupported_media_type", "send the body as application/json")
        }
        // A route that reads a parameter its path does not have: ours to fix, not the caller's.
        s if s.is_server_error() => ApiError::internal(&anyhow::anyhow!("extractor rejection: {text}")),
        _ => {
            let (field, reason) = explain(&text);
            let mut err = ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", format!("{field}: {reason}"));
            err.detail.fields = vec![FieldError { field, reason }];
            err
        }
    }
}

/// The prefixes axum puts before a deserializer's message, and what the message is about when it
/// names no field.
const REJECTION_PREFIXES: &[(&str, &str)] = &[
    ("Failed to deserialize the JSON body into the target type", "body"),
    ("Failed to parse the request body as JSON", "body"),
    ("Failed to deserialize query string", "query"),
    ("Failed to deserialize form body", "body"),
    ("Failed to deserialize form", "query"),
    ("Invalid URL", "path"),
    ("Failed to buffer the request body", "body"),
];

/// `(field, reason)` for an axum rejection's text: `"Failed to deserialize the JSON body into the
/// target type: routes[0].priority: invalid type: string \"Jane\", expected i32 at line 1 column 60"`
/// is `("routes[0].priority", "must be an integer")`.
fn explain(text: &str) -> (String, String) {
    let (rest, whole) = REJECTION_PREFIXES
        .iter()
        .find_map(|(prefix, whole)| {
            text.strip_prefix(prefix)
                .map(|rest| (rest.trim_start_matches(':').trim(), *whole))
        })
        .unwrap_or((text, "request"));
    // serde_json ends with the position; it is worth keeping for a syntax error only.
    let (rest, position) = match rest.rfind(" at line ") {
        Some(i) if rest[i..].contains(" column ") => (&rest[..i], Some(rest[i + 4..].to_owned())),
        _ => (rest, None),
    };
    // serde_path_to_error puts the path first (`routes[0].priority: …`); a path has no spaces.
    let (path, message) = match rest.split_once(": ") {
        Some((path, message)) if !path.is_empty() && !path.contains(' ') && path != "." => (Some(path), message),
        _ => (None, rest),
    };
    if text.starts_with("Failed to parse the request body as JSON") || (whole == "body" && rest.starts_with("EOF")) {
        let reason = match position {
            // "line 1 column 9" is "line 1, column 9".
            Some(at) => format!("is not valid JSON (at {})", at.replace(" column ", ", column ")),
            None => "is not valid JSON".to_owned(),
        };
        return ("body".to_owned(), reason);
    }
    let within = |name: &str| match path {
        Some(p) if !p.ends_with(name) => format!("{p}.{name}"),
        Some(p) => p.to_owned(),
        None => name.to_owned(),
    };
    let field = || path.map_or_else(|| whole.to_owned(), str::to_owned);
    if let Some(name) = quoted_after(message, "missing field ") {
        return (within(&name), "is required".into());
    }
    if let Some(name) = quoted_after(message, "unknown field ") {
        let reason = match message.split_once("expected ") {
            Some((_, expected)) => format!("is not accepted here; expected {}", unquoted(expected)),
            None => "is not accepted here".to_owned(),
        };
        return (within(&name), reason);
    }
    if message.starts_with("unknown variant ") {
        let expected = message.split_once("expected ").map_or("", |(_, e)| e);
        return (field(), format!("must be {}", unquoted(expected)));
    }
    for kind in ["invalid type: ", "invalid value: ", "invalid length "] {
        if message.starts_with(kind) {
            let expected = message.rsplit_once("expected ").map_or("", |(_, e)| e);
            return (field(), format!("must be {}", plain_type(expected)));
        }
    }
    let reason = match message {
        m if m.starts_with("data did not match any variant") => "does not match any accepted shape".to_owned(),
        "invalid digit found in string" | "cannot parse integer from empty string" => "must be an integer".into(),
        "number too large to fit in target type" | "number too small to fit in target type" => "is out of range".into(),
        "invalid float literal" => "must be a number".into(),
        m if m.starts_with("provided string was not `true` or `false`") => "must be true or false".into(),
        m if m.starts_with("duplicate field ") => "is given more than once".into(),
        m => without_values(m),
    };
    (field(), reason)
}

/// The first backquoted name after `lead`, e.g. `doseLabel` in "missing field `doseLabel`".
fn quoted_after(message: &str, lead: &str) -> Option<String> {
    let rest = message.strip_prefix(lead)?;
    let rest = rest.strip_prefix('`')?;
    rest.split_once('`').map(|(name, _)| name.to_owned())
}

/// A deserializer's list of expectations without its quoting: "`a`, `b`" is "a, b".
fn unquoted(expected: &str) -> String {
    expected.replace('`', "")
}

/// What a deserializer expected, as a person would say it.
fn plain_type(expected: &str) -> String {
    let e = expected.trim();
    match e {
        "i8" | "i16" | "i32" | "i64" | "isize" => "an integer".into(),
        "u8" | "u16" | "u32" | "u64" | "usize" => "a non-negative integer".into(),
        "f32" | "f64" => "a number".into(),
        "a boolean" => "true or false".into(),
        "a sequence" => "a list".into(),
        "a string" | "a borrowed string" | "a character" => "a string".into(),
        "a map" => "an object".into(),
        _ if e.starts_with("struct ") || e.starts_with("internally tagged enum") || e.starts_with("enum ") => {
            "an object".into()
        }
        _ if e.starts_with("a tuple") || e.starts_with("an array") => "a list".into(),
        _ => without_values(&unquoted(e)),
    }
}

/// Drops every quoted literal from a deserializer message except the field names of
/// `unknown field` / `missing field`, which are the caller's own keys or ours.
fn without_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(['"', '`']) {
        out.push_str(&rest[..start]);
        let quote = rest.as_bytes()[start] as char;
        let Some(len) = rest[start + 1..].find(quote) else {
            // An unterminated quote: whatever follows may be the value.
            return out;
        };
        let literal = &rest[start..start + len + 2];
        let names_a_field = out.ends_with("unknown field ") || out.ends_with("missing field ");
        // Literals after "expected" list what we accept (our own field names and types).
        let is_expectation = out.rfind("expected") > out.rfind("invalid");
        out.push_str(if names_a_field || is_expectation {
            literal
        } else {
            "(value)"
        });
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        rejection(r.status(), r.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        rejection(r.status(), r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        rejection(r.status(), r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        rejection(r.status(), r.body_text())
    }
}

#[cfg(test)]
mod tests {
    use era_kit::error::{invalid_argument, with_reason, FieldViolation};

    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[expect(dead_code, reason = "only deserialized")]
    struct Route {
        pharmacy_id: String,
        priority: i32,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[expect(dead_code, reason = "only deserialized")]
    struct Body {
        routes: Vec<Route>,
        #[serde(default)]
        note: String,
        #[serde(default)]
        kind: Option<Kind>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        Primary,
        Fallback,
    }

    /// The answer to a JSON body, as `(message, [(field, reason)])`.
    fn json(body: &str) -> (String, Vec<(String, String)>) {
        let err = ApiError::from(axum::Json::<Body>::from_bytes(body.as_bytes()).unwrap_err());
        assert_eq!(
            (err.status, err.detail.code.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_request")
        );
        let fields = err.detail.fields.into_iter().map(|f| (f.field, f.reason)).collect();
        (err.detail.message, fields)
    }

    fn pair(field: &str, reason: &str) -> Vec<(String, String)> {
        vec![(field.to_owned(), reason.to_owned())]
    }

    #[test]
    fn body_rejections_name_the_field_and_why_in_our_words() {
        let (message, fields) = json(r#"{"routes":[{"pharmacyId":"strive","priority":"Jane Doe 1980-01-01"}]}"#);
        assert_eq!(message, "routes[0].priority: must be an integer");
        assert_eq!(fields, pair("routes[0].priority", "must be an integer"));

        assert_eq!(
            json(r#"{"routes":[{"priority":1}]}"#).1,
            pair("routes[0].pharmacyId", "is required")
        );
        assert_eq!(json(r#"{"note":"x"}"#).1, pair("routes", "is required"));
        assert_eq!(
            json(r#"{"routes":[],"updatedBy":"Jane"}"#).1,
            pair("updatedBy", "is not accepted here; expected one of routes, note, kind")
        );
        assert_eq!(
            json(r#"{"routes":[],"kind":"Jane"}"#).1,
            pair("kind", "must be primary or fallback")
        );
        assert_eq!(json(r#"{"routes":{}}"#).1, pair("routes", "must be a list"));
        assert_eq!(json("[]").1, pair("body", "must be an object"));
        assert_eq!(
            json(r#"{"routes":[],"note":"#).1,
            pair("body", "is not valid JSON (at line 1, column 20)")
        );
        assert_eq!(
            json("{not json").1,
            pair("body", "is not valid JSON (at line 1, column 2)")
        );
        assert_eq!(json("").1, pair("body", "is not valid JSON (at line 1, column 0)"));
        for body in [
            r#"{"routes":[{"pharmacyId":"strive","priority":"Jane Doe 1980-01-01"}]}"#,
            r#"{"routes":[{"pharmacyId":19800101,"priority":1}]}"#,
            r#"{"routes":[],"kind":"Jane Doe"}"#,
        ] {
            let (message, fields) = json(body);
            let all = format!("{message} {fields:?}");
            assert!(!all.contains("Jane") && !all.contains("1980"), "{all}");
            assert!(!all.contains("deserialize") && !all.contains("target type"), "{all}");
        }
    }

    #[test]
    fn query_rejections_name_the_parameter() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        #[expect(dead_code, reason = "only deserialized")]
        struct ListQuery {
            page_size: Option<i32>,
            page_token: Option<String>,
        }
        let query = |q: &str| {
            let uri: http::Uri = format!("/x?{q}").parse().unwrap();
            let err = ApiError::from(axum::extract::Query::<ListQuery>::try_from_uri(&uri).unwrap_err());
            err.detail
                .fields
                .into_iter()
                .map(|f| (f.field, f.reason))
                .collect::<Vec<_>>()
        };
        assert_eq!(query("pageSize=ten"), pair("pageSize", "must be an integer"));
        assert_eq!(query("pageSize=99999999999"), pair("pageSize", "is out of range"));
        assert_eq!(
            query("size=1"),
            pair("size", "is not accepted here; expected pageSize or pageToken")
        );
    }

    #[test]
    fn values_are_dropped_from_what_is_passed_on_as_is() {
        assert!(!without_values("invalid value: integer `19800101`, expected u8").contains("1980"));
        let text = "unknown field `updatedBy`, expected one of `excluded`, `routes`, `note`";
        assert_eq!(without_values(text), text);
    }

    #[test]
    fn every_grpc_code_has_its_http_status() {
        let table = [
            (Code::InvalidArgument, 400),
            (Code::OutOfRange, 400),
            (Code::FailedPrecondition, 422),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::Aborted, 409),
            (Code::Unauthenticated, 500),
            (Code::PermissionDenied, 403),
            (Code::ResourceExhausted, 429),
            (Code::Unimplemented, 501),
            (Code::Unavailable, 503),
            (Code::Cancelled, 503),
            (Code::DeadlineExceeded, 504),
            (Code::Internal, 500),
            (Code::Unknown, 500),
            (Code::DataLoss, 500),
        ];
        for (code, http) in table {
            assert_eq!(
                ApiError::from(tonic::Status::new(code, "m")).status.as_u16(),
                http,
                "{code:?}"
            );
        }
    }

    #[test]
    fn reasons_and_fields_carry_over_and_internals_do_not() {
        let e = ApiError::from(with_reason(
            Code::FailedPrecondition,
            "STATE_EXCLUDED",
            "TX is excluded",
        ));
        assert_eq!(
            (e.detail.code.as_str(), e.detail.message.as_str()),
            ("state_excluded", "TX is excluded")
        );
        let e = ApiError::from(invalid_argument(&[FieldViolation::new(
            "routes[0].pharmacy_id",
            "unknown",
        )]));
        assert_eq!(e.detail.fields[0].field, "routes[0].pharmacyId");
        let e = ApiError::from(tonic::Status::internal("relation \"x\" does not exist"));
        assert_eq!(e.detail.message, "internal error");
    }
}
