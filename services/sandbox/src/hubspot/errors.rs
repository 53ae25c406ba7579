//! HubSpot's error body (external-apis.md §4): `{"status": "error", "message", "correlationId",
//! "category", "errors"?: [{"message", "in"?}]}`.

use axum::{
    response::{IntoResponse, Response},
    Json,
};
use http::StatusCode;
use serde_json::{json, Value};

pub(crate) type HubResult<T> = Result<T, HubError>;

#[derive(Clone, Debug)]
pub(crate) struct HubError {
    pub(crate) status: StatusCode,
    pub(crate) category: &'static str,
    pub(crate) message: String,
    /// Per-field details: (message, the field it is about).
    pub(crate) errors: Vec<(String, String)>,
}

impl HubError {
    fn new(status: StatusCode, category: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            category,
            message: message.into(),
            errors: Vec::new(),
        }
    }

    pub(crate) fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more \
             details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        )
    }

    pub(crate) fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
    }

    /// Required fields absent from a request body, each named.
    pub(crate) fn missing(fields: &[&str]) -> Self {
        let mut e = Self::validation(format!(
            "Invalid input JSON: Some required fields were not set: [{}]",
            fields.join(", ")
        ));
        e.errors = fields
            .iter()
            .map(|f| (format!("{f} is required"), (*f).to_owned()))
            .collect();
        e
    }

    /// One field with a bad value.
    pub(crate) fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut e = Self::validation(message.clone());
        e.errors = vec![(message, field.to_owned())];
        e
    }

    pub(crate) fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            format!("{what} {id} does not exist"),
        )
    }
}

impl IntoResponse for HubError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "status": "error",
            "message": self.message,
            "correlationId": uuid::Uuid::new_v4().to_string(),
            "category": self.category,
        });
        if !self.errors.is_empty() {
            body["errors"] = Value::Array(
                self.errors
                    .iter()
                    .map(|(message, field)| json!({ "message": message, "in": field }))
                    .collect(),
            );
        }
        (self.status, Json(body)).into_response()
    }
}
