//! The scheduling service's errors, mapped to `tonic::Status` in one place.

use era_kit::error::{internal, invalid_argument, reason_of, with_reason, FieldViolation};
use tonic::{Code, Status};

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid request")]
    InvalidArgument(Vec<FieldViolation>),
    /// A rule of the clinic declines a valid request; the reason code names which.
    #[error("{1}")]
    Precondition(&'static str, String),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A patient asked for another patient's appointment.
    #[error("a patient may only see their own appointments")]
    Hidden,
    /// A peer or vendor the request needs is unavailable; the reason names which.
    #[error("{1}")]
    Unavailable(&'static str, String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl Error {
    pub fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, reason)])
    }

    pub fn slot_unavailable() -> Self {
        Self::Precondition(
            "SLOT_UNAVAILABLE",
            "this time is not free: choose another from the availability".into(),
        )
    }

    /// A peer service's failure, as this service reports it: its own refusals (bad input, a taken
    /// slot) keep their meaning, an outage names the peer, anything else is internal.
    pub fn from_peer(peer: &'static str, unavailable: &'static str, status: &Status) -> Self {
        match status.code() {
            Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Aborted => {
                Self::Unavailable(unavailable, format!("{peer} is unavailable"))
            }
            Code::NotFound => Self::NotFound("the patient or practitioner"),
            Code::FailedPrecondition if reason_of(status).as_deref() == Some("SLOT_UNAVAILABLE") => {
                Self::slot_unavailable()
            }
            _ => Self::Internal(anyhow::anyhow!(
                "{peer} answered {:?}: {}",
                status.code(),
                status.message()
            )),
        }
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        // No wildcard: a new variant must choose its code here.
        match &err {
            Error::InvalidArgument(violations) => invalid_argument(violations),
            Error::Precondition(reason, message) => with_reason(Code::FailedPrecondition, reason, message.clone()),
            Error::NotFound(_) => Status::not_found(err.to_string()),
            Error::Hidden => Status::permission_denied(err.to_string()),
            Error::Unavailable(reason, _) => with_reason(Code::Unavailable, reason, err.to_string()),
            Error::Db(e) => internal(&anyhow::anyhow!("database: {e}")),
            Error::Internal(e) => internal(e),
        }
    }
}
