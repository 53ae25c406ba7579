//! Zoom's API error body (external-apis.md §1): `{"code", "message"}`, and for validation failures
//! (code 300) an `errors` array naming each offending field. The OAuth endpoint has its own shape,
//! `{"reason", "error"}` ([`super::oauth`]).

use axum::{
    response::{IntoResponse, Response},
    Json,
};
use http::StatusCode;
use serde_json::{json, Value};

pub(crate) type ZoomResult<T> = Result<T, ZoomError>;

/// One entry of `errors`: the field as the caller wrote it (`settings.audio` for a nested one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FieldError {
    pub(crate) field: String,
    pub(crate) message: String,
}

impl FieldError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ZoomError {
    pub(crate) status: StatusCode,
    pub(crate) code: u32,
    pub(crate) message: String,
    pub(crate) errors: Vec<FieldError>,
}

impl ZoomError {
    fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            errors: Vec::new(),
        }
    }

    /// No bearer token, or one this account never issued.
    pub(crate) fn invalid_token() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, 124, "Invalid access token.")
    }

    pub(crate) fn expired_token() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, 124, "Access token is expired.")
    }

    /// The body is not JSON, or not a JSON object.
    pub(crate) fn not_an_object() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            300,
            "Request Body should be a valid JSON object.",
        )
    }

    pub(crate) fn validation(errors: Vec<FieldError>) -> Self {
        Self {
            errors,
            ..Self::new(StatusCode::BAD_REQUEST, 300, "Validation Failed.")
        }
    }

    pub(crate) fn field(field: &str, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }

    pub(crate) fn user_not_found(user_id: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, 1001, format!("User does not exist: {user_id}."))
    }

    /// The path's meeting id as written, so a non-number is named as the caller sent it.
    pub(crate) fn meeting_not_found(meeting_id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            3001,
            format!("Meeting {meeting_id} is not found or has expired."),
        )
    }

    pub(crate) fn daily_create_limit(limit: u32) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            429,
            format!(
                "You have exceeded the daily rate limit ({limit}) of Meeting Create/Update API requests permitted \
                 for this particular user. You may resume these requests at GMT 00:00:00."
            ),
        )
    }

    pub(crate) fn per_second_limit() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            429,
            "You have reached the maximum per-second rate limit for this API. Try again later.",
        )
    }

    pub(crate) fn body(&self) -> Value {
        let mut body = json!({ "code": self.code, "message": self.message });
        if !self.errors.is_empty() {
            body["errors"] = self
                .errors
                .iter()
                .map(|e| json!({ "field": e.field, "message": e.message }))
                .collect();
        }
        body
    }
}

impl IntoResponse for ZoomError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}
