//! The payments service's errors, mapped to `tonic::Status` in one place. Messages never carry card
//! numbers, patient details or Stripe's raw bodies.

use era_kit::error::{internal, invalid_argument, with_reason, FieldViolation};
use tonic::{Code, Status};

use crate::stripe::{StripeError, StripeErrorKind};

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid request")]
    InvalidArgument(Vec<FieldViolation>),
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    /// A patient asked for another patient's data: the same NOT_FOUND as an absent one.
    #[error("not found")]
    Hidden,
    /// A refusal by the clinic's rules, with its stable reason.
    #[error("{1}")]
    Precondition(&'static str, String),
    /// Too many tries of something bounded, with its stable reason.
    #[error("{1}")]
    Exhausted(&'static str, String),
    #[error(transparent)]
    Lock(#[from] era_kit::keylock::LockError),
    #[error(transparent)]
    Stripe(#[from] StripeError),
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

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        // No wildcard: a new variant must choose its code here.
        match &err {
            Error::InvalidArgument(v) => invalid_argument(v),
            Error::NotFound {
                what: "payment hold", ..
            } => with_reason(Code::NotFound, "NO_PAYMENT_HOLD", err.to_string()),
            Error::NotFound { .. } => Status::not_found(err.to_string()),
            Error::Hidden => Status::not_found("not found"),
            Error::Precondition(reason, message) => with_reason(Code::FailedPrecondition, reason, message.clone()),
            Error::Exhausted(reason, message) => with_reason(Code::ResourceExhausted, reason, message.clone()),
            Error::Lock(era_kit::keylock::LockError::Db(e)) => internal(&anyhow::anyhow!("database: {e}")),
            Error::Lock(e) => with_reason(Code::Aborted, e.reason(), e.to_string()),
            Error::Stripe(e) => match e.kind {
                StripeErrorKind::Network | StripeErrorKind::Api | StripeErrorKind::RateLimit => with_reason(
                    Code::Unavailable,
                    "STRIPE_UNAVAILABLE",
                    "Stripe is unavailable; try again shortly",
                ),
                StripeErrorKind::Card => with_reason(
                    Code::FailedPrecondition,
                    "CARD_DECLINED",
                    format!("the card was declined ({})", e.code.as_deref().unwrap_or("card_error")),
                ),
                StripeErrorKind::InvalidRequest | StripeErrorKind::Idempotency | StripeErrorKind::Authentication => {
                    internal(&anyhow::anyhow!("stripe: {e}"))
                }
            },
            Error::Db(e) => internal(&anyhow::anyhow!("database: {e}")),
            Error::Internal(e) => internal(e),
        }
    }
}
