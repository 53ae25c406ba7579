//! The sandbox's memory: the ledger of every call and effect, and the faults waiting to fire.

use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::{canvas, fedex, hubspot, inbox, pharmacy, sendgrid, stripe, twilio, zoom};

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
    /// PioneerRx (GMP): the `prx-api-key` its order API accepts, and the shared secret the
    /// `prx-signature` hash is made with (see [`crate::pharmacy::pioneerrx`]).
    pub pioneerrx_api_key: String,
    pub pioneerrx_shared_secret: String,
    /// Ship-to states GMP serves (two-letter codes); other states are refused `state_not_served`.
    pub pioneerrx_states: Vec<String>,
    /// Boothwyn's and Strive's LifeFile instances: each its own credentials, ids and states.
    pub boothwyn: LifeFileAccount,
    pub strive: LifeFileAccount,
    /// Base URL of the receiver of signed pharmacy status callbacks; each pharmacy POSTs to
    /// `{url}/{pharmacy}` (`pioneerrx`, `boothwyn`, `strive`). `None` keeps callbacks undelivered
    /// (readable and deliverable from `/_sandbox/pharmacy`).
    pub pharmacy_webhook_url: Option<String>,
    /// The secret each pharmacy signs its callbacks with (`X-Pharmacy-Signature`): one each, as
    /// the receiver holds one per pharmacy, so a leaked one forges no other pharmacy's callbacks.
    pub pharmacy_webhook_secrets: PharmacyWebhookSecrets,
    /// When set, each new order moves on its own, this many seconds per step, through
    /// `processing`, `shipped` and `delivered` (for the local demo); `None` waits for
    /// `/_sandbox/pharmacy/.../advance`.
    pub pharmacy_auto_advance_secs: Option<u64>,
    /// Base URL of the Integration Service's Canvas plugin routes (e.g.
    /// `http://127.0.0.1:8080/api/webhooks/canvas`): the clinic's plugins POST PRESCRIPTION_CREATED
    /// and PRESCRIPTION_UPDATED to `{url}/prescription` and PATIENT_CREATED to
    /// `{url}/patient-created`. `None` keeps the events undelivered (readable and deliverable from
    /// `/_sandbox/canvas`).
    pub canvas_plugin_webhook_url: Option<String>,
    /// The secret the plugin signs its events with (`X-Signature`); the edge verifies them with
    /// `ADMIN_JWT_SECRET` (the plugin calls it `CANVAS_AUTH_SECRET`).
    pub canvas_plugin_secret: String,
    /// Zoom's Server-to-Server OAuth app: the account it belongs to (`account_id` of the token
    /// request) and its client, presented as HTTP Basic `client_id:client_secret`.
    pub zoom_account_id: String,
    pub zoom_client_id: String,
    pub zoom_client_secret: String,
    /// The Zoom account's users, who can host meetings (`/users/{id or email}/meetings`); more can
    /// be added at run time with `POST /_sandbox/zoom/users`.
    pub zoom_users: Vec<ZoomUser>,
    /// The FedEx project's API key and secret key, sent as `client_id` and `client_secret` in the
    /// form body of `/fedex/oauth/token`.
    pub fedex_client_id: String,
    pub fedex_client_secret: String,
    /// The token `/_sandbox` (control, ledger, inbox) requires as `Authorization: Bearer <token>`
    /// (or, for the inbox page, a cookie it sets). `None` leaves the control plane open: only for a
    /// sandbox built in-process by a test; the binary and era-dev always set one.
    pub control_token: Option<String>,
    /// Host names `/_sandbox` answers besides the loopback ones (a foreign `Host` is refused, which
    /// stops DNS rebinding), e.g. the service name a compose network gives the sandbox.
    pub allowed_hosts: Vec<String>,
}

/// A user of the Zoom account: Zoom's user id (22 characters), the email that also names the user
/// in paths, and the time zone meetings default to when a create gives none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoomUser {
    pub id: String,
    pub email: String,
    pub timezone: String,
}

/// One LifeFile instance's API credentials: HTTP Basic plus the three id headers every request
/// carries (`X-Vendor-ID`, `X-Location-ID`, `X-API-Network-ID`), and the ship-to states served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LifeFileAccount {
    pub username: String,
    pub password: String,
    pub vendor_id: String,
    pub location_id: String,
    pub network_id: String,
    pub states: Vec<String>,
}

impl LifeFileAccount {
    /// Boothwyn's default sandbox credentials.
    pub fn boothwyn() -> Self {
        Self {
            username: DEFAULT_BOOTHWYN_USERNAME.into(),
            password: DEFAULT_BOOTHWYN_PASSWORD.into(),
            vendor_id: DEFAULT_BOOTHWYN_VENDOR_ID.into(),
            location_id: DEFAULT_BOOTHWYN_LOCATION_ID.into(),
            network_id: DEFAULT_BOOTHWYN_NETWORK_ID.into(),
            states: default_lifefile_states(),
        }
    }

    /// Strive's default sandbox credentials.
    pub fn strive() -> Self {
        Self {
            username: DEFAULT_STRIVE_USERNAME.into(),
            password: DEFAULT_STRIVE_PASSWORD.into(),
            vendor_id: DEFAULT_STRIVE_VENDOR_ID.into(),
            location_id: DEFAULT_STRIVE_LOCATION_ID.into(),
            network_id: DEFAULT_STRIVE_NETWORK_ID.into(),
            states: default_lifefile_states(),
        }
    }
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
            pioneerrx_api_key: DEFAULT_PIONEERRX_API_KEY.into(),
            pioneerrx_shared_secret: DEFAULT_PIONEERRX_SHARED_SECRET.into(),
            pioneerrx_states: DEFAULT_PIONEERRX_STATES.iter().map(|s| (*s).to_owned()).collect(),
            boothwyn: LifeFileAccount::boothwyn(),
            strive: LifeFileAccount::strive(),
            pharmacy_webhook_url: None,
            pharmacy_webhook_secrets: PharmacyWebhookSecrets::default(),
            pharmacy_auto_advance_secs: None,
            canvas_plugin_webhook_url: None,
            canvas_plugin_secret: DEFAULT_CANVAS_AUTH_SECRET.into(),
            zoom_account_id: DEFAULT_ZOOM_ACCOUNT_ID.into(),
            zoom_client_id: DEFAULT_ZOOM_CLIENT_ID.into(),
            zoom_client_secret: DEFAULT_ZOOM_CLIENT_SECRET.into(),
            zoom_users: default_zoom_users(),
            fedex_client_id: DEFAULT_FEDEX_CLIENT_ID.into(),
            fedex_client_secret: DEFAULT_FEDEX_CLIENT_SECRET.into(),
            control_token: None,
            allowed_hosts: Vec::new(),
        }
    }
}

/// The secret a default sandbox's Canvas plugin signs its events with (`CANVAS_AUTH_SECRET`).
pub const DEFAULT_CANVAS_AUTH_SECRET: &str = "era-sandbox-canvas-plugin-secret-000000001";
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
/// The `prx-api-key` a default PioneerRx accepts.
pub const DEFAULT_PIONEERRX_API_KEY: &str = "prx-era-sandbox-api-key";
/// The shared secret a default PioneerRx checks `prx-signature` with.
pub const DEFAULT_PIONEERRX_SHARED_SECRET: &str = "prx-era-sandbox-shared-secret";
/// The ship-to states a default PioneerRx (GMP) serves: the placeholder 18 GMP states of the
/// routing matrix's default (migrations/pharmacy-routing/0002_default_matrix.sql).
pub const DEFAULT_PIONEERRX_STATES: &[&str] = &[
    "AL", "AZ", "FL", "GA", "IL", "IN", "KY", "LA", "MI", "MO", "MS", "NJ", "NY", "OH", "PA", "SC", "TN", "VA",
];
/// The 50 states and DC, the jurisdictions the routing matrix knows.
pub const US_JURISDICTIONS: &[&str] = &[
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS", "KY", "LA",
    "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR",
    "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY",
];
/// States where the clinic does not operate; no pharmacy ships there by default.
pub const EXCLUDED_STATES: &[&str] = &["MN", "CA", "TX", "AR", "NC", "OK"];
/// Boothwyn's default LifeFile credentials and ids.
pub const DEFAULT_BOOTHWYN_USERNAME: &str = "era-boothwyn";
pub const DEFAULT_BOOTHWYN_PASSWORD: &str = "era-sandbox-boothwyn-password";
pub const DEFAULT_BOOTHWYN_VENDOR_ID: &str = "4021";
pub const DEFAULT_BOOTHWYN_LOCATION_ID: &str = "402101";
pub const DEFAULT_BOOTHWYN_NETWORK_ID: &str = "40";
/// Strive's default LifeFile credentials and ids.
pub const DEFAULT_STRIVE_USERNAME: &str = "era-strive";
pub const DEFAULT_STRIVE_PASSWORD: &str = "era-sandbox-strive-password";
pub const DEFAULT_STRIVE_VENDOR_ID: &str = "5133";
pub const DEFAULT_STRIVE_LOCATION_ID: &str = "513301";
pub const DEFAULT_STRIVE_NETWORK_ID: &str = "51";
/// The secret a default sandbox signs pharmacy callbacks with (all three pharmacies).
pub const DEFAULT_PIONEERRX_WEBHOOK_SECRET: &str = "era-sandbox-pioneerrx-webhook-secret-0001";
pub const DEFAULT_BOOTHWYN_WEBHOOK_SECRET: &str = "era-sandbox-boothwyn-webhook-secret-00001";
pub const DEFAULT_STRIVE_WEBHOOK_SECRET: &str = "era-sandbox-strive-webhook-secret-0000001";

/// One callback signing secret per pharmacy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PharmacyWebhookSecrets {
    pub pioneerrx: String,
    pub boothwyn: String,
    pub strive: String,
}

impl Default for PharmacyWebhookSecrets {
    fn default() -> Self {
        Self {
            pioneerrx: DEFAULT_PIONEERRX_WEBHOOK_SECRET.into(),
            boothwyn: DEFAULT_BOOTHWYN_WEBHOOK_SECRET.into(),
            strive: DEFAULT_STRIVE_WEBHOOK_SECRET.into(),
        }
    }
}

impl PharmacyWebhookSecrets {
    /// The secret of the pharmacy with this slug (`pioneerrx`, `boothwyn`, `strive`).
    pub fn of(&self, slug: &str) -> Option<&str> {
        match slug {
            "pioneerrx" => Some(&self.pioneerrx),
            "boothwyn" => Some(&self.boothwyn),
            "strive" => Some(&self.strive),
            _ => None,
        }
    }
}

/// The Zoom account a default sandbox's Server-to-Server OAuth app belongs to.
pub const DEFAULT_ZOOM_ACCOUNT_ID: &str = "era-sandbox-zoom-account";
/// The Zoom OAuth client a default sandbox accepts.
pub const DEFAULT_ZOOM_CLIENT_ID: &str = "era-sandbox-zoom-client";
pub const DEFAULT_ZOOM_CLIENT_SECRET: &str = "era-sandbox-zoom-client-secret";
/// The FedEx API key and secret key a default sandbox accepts.
pub const DEFAULT_FEDEX_CLIENT_ID: &str = "era-sandbox-fedex-client";
pub const DEFAULT_FEDEX_CLIENT_SECRET: &str = "era-sandbox-fedex-client-secret";
/// The demo clinic's two clinicians as Zoom users (the Canvas seed's practitioners).
pub const ZOOM_ALI_NOLAN_USER_ID: &str = "aLiN0lAnQ7eRa1dEmOzQxw";
pub const ZOOM_ALI_NOLAN_EMAIL: &str = "ali.nolan@era-demo.test";
pub const ZOOM_NEELIMA_SINGH_USER_ID: &str = "nEeL1maS1nGhQ2eRaDm0zw";
pub const ZOOM_NEELIMA_SINGH_EMAIL: &str = "neelima.singh@era-demo.test";
/// The time zone in the default Zoom users' profiles.
pub const DEFAULT_ZOOM_TIMEZONE: &str = "America/New_York";

/// The Zoom users a default sandbox has: Ali Nolan and Neelima Singh.
pub fn default_zoom_users() -> Vec<ZoomUser> {
    [
        (ZOOM_ALI_NOLAN_USER_ID, ZOOM_ALI_NOLAN_EMAIL),
        (ZOOM_NEELIMA_SINGH_USER_ID, ZOOM_NEELIMA_SINGH_EMAIL),
    ]
    .into_iter()
    .map(|(id, email)| ZoomUser {
        id: id.into(),
        email: email.into(),
        timezone: DEFAULT_ZOOM_TIMEZONE.into(),
    })
    .collect()
}

/// The states a default Boothwyn or Strive serves: every jurisdiction but [`EXCLUDED_STATES`].
pub fn default_lifefile_states() -> Vec<String> {
    US_JURISDICTIONS
        .iter()
        .filter(|s| !EXCLUDED_STATES.contains(s))
        .map(|s| (*s).to_owned())
        .collect()
}

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
    canvas_plugin: Arc<canvas::plugin::Handle>,
    stripe: Arc<stripe::Handle>,
    sendgrid: Arc<sendgrid::Handle>,
    twilio: Arc<twilio::Handle>,
    hubspot: Arc<Mutex<hubspot::State>>,
    inbox: Arc<inbox::Inbox>,
    pharmacy: Arc<pharmacy::Handle>,
    zoom: Arc<zoom::Handle>,
    fedex: Arc<fedex::Handle>,
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
        let pharmacy = Arc::new(pharmacy::Handle::new(&config));
        let zoom = Arc::new(zoom::Handle::new(&config));
        let canvas_plugin = Arc::new(canvas::plugin::Handle::new(&config));
        Self {
            inner: Arc::default(),
            config: Arc::new(config),
            canvas: Arc::new(Mutex::new(canvas::State::seeded())),
            canvas_plugin,
            stripe,
            sendgrid: Arc::default(),
            twilio: Arc::default(),
            hubspot: Arc::new(Mutex::new(hubspot::State::seeded(Utc::now()))),
            inbox: Arc::default(),
            pharmacy,
            zoom,
            fedex: Arc::default(),
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

    /// The clinic's Canvas plugin: its events and where they go.
    pub(crate) fn canvas_plugin(&self) -> &canvas::plugin::Handle {
        &self.canvas_plugin
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

    pub(crate) fn pharmacy(&self) -> &pharmacy::Handle {
        &self.pharmacy
    }

    pub(crate) fn zoom(&self) -> &zoom::Handle {
        &self.zoom
    }

    pub(crate) fn fedex(&self) -> &fedex::Handle {
        &self.fedex
    }

    /// Every email, SMS and conversation reply the simulators accepted, for `/_sandbox/inbox`.
    pub(crate) fn inbox(&self) -> &inbox::Inbox {
        &self.inbox
    }

    /// Forgets every call, effect and fault, and puts every vendor back to its seed state (for
    /// Canvas that also revokes every issued token and forgets every plugin event, keeping the
    /// plugin's webhook target set at run time; for Stripe it forgets every object, event and
    /// idempotency key but keeps the webhook target set at run time; SendGrid and Twilio forget
    /// what they sent and SendGrid's simulated rate limit; HubSpot gets its demo inboxes back; the
    /// pharmacies forget every order, callback event and pending reject-next but keep the callback
    /// target set at run time; Zoom forgets every meeting, token, rate-limit count and user added
    /// at run time, and its limits go back to the defaults; FedEx forgets every parcel, token and
    /// throttle count, and its throttle goes back to FedEx's figures; the inbox page is emptied).
    pub fn reset(&self) {
        *self.lock() = Inner::default();
        *self.canvas() = canvas::State::seeded();
        self.canvas_plugin.reset();
        self.stripe.reset();
        self.sendgrid.reset();
        self.twilio.reset();
        *self.hubspot() = hubspot::State::seeded(Utc::now());
        self.inbox.clear();
        self.pharmacy.reset();
        self.zoom.reset(&self.config);
        self.fedex.reset();
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
