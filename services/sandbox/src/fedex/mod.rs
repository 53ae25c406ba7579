//! FedEx under `/fedex` (FedEx's host `https://apis.fedex.com`, so a client's `FEDEX_BASE_URL` is
//! `http://<sandbox>/fedex`), following external-apis.md §5: API Authorization at
//! `/fedex/oauth/token` ([`auth`]) and the Track API's track by tracking number at
//! `/fedex/track/v1/trackingnumbers` ([`track`]), in FedEx's error envelope ([`errors`]) and
//! behind its per-project throttle ([`limits`]).
//!
//! The parcels it knows ([`shipments`]) are the ones the pharmacy simulators ship (an order that
//! ships hands FedEx its tracking number, picked up; one reported delivered is delivered at FedEx
//! too) and any a test registers. They move when a test says so, as time would, at
//! `/_sandbox/fedex` ([`control`]). Ledger effects: `token.issued`, `track.request` (how many
//! numbers, how many found), `shipment.registered` and `shipment.advanced` (the tracking number
//! and status; FedEx is never told who the parcel is for).

use std::sync::{Mutex, MutexGuard};

use axum::{routing::post, Router};

use crate::Sandbox;

mod auth;
mod control;
mod errors;
mod limits;
mod shipments;
mod track;

pub(crate) use control::router as control_router;
pub(crate) use errors::injected_body;
pub(crate) use shipments::from_pharmacy;
pub use shipments::Status;

/// Everything FedEx remembers; reset forgets it all.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) tokens: auth::Tokens,
    pub(crate) shipments: shipments::Shipments,
    pub(crate) limits: limits::Limits,
}

/// FedEx's part of the sandbox handle.
#[derive(Debug, Default)]
pub(crate) struct Handle {
    state: Mutex<State>,
}

impl Handle {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets every parcel, token and throttle count, and puts the throttle back to FedEx's
    /// figures.
    pub(crate) fn reset(&self) {
        *self.state() = State::default();
    }
}

/// `/fedex`: the caller adds the not-simulated fallback for other paths.
pub(crate) fn router() -> Router<Sandbox> {
    Router::new()
        .route("/oauth/token", post(auth::token))
        .route("/track/v1/trackingnumbers", post(track::track))
}
