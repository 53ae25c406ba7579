//! FHIR errors. Canvas answers every 4xx/5xx with an OperationOutcome whose `code` follows the
//! status (canvas.md §2), so the error type carries both and renders the body itself.

use axum::{
    response::{IntoResponse, Response},
    Json,
};
use http::StatusCode;
use serde_json::json;

/// A failed FHIR call: the status, the OperationOutcome issue code and its `details.text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FhirError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) text: String,
}

pub(crate) type FhirResult<T> = Result<T, FhirError>;

impl FhirError {
    /// 400: malformed or failed validation; the text names the offending field.
    pub(crate) fn invalid(text: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "invalid",
            text: text.into(),
        }
    }

    pub(crate) fn unauthenticated() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: "unknown",
            text: "Authentication failed".into(),
        }
    }

    pub(crate) fn not_found(resource_type: &str, id: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "not-found",
            text: format!("Unknown {resource_type} resource '{id}'"),
        }
    }

    /// 404 for a path that names no resource type Canvas serves.
    pub(crate) fn unknown_route(path: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "not-found",
            text: format!("Unknown resource type or route '{path}'"),
        }
    }

    pub(crate) fn not_supported() -> Self {
        Self {
            status: StatusCode::METHOD_NOT_ALLOWED,
            code: "not-supported",
            text: "Operation is not supported".into(),
        }
    }

    /// 412: a conditional update found the resource changed since the caller's date.
    pub(crate) fn conflict() -> Self {
        Self {
            status: StatusCode::PRECONDITION_FAILED,
            code: "conflict",
            text: "Resource updated since If-Unmodified-Since date".into(),
        }
    }

    /// 422: well-formed, but Canvas's rules refuse it.
    pub(crate) fn business_rule(text: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "business-rule",
            text: text.into(),
        }
    }
}

impl IntoResponse for FhirError {
    fn into_response(self) -> Response {
        let body = json!({
            "resourceType": "OperationOutcome",
            "issue": [{ "severity": "error", "code": self.code, "details": { "text": self.text } }],
        });
        (self.status, Json(body)).into_response()
    }
}
