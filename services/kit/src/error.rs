//! Building `tonic::Status` the one way the edge knows how to read: field violations as
//! `google.rpc.BadRequest`, stable reason codes as `google.rpc.ErrorInfo`. Each service has its own
//! error enum and maps it to `Status` once, through these.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `ErrorInfo.domain` of every reason code the mesh emits.
pub const ERROR_DOMAIN: &str = "era.mesh";

/// One invalid field: its path as the caller wrote it (`state`, `routes[1].priority`) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub reason: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// INVALID_ARGUMENT listing every bad field.
pub fn invalid_argument(violations: &[FieldViolation]) -> Status {
    let message = violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.reason))
        .collect::<Vec<_>>()
        .join("; ");
    let mut details = ErrorDetails::new();
    for v in violations {
        details.add_bad_request_violation(v.field.clone(), v.reason.clone());
    }
    Status::with_error_details(Code::InvalidArgument, message, details)
}

/// A status carrying a stable snake_case reason the edge turns into the error body's `code`.
pub fn with_reason(code: Code, reason: &str, message: impl Into<String>) -> Status {
    let details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, HashMap::<String, String>::new());
    Status::with_error_details(code, message.into(), details)
}

/// Logs the whole cause chain and answers a generic INTERNAL: internals (SQL, upstream bodies) never
/// reach a caller.
pub fn internal(err: &anyhow::Error) -> Status {
    tracing::error!(error = format!("{err:#}"), "internal error");
    Status::internal("internal error")
}

/// The reason code of a status, if it carries one.
pub fn reason_of(status: &Status) -> Option<String> {
    status.get_details_error_info().map(|i| i.reason)
}

/// The field violations of a status, if any.
pub fn violations_of(status: &Status) -> Vec<FieldViolation> {
    status
        .get_details_bad_request()
        .map(|b| {
            b.field_violations
                .into_iter()
                .map(|v| FieldViolation::new(v.field, v.description))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_survive_the_round_trip() {
        let s = invalid_argument(&[FieldViolation::new("state", "unknown state code")]);
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(s.message(), "state: unknown state code");
        assert_eq!(
            violations_of(&s),
            vec![FieldViolation::new("state", "unknown state code")]
        );
        let s = with_reason(Code::FailedPrecondition, "STATE_EXCLUDED", "not served");
        assert_eq!(reason_of(&s).as_deref(), Some("STATE_EXCLUDED"));
    }
}
