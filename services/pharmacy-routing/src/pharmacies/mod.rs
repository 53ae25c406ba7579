//! Placing, reading and cancelling orders at the compounding pharmacies. One trait, one adapter per
//! kind of pharmacy API: PioneerRx (GMP) and LifeFile (Boothwyn, Strive). None of them takes an
//! idempotency key and a repeated submission is a second order, so the adapters never retry a
//! submission: they tell the caller whether the pharmacy certainly did nothing ([`PharmacyError::
//! Unavailable`]), may have placed it ([`PharmacyError::Uncertain`]) or refused it; the approval
//! pipeline decides what is safe. Reads are retried by the caller freely. An uncertain submission
//! is resolved by asking the pharmacy for the orders it holds under our reference id
//! ([`PharmacyAdapter::find`]) before ever submitting again.
//!
//! Orders carry PHI (the patient's name, birth date, address). Nothing here logs a body; errors keep
//! statuses and the pharmacies' stable codes, never their messages' values.

mod lifefile;
mod pioneerrx;

use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use serde_json::Value;

pub use self::{
    lifefile::{LifeFile, LifeFileAccount},
    pioneerrx::{PioneerRx, PioneerRxAccount},
};

/// The order the pipeline places: one patient, one prescriber, the items to compound and ship.
#[derive(Clone, Debug)]
pub struct OrderRequest {
    /// Ours (the run's), carried back in the pharmacy's callbacks.
    pub reference_id: String,
    pub prescriber: Prescriber,
    pub patient: Patient,
    pub ship_to: Address,
    pub items: Vec<Item>,
}

#[derive(Clone, Debug)]
pub struct Prescriber {
    pub npi: String,
    pub first_name: String,
    pub last_name: String,
    pub license_state: String,
    pub license_number: String,
}

#[derive(Clone)]
pub struct Patient {
    pub first_name: String,
    pub last_name: String,
    /// `YYYY-MM-DD`.
    pub date_of_birth: String,
    /// `M`, `F` or `U`.
    pub gender: char,
    pub phone: String,
    pub email: String,
}

#[derive(Clone)]
pub struct Address {
    pub line1: String,
    pub line2: String,
    pub city: String,
    pub state: String,
    pub zip: String,
}

#[derive(Clone, Debug)]
pub struct Item {
    pub drug_name: String,
    pub strength: String,
    pub form: String,
    pub quantity: f64,
    pub quantity_units: String,
    pub days_supply: u32,
    pub refills: u32,
    /// The SIG.
    pub directions: String,
}

// The patient's details are PHI: their Debug output names no value, so a stray `?order` in a log
// line cannot leak them.
impl std::fmt::Debug for Patient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Patient { .. }")
    }
}

impl std::fmt::Debug for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Address")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// An order the pharmacy accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    pub external_id: String,
    pub http_status: u16,
}

/// Where an order stands at the pharmacy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderState {
    /// received, processing, shipped, delivered, cancelled or rejected.
    pub status: String,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
}

/// An order the pharmacy holds under our reference id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub external_id: String,
    /// received, processing, shipped, delivered, cancelled or rejected (lower case).
    pub status: String,
}

impl Found {
    /// Whether the pharmacy is still going to fill it (it neither refused nor cancelled it).
    pub fn live(&self) -> bool {
        !matches!(self.status.as_str(), "rejected" | "cancelled" | "canceled")
    }
}

/// Why a pharmacy call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PharmacyError {
    /// The pharmacy refused the order for a reason that will not change on retry (an invalid NPI,
    /// a state it does not serve, its own rejection). `code` is stable where the API gives one.
    #[error("the pharmacy refused the request ({code})")]
    Refused { code: String, http_status: u16 },
    /// Nothing was done (no connection, 429, a 5xx to a read or cancel): retrying is safe.
    #[error("the pharmacy is unavailable ({0})")]
    Unavailable(String),
    /// The request went out and no clear answer came back: the order may exist.
    #[error("the pharmacy's answer was lost ({0})")]
    Uncertain(String),
    /// The pharmacy does not know the order.
    #[error("the pharmacy has no such order")]
    NotFound,
    /// The order can no longer be cancelled (it shipped).
    #[error("the order can no longer be cancelled")]
    TooLate,
    /// Our credentials or request were refused: a configuration or code fault, not the order's.
    #[error("the pharmacy refused our request ({0})")]
    Misconfigured(String),
}

impl PharmacyError {
    /// The HTTP status behind the error, for the sync log (0 when none came back).
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Refused { http_status, .. } => *http_status,
            _ => 0,
        }
    }
}

/// A compounding pharmacy's order API.
#[tonic::async_trait]
pub trait PharmacyAdapter: Send + Sync + std::fmt::Debug {
    /// The pharmacy's id in the routing matrix ("gmp", "boothwyn", "strive").
    fn pharmacy_id(&self) -> &str;
    /// Places the order, once: never retried here.
    async fn submit(&self, order: &OrderRequest) -> Result<Placed, PharmacyError>;
    /// Reads where the order stands.
    async fn status(&self, external_id: &str) -> Result<OrderState, PharmacyError>;
    /// Cancels an order that has not shipped; cancelling a cancelled order succeeds.
    async fn cancel(&self, external_id: &str) -> Result<(), PharmacyError>;
    /// The orders the pharmacy holds under our `reference_id`: oldest first when it says when each
    /// was created, otherwise as it lists them. What settles a [`PharmacyError::Uncertain`]
    /// submission before submitting again. A read, so never `Uncertain`; and only an answer that
    /// lists the orders is an empty `Ok` ("none"): any failure is an error, never `NotFound`.
    async fn find(&self, reference_id: &str) -> Result<Vec<Found>, PharmacyError>;
}

/// Order ids are strings at PioneerRx; LifeFile's are numbers in its answers and strings in its
/// pushes.
pub(crate) fn order_id(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A 2xx whose body is not what the API answers.
pub(crate) fn unreadable() -> PharmacyError {
    PharmacyError::Unavailable("an unreadable answer".into())
}

/// A lookup's answer: `list`, each `{orderId, referenceId, status, createdAt?}`, oldest first when
/// every order has a `createdAt` (a stable sort, so ties keep the pharmacy's order). Only a list
/// of orders with ids is read as one: anything else is unreadable, never "none".
pub(crate) fn found(list: &Value, reference_id: &str) -> Result<Vec<Found>, PharmacyError> {
    let list = list.as_array().ok_or_else(unreadable)?;
    let mut found: Vec<(Option<DateTime<FixedOffset>>, Found)> = Vec::with_capacity(list.len());
    for o in list {
        // An answer for other references (a filter ignored) cannot say whether ours exists.
        if o["referenceId"].as_str().is_some_and(|r| r != reference_id) {
            return Err(PharmacyError::Misconfigured(
                "an order lookup answered for another reference".into(),
            ));
        }
        let created = o["createdAt"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
        let order = Found {
            external_id: order_id(&o["orderId"]).ok_or_else(unreadable)?,
            status: o["status"].as_str().unwrap_or_default().trim().to_ascii_lowercase(),
        };
        found.push((created, order));
    }
    if found.iter().all(|(at, _)| at.is_some()) {
        found.sort_by_key(|(at, _)| *at);
    }
    Ok(found.into_iter().map(|(_, order)| order).collect())
}

/// A lookup's failure, from what the same status means elsewhere. Only a listing can mean "none":
/// a 404 (no such route, a wrong base URL), 409 or 422 to a lookup is our request's fault, not
/// `NotFound`; and a read is never `Uncertain`.
pub(crate) fn lookup_failure(e: PharmacyError) -> PharmacyError {
    match e {
        PharmacyError::NotFound => PharmacyError::Misconfigured("404 to an order lookup".into()),
        PharmacyError::TooLate => PharmacyError::Misconfigured("409 to an order lookup".into()),
        PharmacyError::Refused { code, http_status } => {
            PharmacyError::Misconfigured(format!("{http_status} {code} to an order lookup"))
        }
        PharmacyError::Uncertain(why) => PharmacyError::Unavailable(why),
        e @ (PharmacyError::Unavailable(_) | PharmacyError::Misconfigured(_)) => e,
    }
}

/// The HTTP client every adapter uses: bounded, no redirects (a pharmacy API does not move).
pub(crate) fn http(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a TLS-capable client builds")
}

/// A transport failure as an error: a request that never connected did nothing; for a submission,
/// anything later may have placed the order.
pub(crate) fn transport(e: &reqwest::Error, submission: bool) -> PharmacyError {
    if e.is_connect() {
        PharmacyError::Unavailable("could not connect".into())
    } else if submission {
        PharmacyError::Uncertain(
            if e.is_timeout() {
                "no answer in time"
            } else {
                "connection lost"
            }
            .into(),
        )
    } else {
        PharmacyError::Unavailable(
            if e.is_timeout() {
                "no answer in time"
            } else {
                "connection lost"
            }
            .into(),
        )
    }
}
