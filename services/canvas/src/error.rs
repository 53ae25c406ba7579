//! The canvas service's errors, mapped to `tonic::Status` in one place. Messages never carry PHI:
//! they name fields and ids, not values.

use era_kit::error::{internal, invalid_argument, with_reason, FieldViolation};
use tonic::{Code, Status};
use uuid::Uuid;

use crate::fhir::FhirError;

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid request")]
    InvalidArgument(Vec<FieldViolation>),
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    /// A patient caller asked for another patient's data: answered as not found, so existence
    /// does not leak.
    #[error("not found")]
    Hidden,
    #[error("{0}")]
    Forbidden(&'static str),
    /// Another call holds the key, or this one lost it: try again shortly (ABORTED, HTTP 409).
    #[error(transparent)]
    Lock(#[from] era_kit::keylock::LockError),
    #[error("this {0} was already used for a different request")]
    KeyReused(&'static str),
    #[error("intake record {0} failed its integrity check")]
    RecordIntegrity(Uuid),
    #[error("{0}")]
    Precondition(&'static str, String),
    #[error(transparent)]
    Canvas(#[from] FhirError),
    #[error("pharmacy-routing: {0}")]
    Peer(Status),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl Error {
    pub fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, reason)])
    }

    pub fn not_found(what: &'static str, id: impl Into<String>) -> Self {
        Self::NotFound { what, id: id.into() }
    }

    /// The stable reason code clients branch on (`google.rpc.ErrorInfo.reason`).
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Self::KeyReused(_) => Some("IDEMPOTENCY_KEY_REUSED"),
            Self::RecordIntegrity(_) => Some("RECORD_INTEGRITY"),
            Self::Precondition(reason, _) => Some(reason),
            Self::Lock(e) => Some(e.reason()),
            Self::Canvas(FhirError::Unavailable { .. }) => Some("CANVAS_UNAVAILABLE"),
            Self::Canvas(FhirError::Rejected { status: 412, .. }) => Some("CHANGED_SINCE_READ"),
            Self::Canvas(FhirError::Rejected { .. }) => Some("CANVAS_REJECTED"),
            Self::Canvas(_)
            | Self::InvalidArgument(_)
            | Self::NotFound { .. }
            | Self::Hidden
            | Self::Forbidden(_)
            | Self::Peer(_)
            | Self::Db(_)
            | Self::Internal(_) => None,
        }
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        // No wildcard: a new variant must choose its code here.
        match &err {
            Error::InvalidArgument(violations) => invalid_argument(violations),
            Error::NotFound { .. } => Status::not_found(err.to_string()),
            Error::Hidden => Status::not_found("not found"),
            Error::Forbidden(why) => Status::permission_denied(*why),
            Error::KeyReused(_) => with_reason(Code::FailedPrecondition, "IDEMPOTENCY_KEY_REUSED", err.to_string()),
            Error::RecordIntegrity(id) => {
                tracing::error!(record_id = %id, "intake record failed its integrity check");
                with_reason(Code::DataLoss, "RECORD_INTEGRITY", err.to_string())
            }
            Error::Precondition(reason, message) => with_reason(Code::FailedPrecondition, reason, message.clone()),
            Error::Lock(era_kit::keylock::LockError::Db(e)) => internal(&anyhow::anyhow!("database: {e}")),
            Error::Lock(e) => with_reason(Code::Aborted, e.reason(), e.to_string()),
            Error::Canvas(e) => match e {
                FhirError::Unavailable { detail } => {
                    tracing::warn!(detail, "Canvas unavailable");
                    with_reason(
                        Code::Unavailable,
                        "CANVAS_UNAVAILABLE",
                        "Canvas is unavailable; try again shortly",
                    )
                }
                FhirError::NotFound { .. } => Status::not_found("not found in Canvas"),
                FhirError::Rejected { status: 412, .. } => with_reason(
                    Code::Aborted,
                    "CHANGED_SINCE_READ",
                    "it changed in Canvas while this change was being made; reload and try again",
                ),
                // Canvas's text can quote submitted values (PHI): it stays out of logs and answers.
                FhirError::Rejected { status, code, .. } => {
                    tracing::warn!(status, code, "Canvas refused a request");
                    with_reason(
                        Code::FailedPrecondition,
                        "CANVAS_REJECTED",
                        format!("Canvas refused the request ({status} {code})"),
                    )
                }
                FhirError::Credentials(_) | FhirError::Protocol(_) => internal(&anyhow::anyhow!("canvas: {e}")),
            },
            Error::Peer(status) => {
                tracing::warn!(code = ?status.code(), "pharmacy-routing call failed");
                Status::unavailable("pharmacy-routing is unavailable")
            }
            Error::Db(e) => internal(&anyhow::anyhow!("database: {e}")),
            Error::Internal(e) => internal(e),
        }
    }
}
