//! The notifications service's errors, mapped to `tonic::Status` in one place. Messages never carry
//! addresses, message contents, codes or links.

use era_kit::error::{internal, invalid_argument, with_reason, FieldViolation};
use tonic::{Code, Status};

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid request")]
    InvalidArgument(Vec<FieldViolation>),
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    /// A refusal by the service's rules, with its stable reason.
    #[error("{1}")]
    Precondition(&'static str, String),
    /// A dependency the call needs at once (not a send: the outbox retries those) is unreachable.
    #[error("{1}")]
    Unavailable(&'static str, String),
    /// A wrong, expired, used or exhausted code or link, with its stable reason.
    #[error("the code or link is not valid")]
    Unauthenticated(&'static str),
    /// Too many of something bounded (codes sent for one email), with its stable reason.
    #[error("{1}")]
    Exhausted(&'static str, String),
    /// Someone else is working on the same key: retry shortly.
    #[error("{1}")]
    Aborted(&'static str, String),
    /// A stored row that fails its integrity check.
    #[error("a stored message failed its integrity check")]
    Integrity,
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
}

impl From<era_kit::sealing::OpenError> for Error {
    fn from(e: era_kit::sealing::OpenError) -> Self {
        tracing::error!(error = %e, "a sealed row did not open");
        Self::Integrity
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        // No wildcard: a new variant must choose its code here.
        match &err {
            Error::InvalidArgument(v) => invalid_argument(v),
            Error::NotFound { .. } => Status::not_found(err.to_string()),
            Error::Precondition(reason, message) => with_reason(Code::FailedPrecondition, reason, message.clone()),
            Error::Unavailable(reason, message) => with_reason(Code::Unavailable, reason, message.clone()),
            Error::Integrity => with_reason(Code::DataLoss, "RECORD_INTEGRITY", err.to_string()),
            Error::Unauthenticated(reason) => with_reason(Code::Unauthenticated, reason, err.to_string()),
            Error::Exhausted(reason, message) => with_reason(Code::ResourceExhausted, reason, message.clone()),
            Error::Aborted(reason, message) => with_reason(Code::Aborted, reason, message.clone()),
            Error::Db(e) => internal(&anyhow::anyhow!("database: {e}")),
            Error::Internal(e) => internal(e),
        }
    }
}
