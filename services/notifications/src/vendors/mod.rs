//! The vendors that carry messages: SendGrid (email) and Twilio (SMS). Neither offers an idempotency
//! key, so the outbox never sends blind after an attempt whose outcome is unknown: it first asks the
//! vendor whether the message went out ([`Found`]).

mod hubspot;
mod sendgrid;
mod twilio;

use std::time::Duration;

pub(crate) use self::{
    hubspot::{HubError, HubSpot},
    sendgrid::{Email, SendGrid},
    twilio::{Sms, Twilio},
};

/// How one attempt ended. Error texts carry vendor codes and field names only: vendors' messages
/// can quote the address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The vendor accepted the message.
    Sent { vendor_id: String, http_status: u16 },
    /// It failed, and a later attempt may succeed (429, 5xx, nothing sent). `after` is the vendor's
    /// own word on when to come back.
    Retry {
        http_status: u16,
        error: String,
        after: Option<Duration>,
    },
    /// It failed for good (an invalid or unsubscribed address).
    Permanent { http_status: u16, error: String },
    /// The request went out and no answer came back: it may have been sent.
    Uncertain { error: String },
}

/// Whether an earlier attempt, whose outcome was unknown, in fact went out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    Sent {
        vendor_id: String,
    },
    NotSent,
    /// The vendor cannot say (the lookup failed or is not available on this account).
    Unknown {
        error: String,
    },
}

/// An error from reqwest as an outcome: a request that never connected was not sent; anything
/// later (a timeout, a reset, a lost body) may have been.
pub(crate) fn transport(vendor: &str, e: &reqwest::Error) -> Outcome {
    if e.is_connect() {
        Outcome::Retry {
            http_status: 0,
            error: format!("{vendor}: could not connect"),
            after: None,
        }
    } else if e.is_timeout() {
        Outcome::Uncertain {
            error: format!("{vendor}: no answer in time"),
        }
    } else {
        Outcome::Uncertain {
            error: format!("{vendor}: the connection failed after the request was sent"),
        }
    }
}

/// `Retry-After` in seconds, when the vendor sent one.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}
