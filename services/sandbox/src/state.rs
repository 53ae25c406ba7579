//! The sandbox's memory: the ledger of every call and effect, and the faults waiting to fire.

use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::{canvas, hubspot, inbox, sendgrid, stripe, twilio};

/// One call to a vendor route, or one effect a vendor recorded. An effect has method `EFFECT`, its
/// kind as `path` (e.g. `payment_intent.succeeded`), no status, and names the object it touched.
#[derive(Clone, Debug, Serialize)]
pub struct LedgerEntry {
    pub seq: u64,
    pub at: String,
    pub vendor: String,
    pub method: String,
    pub path: String,
    /// `None` when the connection was dropped before any response, and for effects.
    pub status: Option<u16>,
    /// The fault that shaped this call, if any.
    pub fault: Option<String>,
    /// For effects: the id of the object the effect is about (`pi_...`, `evt_...`).
    pub object: Option<String>,
    /// For effects: a short human-readable detail (an amount, a delivery's status).
    pub detail: Option<String>,
}

/// The method of ledger entries that record an effect rather than a call.
pub const EFFECT: &str = "EFFECT";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum FaultAction {
    /// Answer with this status (and body) instead of calling the vendor.
    Status {
        status: u16,
        body: Option<serde_json::Value>,
    },
    /// Close the connection without calling the vendor.
    DropBefore,
    /// Call the vendor, so its effect happens, then close the connection without answering.
    DropAfter,
}

/// A fault for the next `times` calls whose path starts with `path` (and whose method matches, if set).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Fault {
    #[serde(default)]
    pub method: Option<String>,
    pub path: String,
    #[serde(default = "one")]
    pub times: u32,
    #[serde(default)]
    pub latency_ms: Option<u64>,
    #[serde(default)]
    pub action: Option<FaultAction>,
}

fn one() -> u32 {
    1
}

impl Fault {
    fn matches(&self, method: &str, path: &str) -> bool {
        self.times > 0
            && path.starts_with(&self.path)
            && self.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method))
    }

    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(ms) = self.latency_ms {
            parts.push(format!("latency {ms} ms"));
        }
        match &self.action {
            Some(FaultAction::Status { status, .. }) => parts.push(format!("status {status}")),
            Some(FaultAction::DropBefore) => parts.push("drop_before".into()),
            Some(FaultAction::DropAfter) => parts.push("drop_after".into()),
            None => {}
        }
        parts.join(", ")
    }
}

/// Credentials and settings the simulators check callers against. Construct it with
/// `..Default::default()` for the fields you do not set: vendors add fields as they are simulated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxConfig {
    /// The OAuth client Canvas's token endpoint accepts.
    pub canvas_client_id: String,
    pub canvas_client_secret: String,
    /// The one secret key (`sk_test_...`) Stripe's API accepts, as Bearer or Basic auth.
    pub stripe_secret_key: String,
    /// Where signed Stripe events are POSTed as they happen; `None` keeps them undelivered (they can
    /// still be read at `/stripe/v1/events` or delivered by `/_sandbox/stripe` controls).
    pub stripe_webhook_url: Option<String>,
    /// The endpoint secret (`whsec_...`) events are signed with.
    pub stripe_webhook_secret: String,
    /// The one API key SendGrid accepts, as `Authorization: Bearer <key>`.
    pub sendgrid_api_key: String,
    /// The Twilio account (`AC` + 32 hex) whose Messages resource is served; requests authenticate
    /// with HTTP Basic `AccountSid:AuthToken`, and status callbacks are signed with the token.
    pub twilio_account_sid: String,
    pub twilio_auth_token: String,
    /// `From` numbers the account "owns": a send from any other number fails with 21606, as
    /// Twilio's test credentials do (the magic `+15005550006` is always accepted).
    pub twilio_from_numbers: Vec<String>,
    /// The private app token HubSpot accepts, as `Authorization: Bearer <token>`.
    pub hubspot_token: String,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            canvas_client_id: "era-sandbox-canvas-client".into(),
            canvas_client_secret: "era-sandbox-canvas-secret".into(),
            stripe_secret_key: DEFAULT_STRIPE_SECRET_KEY.into(),
            stripe_webhook_url: None,
            stripe_webhook_secret: DEFAULT_STRIPE_WEBHOOK_SECRET.into(),
            sendgrid_api_key: DEFAULT_SENDGRID_API_KEY.into(),
            twilio_account_sid: DEFAULT_TWILIO_ACCOUNT_SID.into(),
            twilio_auth_token: DEFAULT_TWILIO_AUTH_TOKEN.into(),
            twilio_from_numbers: DEFAULT_TWILIO_FROM_NUMBERS.iter().map(|n| (*n).to_owned()).collect(),
            hubspot_token: DEFAULT_HUBSPOT_TOKEN.into(),
        }
    }
}

/// The Stripe secret key a default sandbox accepts.
pub const DEFAULT_STRIPE_SECRET_KEY: &str = "sk_test_era_sandbox";
/// The secret a default sandbox signs Stripe events with.
pub const DEFAULT_STRIPE_WEBHOOK_SECRET: &str = "whsec_era_sandbox_local_webhook_secret";
/// The SendGrid API key a default sandbox accepts.
pub const DEFAULT_SENDGRID_API_KEY: &str = "SG.era-sandbox-sendgrid-key";
/// The Twilio account a default sandbox serves (34 characters, like a real Account SID).
pub const DEFAULT_TWILIO_ACCOUNT_SID: &str = "AC0e7a5a4db0c0e7a5a4db0c0e7a5a4db0";
/// The Twilio auth token a default sandbox accepts and signs status callbacks with.
pub const DEFAULT_TWILIO_AUTH_TOKEN: &str = "era-sandbox-twilio-auth-token";
/// The `From` numbers a default Twilio account owns: Twilio's magic test number, and a 555 number
/// reserved for fiction.
pub const DEFAULT_TWILIO_FROM_NUMBERS: &[&str] = &["+15005550006", "+15555550100"];
/// The HubSpot private app token a default sandbox accepts.
pub const DEFAULT_HUBSPOT_TOKEN: &str = "pat-na1-era-sandbox";

#[derive(Debug, Default)]
struct Inner {
    next_seq: u64,
    ledger: Vec<LedgerEntry>,
    faults: Vec<Fault>,
}

/// Cloneable handle on the sandbox's state.
#[derive(Clone, Debug)]
pub struct Sandbox {
    inner: Arc<Mutex<Inner>>,
    config: Arc<SandboxConfig>,
    canvas: Arc<Mutex<canvas::State>>,
    stripe: Arc<stripe::Handle>,
    sendgrid: Arc<sendgrid::Handle>,
    twilio: Arc<twilio::Handle>,
    hubspot: Arc<Mutex<hubspot::State>>,
    inbox: Arc<inbox::Inbox>,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::with_config(SandboxConfig::default())
    }
}

impl Sandbox {
    /// A sandbox with the default credentials.
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_config(config: SandboxConfig) -> Self {
        let stripe = Arc::new(stripe::Handle::new(&config));
        Self {
            inner: Arc::default(),
            config: Arc::new(config),
            canvas: Arc::new(Mutex::new(canvas::State::seeded())),
            stripe,
            sendgrid: Arc::default(),
            twilio: Arc::default(),
            hubspot: Arc::new(Mutex::new(hubspot::State::seeded(Utc::now()))),
            inbox: Arc::default(),
        }
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere must not take the sandbox down with it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn canvas(&self) -> MutexGuard<'_, canvas::State> {
        self.canvas.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn stripe(&self) -> &stripe::Handle {
        &self.stripe
    }

    pub(crate) fn sendgrid(&self) -> &sendgrid::Handle {
        &self.sendgrid
    }

    pub(crate) fn twilio(&self) -> &twilio::Handle {
        &self.twilio
    }

    pub(crate) fn hubspot(&self) -> MutexGuard<'_, hubspot::State> {
        self.hubspot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every email, SMS and conversation reply the simulators accepted, for `/_sandbox/inbox`.
    pub(crate) fn inbox(&self) -> &inbox::Inbox {
        &self.inbox
    }

    /// Forgets every call, effect and fault, and puts every vendor back to its seed state (for
    /// Canvas that also revokes every issued token; for Stripe it forgets every object, event and
    /// idempotency key but keeps the webhook target set at run time; SendGrid and Twilio forget
    /// what they sent and SendGrid's simulated rate limit; HubSpot gets its demo inboxes back; the
    /// inbox page is emptied).
    pub fn reset(&self) {
        *self.lock() = Inner::default();
        *self.canvas() = canvas::State::seeded();
        self.stripe.reset();
        self.sendgrid.reset();
        self.twilio.reset();
        *self.hubspot() = hubspot::State::seeded(Utc::now());
        self.inbox.clear();
    }

    pub fn add_fault(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    pub fn faults(&self) -> Vec<Fault> {
        self.lock().faults.clone()
    }

    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Takes one use of the first fault matching this call.
    pub fn take_fault(&self, method: &str, path: &str) -> Option<Fault> {
        let mut inner = self.lock();
        let i = inner.faults.iter().position(|f| f.matches(method, path))?;
        let fault = inner.faults[i].clone();
        inner.faults[i].times -= 1;
        if inner.faults[i].times == 0 {
            inner.faults.remove(i);
        }
        Some(fault)
    }

    pub fn record(&self, method: &str, path: &str, status: Option<u16>, fault: Option<&str>) {
        let vendor = crate::VENDORS
            .iter()
            .find(|(_, prefix)| path == *prefix || path.starts_with(&format!("{prefix}/")))
            .map_or("unknown", |(v, _)| v);
        self.push(LedgerEntry {
            seq: 0,
            at: String::new(),
            vendor: vendor.to_owned(),
            method: method.to_owned(),
            path: path.to_owned(),
            status,
            fault: fault.filter(|f| !f.is_empty()).map(str::to_owned),
            object: None,
            detail: None,
        });
    }

    /// Records an effect a vendor committed (not a call): method `EFFECT`, path `kind`, so
    /// `/_sandbox/ledger/counts` shows it as `EFFECT <kind>`.
    pub fn record_effect(&self, vendor: &str, kind: &str, object: Option<&str>, detail: Option<&str>) {
        self.push(LedgerEntry {
            seq: 0,
            at: String::new(),
            vendor: vendor.to_owned(),
            method: EFFECT.to_owned(),
            path: kind.to_owned(),
            status: None,
            fault: None,
            object: object.map(str::to_owned),
            detail: detail.map(str::to_owned),
        });
    }

    fn push(&self, mut entry: LedgerEntry) {
        let mut inner = self.lock();
        inner.next_seq += 1;
        entry.seq = inner.next_seq;
        entry.at = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        inner.ledger.push(entry);
    }

    /// Ledger entries after `since`, optionally for one vendor.
    pub fn ledger(&self, vendor: Option<&str>, since: u64) -> Vec<LedgerEntry> {
        self.lock()
            .ledger
            .iter()
            .filter(|e| e.seq > since && vendor.is_none_or(|v| e.vendor == v))
            .cloned()
            .collect()
    }
}
