//! Compounding pharmacies (external-apis.md §6): PioneerRx, the GMP pharmacy, under `/pioneerrx`
//! ([`pioneerrx`], an assumed API shape: PioneerRx publishes no order intake), and Boothwyn and
//! Strive, two LifeFile instances, under `/boothwyn/lfapi/v1` and `/strive/lfapi/v1` ([`lifefile`]).
//!
//! All three keep their orders in one store ([`orders`]) and behave as real pharmacies do where it
//! matters to the mesh: an order POSTed twice is two orders (no idempotency key exists), an NPI
//! that fails its check digit ([`npi`]) or a ship-to state the pharmacy does not serve is refused,
//! and an order moves `received` → `processing` → `shipped` (FedEx tracking assigned, and the
//! number trackable at the FedEx simulator, [`crate::fedex`]) → `delivered`, or ends `cancelled`
//! or `rejected`. Each status change is a signed JSON callback POSTed to
//! `{pharmacy_webhook_url}/{pharmacy}` ([`callbacks`]). Orders move when a test says so
//! (`/_sandbox/pharmacy`, [`control`]) or, with `pharmacy_auto_advance_secs`, on their own.

use std::{
    collections::HashMap,
    fmt,
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use crate::SandboxConfig;

mod callbacks;
mod control;
mod fields;
pub mod lifefile;
pub mod npi;
mod orders;
pub mod pioneerrx;

pub use self::callbacks::SIGNATURE_HEADER;
pub use crate::webhook::signature_header;
pub(crate) use control::router as control_router;
pub use orders::Status;

/// One of the three pharmacies, named by the slug of its path prefix and callback path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pharmacy {
    PioneerRx,
    Boothwyn,
    Strive,
}

impl Pharmacy {
    pub const ALL: [Pharmacy; 3] = [Pharmacy::PioneerRx, Pharmacy::Boothwyn, Pharmacy::Strive];

    pub fn slug(self) -> &'static str {
        match self {
            Pharmacy::PioneerRx => "pioneerrx",
            Pharmacy::Boothwyn => "boothwyn",
            Pharmacy::Strive => "strive",
        }
    }

    pub fn from_slug(slug: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.slug() == slug)
    }

    /// The ship-to states this pharmacy serves, as configured.
    fn states(self, config: &SandboxConfig) -> &[String] {
        match self {
            Pharmacy::PioneerRx => &config.pioneerrx_states,
            Pharmacy::Boothwyn => &config.boothwyn.states,
            Pharmacy::Strive => &config.strive.states,
        }
    }

    pub(crate) fn serves(self, config: &SandboxConfig, state: &str) -> bool {
        self.states(config).iter().any(|s| s.eq_ignore_ascii_case(state))
    }
}

/// Why a well-formed order was refused (422); the same reasons at every pharmacy, each API words
/// them its own way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The prescriber NPI is not 10 digits or fails its check digit.
    InvalidNpi(String),
    /// The pharmacy does not ship to this state.
    StateNotServed(String),
    /// A test asked for the next order to be refused (`reject-next`), with this reason.
    Rejected(String),
}

impl Refusal {
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Refusal::InvalidNpi(_) => "invalid_npi",
            Refusal::StateNotServed(_) => "state_not_served",
            Refusal::Rejected(_) => "rejected",
        }
    }

    pub(crate) fn message(&self, pharmacy: Pharmacy) -> String {
        match self {
            Refusal::InvalidNpi(npi) => format!("prescriber NPI {npi} is not a valid NPI"),
            Refusal::StateNotServed(state) => format!("{} does not ship to {state}", pharmacy.slug()),
            Refusal::Rejected(reason) => reason.clone(),
        }
    }
}

/// Where callbacks go; set at start from the config, changed at run time by
/// `PUT /_sandbox/pharmacy/webhook`.
#[derive(Clone, Debug)]
pub(crate) struct Webhook {
    /// The base URL; each pharmacy appends `/{slug}`.
    pub(crate) url: Option<String>,
    pub(crate) paused: bool,
    pub(crate) secrets: crate::state::PharmacyWebhookSecrets,
}

impl Webhook {
    pub(crate) fn active(&self) -> bool {
        self.url.is_some() && !self.paused
    }

    pub(crate) fn url_for(&self, pharmacy: Pharmacy) -> Option<String> {
        let base = self.url.as_deref()?;
        Some(format!("{}/{}", base.trim_end_matches('/'), pharmacy.slug()))
    }
}

/// What the pharmacies hold.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Every order of every pharmacy, oldest first.
    pub(crate) orders: Vec<orders::Order>,
    /// Every callback event, in emission order.
    pub(crate) events: Vec<callbacks::Event>,
    /// A refusal waiting for a pharmacy's next well-formed order.
    pub(crate) reject_next: HashMap<Pharmacy, String>,
}

/// The pharmacies' part of the sandbox handle.
pub(crate) struct Handle {
    state: Mutex<State>,
    webhook: Mutex<Webhook>,
    pub(crate) queue: crate::webhook::Queue<callbacks::Pharmacies>,
    pub(crate) http: reqwest::Client,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("pharmacy::Handle")
            .field("webhook_url", &self.webhook().url)
            .finish_non_exhaustive()
    }
}

impl Handle {
    pub(crate) fn new(config: &SandboxConfig) -> Self {
        Self {
            state: Mutex::default(),
            webhook: Mutex::new(Webhook {
                url: config.pharmacy_webhook_url.clone(),
                paused: false,
                secrets: config.pharmacy_webhook_secrets.clone(),
            }),
            queue: crate::webhook::Queue::default(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn webhook(&self) -> Webhook {
        self.webhook.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `url`: `Some(None)` clears it; `None` leaves each field as it is.
    pub(crate) fn set_webhook(&self, url: Option<Option<String>>, paused: Option<bool>) -> Webhook {
        let mut w = self.webhook.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(url) = url {
            w.url = url;
        }
        if let Some(paused) = paused {
            w.paused = paused;
        }
        w.clone()
    }

    /// Forgets every order, event and pending reject-next; the callback target stays. Callbacks
    /// and auto-advances still on their way find nothing and stop.
    pub(crate) fn reset(&self) {
        *self.state() = State::default();
    }
}
