//! The routing service's errors, mapped to `tonic::Status` in one place.

use era_kit::error::{internal, invalid_argument, with_reason, FieldViolation};
use tonic::{Code, Status};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid request")]
    InvalidArgument(Vec<FieldViolation>),
    #[error("{state} is excluded: the clinic does not operate there")]
    StateExcluded { state: String },
    #[error("{state} has no active route")]
    NoActiveRoute { state: String },
    #[error("no pharmacy routed for {state} fills {medication}")]
    MedicationNotAvailable { state: String, medication: String },
    #[error("no prescriber holds a current licence in {state}")]
    NoLicensedPrescriber { state: String },
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    #[error("task {task_id} is not open for review")]
    TaskNotOpen { task_id: String },
    #[error("task {task_id} was already decided differently (run {run_id})")]
    TaskAlreadyDecided { task_id: String, run_id: String },
    /// A prescription written in Canvas already fulfils this patient's medication.
    #[error("a prescription written in Canvas already fulfils this medication for the patient (run {run_id})")]
    AlreadyFulfilled { run_id: String },
    #[error("refill {refill_id} is {status}: it cannot be {action}")]
    RefillNotActionable {
        refill_id: String,
        status: String,
        action: &'static str,
    },
    /// The same task is being decided by several requests at once and this one lost every round.
    #[error("the task is being decided by another request; retry shortly")]
    Busy,
    /// A peer the request needs is unavailable; the reason names which.
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

    /// The stable reason code clients branch on (carried as `google.rpc.ErrorInfo.reason`).
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Self::StateExcluded { .. } => Some("STATE_EXCLUDED"),
            Self::NoActiveRoute { .. } => Some("NO_ACTIVE_ROUTE"),
            Self::MedicationNotAvailable { .. } => Some("MEDICATION_NOT_AVAILABLE"),
            Self::NoLicensedPrescriber { .. } => Some("NO_LICENSED_PRESCRIBER"),
            Self::TaskNotOpen { .. } => Some("TASK_NOT_OPEN"),
            Self::TaskAlreadyDecided { .. } => Some("TASK_ALREADY_DECIDED"),
            Self::AlreadyFulfilled { .. } => Some("ALREADY_FULFILLED"),
            Self::RefillNotActionable { .. } => Some("REFILL_NOT_ACTIONABLE"),
            Self::Unavailable(reason, _) => Some(reason),
            Self::InvalidArgument(_) | Self::Busy | Self::NotFound { .. } | Self::Db(_) | Self::Internal(_) => None,
        }
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        // No wildcard: a new variant must choose its code here.
        match &err {
            Error::InvalidArgument(violations) => invalid_argument(violations),
            Error::StateExcluded { .. }
            | Error::NoActiveRoute { .. }
            | Error::MedicationNotAvailable { .. }
            | Error::NoLicensedPrescriber { .. }
            | Error::TaskNotOpen { .. }
            | Error::TaskAlreadyDecided { .. }
            | Error::AlreadyFulfilled { .. }
            | Error::RefillNotActionable { .. } => with_reason(
                Code::FailedPrecondition,
                err.reason().unwrap_or_default(),
                err.to_string(),
            ),
            Error::NotFound { .. } => Status::not_found(err.to_string()),
            Error::Busy => Status::aborted(err.to_string()),
            Error::Unavailable(reason, _) => with_reason(Code::Unavailable, reason, err.to_string()),
            Error::Db(e) => internal(&anyhow::anyhow!("database: {e}")),
            Error::Internal(e) => internal(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_maps_to_its_code_and_reason() {
        let table: Vec<(Error, Code, Option<&str>)> = vec![
            (Error::field("state", "unknown"), Code::InvalidArgument, None),
            (
                Error::StateExcluded { state: "TX".into() },
                Code::FailedPrecondition,
                Some("STATE_EXCLUDED"),
            ),
            (
                Error::NoActiveRoute { state: "WY".into() },
                Code::FailedPrecondition,
                Some("NO_ACTIVE_ROUTE"),
            ),
            (
                Error::MedicationNotAvailable {
                    state: "WY".into(),
                    medication: "x".into(),
                },
                Code::FailedPrecondition,
                Some("MEDICATION_NOT_AVAILABLE"),
            ),
            (
                Error::NoLicensedPrescriber { state: "GA".into() },
                Code::FailedPrecondition,
                Some("NO_LICENSED_PRESCRIBER"),
            ),
            (
                Error::NotFound {
                    what: "medication",
                    id: "x".into(),
                },
                Code::NotFound,
                None,
            ),
            (
                Error::TaskNotOpen { task_id: "t".into() },
                Code::FailedPrecondition,
                Some("TASK_NOT_OPEN"),
            ),
            (
                Error::TaskAlreadyDecided {
                    task_id: "t".into(),
                    run_id: "r".into(),
                },
                Code::FailedPrecondition,
                Some("TASK_ALREADY_DECIDED"),
            ),
            (
                Error::RefillNotActionable {
                    refill_id: "r".into(),
                    status: "ordered".into(),
                    action: "skipped",
                },
                Code::FailedPrecondition,
                Some("REFILL_NOT_ACTIONABLE"),
            ),
            (
                Error::AlreadyFulfilled { run_id: "r".into() },
                Code::FailedPrecondition,
                Some("ALREADY_FULFILLED"),
            ),
            (
                Error::Unavailable("CANVAS_UNAVAILABLE", "down".into()),
                Code::Unavailable,
                Some("CANVAS_UNAVAILABLE"),
            ),
            (Error::Busy, Code::Aborted, None),
            (Error::Db(sqlx::Error::RowNotFound), Code::Internal, None),
            (Error::Internal(anyhow::anyhow!("boom")), Code::Internal, None),
        ];
        for (err, code, reason) in table {
            let status = Status::from(err);
            assert_eq!(status.code(), code);
            assert_eq!(era_kit::error::reason_of(&status).as_deref(), reason);
        }
    }

    #[test]
    fn internal_errors_say_nothing_of_their_cause() {
        let status = Status::from(Error::Internal(anyhow::anyhow!("select * from secret_table")));
        assert_eq!(status.message(), "internal error");
    }
}
