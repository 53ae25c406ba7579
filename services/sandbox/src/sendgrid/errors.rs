//! SendGrid's error bodies (external-apis.md §2): `{"errors": [{"message", "field", "help"}]}`;
//! a validation failure lists every problem found, each naming its field.

use http::StatusCode;
use serde_json::{json, Value};

/// One entry of `errors`: the JSON path of the offending field (`personalizations.0.to`), if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FieldError {
    pub(crate) field: Option<String>,
    pub(crate) message: String,
}

impl FieldError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            message: message.into(),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct SendGridError {
    pub(crate) status: StatusCode,
    pub(crate) errors: Vec<FieldError>,
    /// 429 only: seconds until the limit resets.
    pub(crate) retry_after: Option<i64>,
}

impl SendGridError {
    fn one(status: StatusCode, message: &str) -> Self {
        Self {
            status,
            errors: vec![FieldError {
                field: None,
                message: message.to_owned(),
            }],
            retry_after: None,
        }
    }

    pub(crate) fn unauthorized() -> Self {
        Self::one(StatusCode::UNAUTHORIZED, "authorization required")
    }

    /// The body is not JSON at all.
    pub(crate) fn bad_request() -> Self {
        Self::one(StatusCode::BAD_REQUEST, "Bad Request")
    }

    pub(crate) fn invalid(errors: Vec<FieldError>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            errors,
            retry_after: None,
        }
    }

    pub(crate) fn too_many_requests(retry_after: i64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::one(StatusCode::TOO_MANY_REQUESTS, "too many requests")
        }
    }

    pub(crate) fn body(&self) -> Value {
        let errors: Vec<Value> = self
            .errors
            .iter()
            .map(|e| {
                // The documented 429 body has no `help`; the others carry it as null.
                if self.status == StatusCode::TOO_MANY_REQUESTS {
                    json!({ "field": e.field, "message": e.message })
                } else {
                    json!({ "message": e.message, "field": e.field, "help": null })
                }
            })
            .collect();
        json!({ "errors": errors })
    }
}
