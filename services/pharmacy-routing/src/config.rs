//! The routing service's settings: the shared blocks, the peers the approval pipeline calls, the key
//! that seals approval notes, the pharmacies' accounts and the pipeline's worker. Checked at start.

use std::{fmt, time::Duration};

use era_kit::{
    config::{ConfigError, ServiceConfig},
    sealing::{parse_keys, Keyring},
};
use secrecy::{ExposeSecret, SecretString};

use crate::pharmacies::{LifeFile, LifeFileAccount, PharmacyAdapter, PioneerRx, PioneerRxAccount};

#[derive(Clone, Debug, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub service: ServiceConfig,
    #[command(flatten)]
    pub peers: Peers,
    #[command(flatten)]
    pub keys: PipelineKeys,
    #[command(flatten)]
    pub pharmacies: PharmacyAccounts,
    #[command(flatten)]
    pub pipeline: PipelineConfig,
    #[command(flatten)]
    pub carriers: CarrierAccounts,
}

impl AsRef<ServiceConfig> for Config {
    fn as_ref(&self) -> &ServiceConfig {
        &self.service
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.service.validate()?;
        self.service
            .mesh
            .peer_url("CANVAS_GRPC_URL", &self.peers.canvas_grpc_url)?;
        self.service
            .mesh
            .peer_url("PAYMENTS_GRPC_URL", &self.peers.payments_grpc_url)?;
        self.service
            .mesh
            .peer_url("NOTIFICATIONS_GRPC_URL", &self.peers.notifications_grpc_url)?;
        self.keys.keyring()?;
        self.pharmacies.adapters()?;
        for (var, base) in [
            ("PIONEERRX_API_BASE", &self.pharmacies.pioneerrx_api_base),
            ("BOOTHWYN_API_BASE", &self.pharmacies.boothwyn.api_base),
            ("STRIVE_API_BASE", &self.pharmacies.strive.api_base),
        ] {
            if !base.is_empty() {
                self.service.mesh.external_url(var, base)?;
            }
        }
        self.pipeline.validate()?;
        self.carriers.validate(&self.service)
    }
}

/// FedEx's Track API, for the shipments the pharmacies send by FedEx. Without a base URL a
/// shipment shows what the pharmacy's callbacks said.
#[derive(Clone, clap::Args)]
pub struct CarrierAccounts {
    /// FedEx's API host (`https://apis.fedex.com`; the sandbox's `/fedex` locally).
    #[arg(long, env = "FEDEX_BASE_URL", default_value = "")]
    pub fedex_base_url: String,
    #[arg(long, env = "FEDEX_CLIENT_ID", default_value = "")]
    pub fedex_client_id: String,
    #[arg(long, env = "FEDEX_CLIENT_SECRET", default_value = "", hide_env_values = true)]
    pub fedex_client_secret: SecretString,
    /// Seconds one FedEx request may take.
    #[arg(long, env = "FEDEX_TIMEOUT_SECS", default_value_t = 10)]
    pub fedex_timeout_secs: u64,
    /// How long a tracking answer is shown before FedEx is asked again (at most 30 minutes).
    #[arg(long, env = "TRACKING_CACHE_SECS", default_value_t = 1800)]
    pub tracking_cache_secs: u64,
}

impl fmt::Debug for CarrierAccounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CarrierAccounts")
            .field("fedex_base_url", &self.fedex_base_url)
            .field("tracking_cache_secs", &self.tracking_cache_secs)
            .finish_non_exhaustive()
    }
}

impl CarrierAccounts {
    fn validate(&self, service: &ServiceConfig) -> Result<(), ConfigError> {
        if !(1..=1800).contains(&self.tracking_cache_secs) {
            return Err(ConfigError::new(
                "TRACKING_CACHE_SECS",
                "must be between 1 and 1800 (tracking shown to patients is at most 30 minutes old)",
            ));
        }
        if self.fedex_base_url.is_empty() {
            return Ok(());
        }
        service.mesh.external_url("FEDEX_BASE_URL", &self.fedex_base_url)?;
        if self.fedex_client_id.is_empty() {
            return Err(ConfigError::new("FEDEX_CLIENT_ID", "is required with FEDEX_BASE_URL"));
        }
        if self.fedex_client_secret.expose_secret().is_empty() {
            return Err(ConfigError::new(
                "FEDEX_CLIENT_SECRET",
                "is required with FEDEX_BASE_URL",
            ));
        }
        if !(1..=60).contains(&self.fedex_timeout_secs) {
            return Err(ConfigError::new("FEDEX_TIMEOUT_SECS", "must be between 1 and 60"));
        }
        Ok(())
    }

    /// The FedEx client, when FedEx is configured.
    pub fn fedex(&self) -> Option<crate::carriers::fedex::Fedex> {
        (!self.fedex_base_url.is_empty()).then(|| {
            crate::carriers::fedex::Fedex::new(
                &self.fedex_base_url,
                &self.fedex_client_id,
                self.fedex_client_secret.clone(),
                Duration::from_secs(self.fedex_timeout_secs),
            )
        })
    }
}

impl Default for CarrierAccounts {
    fn default() -> Self {
        Self {
            fedex_base_url: String::new(),
            fedex_client_id: String::new(),
            fedex_client_secret: SecretString::from(""),
            fedex_timeout_secs: 10,
            tracking_cache_secs: 1800,
        }
    }
}

/// The services the pipeline calls.
#[derive(Clone, Debug, clap::Args)]
pub struct Peers {
    #[arg(long, env = "CANVAS_GRPC_URL", default_value = "http://127.0.0.1:50051")]
    pub canvas_grpc_url: String,
    #[arg(long, env = "PAYMENTS_GRPC_URL", default_value = "http://127.0.0.1:50052")]
    pub payments_grpc_url: String,
    #[arg(long, env = "NOTIFICATIONS_GRPC_URL", default_value = "http://127.0.0.1:50055")]
    pub notifications_grpc_url: String,
}

/// The keys that seal a run's note (an approval's note, a denial's reason) until Canvas has it.
#[derive(Clone, clap::Args)]
pub struct PipelineKeys {
    /// Versioned AES-256 keys, `version:base64key` separated by commas.
    #[arg(long, env = "PIPELINE_KEYS", hide_env_values = true)]
    pub keys: SecretString,
    /// The version new notes are sealed under.
    #[arg(long, env = "PIPELINE_ACTIVE_KEY", default_value_t = 1)]
    pub active_key: u32,
}

impl fmt::Debug for PipelineKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineKeys")
            .field("active_key", &self.active_key)
            .finish_non_exhaustive()
    }
}

impl PipelineKeys {
    pub fn keyring(&self) -> Result<Keyring, ConfigError> {
        let keys = parse_keys("PIPELINE_KEYS", &self.keys, "PIPELINE_ACTIVE_KEY", self.active_key)?;
        // Notes are never searched: the blind-index key only has to be a key nobody else knows.
        let index_key = keys[&self.active_key];
        Ok(Keyring::new(keys, self.active_key, &index_key))
    }
}

/// The pharmacies' order APIs. A pharmacy whose base URL is empty is not configured: a run routed
/// to it fails with `pharmacy_not_configured` before anything is charged or ordered.
#[derive(Clone, clap::Args)]
pub struct PharmacyAccounts {
    /// GMP's PioneerRx API, without `/api/v1` (the sandbox's `/pioneerrx` locally).
    #[arg(long, env = "PIONEERRX_API_BASE", default_value = "")]
    pub pioneerrx_api_base: String,
    #[arg(long, env = "PIONEERRX_API_KEY", default_value = "", hide_env_values = true)]
    pub pioneerrx_api_key: SecretString,
    #[arg(long, env = "PIONEERRX_SHARED_SECRET", default_value = "", hide_env_values = true)]
    pub pioneerrx_shared_secret: SecretString,
    #[command(flatten)]
    pub boothwyn: BoothwynAccount,
    #[command(flatten)]
    pub strive: StriveAccount,
    /// Seconds one pharmacy request may take.
    #[arg(long, env = "PHARMACY_TIMEOUT_SECS", default_value_t = 20)]
    pub timeout_secs: u64,
}

/// Declares a LifeFile pharmacy's settings under its own variable prefix.
macro_rules! lifefile_account {
    ($name:ident, $doc:literal, $(($field:ident, $var:literal, $flag:literal)),* $(,)?) => {
        lifefile_account!(@struct $name, $doc, $(($field, $var, $flag)),*);
    };
    (@struct $name:ident, $doc:literal, (api_base, $base:literal, $base_flag:literal),
     (username, $user:literal, $user_flag:literal), (password, $password:literal, $password_flag:literal),
     (vendor_id, $vendor:literal, $vendor_flag:literal), (location_id, $location:literal, $location_flag:literal),
     (network_id, $network:literal, $network_flag:literal), (practice_id, $practice:literal, $practice_flag:literal)) => {
        #[doc = $doc]
        #[derive(Clone, clap::Args)]
        pub struct $name {
            /// The LifeFile API base including `/lfapi/v1` (the sandbox's `/<pharmacy>/lfapi/v1` locally).
            #[arg(id = $base, long = $base_flag, env = $base, default_value = "")]
            pub api_base: String,
            #[arg(id = $user, long = $user_flag, env = $user, default_value = "")]
            pub username: String,
            #[arg(id = $password, long = $password_flag, env = $password, default_value = "", hide_env_values = true)]
            pub password: SecretString,
            #[arg(id = $vendor, long = $vendor_flag, env = $vendor, default_value = "")]
            pub vendor_id: String,
            #[arg(id = $location, long = $location_flag, env = $location, default_value = "")]
            pub location_id: String,
            #[arg(id = $network, long = $network_flag, env = $network, default_value = "")]
            pub network_id: String,
            #[arg(id = $practice, long = $practice_flag, env = $practice, default_value = "")]
            pub practice_id: String,
        }

        impl $name {
            fn account(&self, timeout: Duration) -> Result<Option<LifeFileAccount>, ConfigError> {
                if self.api_base.is_empty() {
                    return Ok(None);
                }
                era_kit::config::http_url($base, &self.api_base)?;
                for (var, value) in [
                    ($user, self.username.as_str()),
                    ($password, self.password.expose_secret()),
                    ($vendor, self.vendor_id.as_str()),
                    ($location, self.location_id.as_str()),
                    ($network, self.network_id.as_str()),
                    ($practice, self.practice_id.as_str()),
                ] {
                    if value.trim().is_empty() {
                        return Err(ConfigError::new(
                            var,
                            concat!("is required when ", $base, " is set"),
                        ));
                    }
                }
                Ok(Some(LifeFileAccount {
                    base_url: self.api_base.clone(),
                    username: self.username.clone(),
                    password: self.password.clone(),
                    vendor_id: self.vendor_id.clone(),
                    location_id: self.location_id.clone(),
                    network_id: self.network_id.clone(),
                    practice_id: self.practice_id.clone(),
                    timeout,
                }))
            }
        }
    };
}

lifefile_account!(
    BoothwynAccount,
    "Boothwyn's LifeFile account.",
    (api_base, "BOOTHWYN_API_BASE", "boothwyn-api-base"),
    (username, "BOOTHWYN_USERNAME", "boothwyn-username"),
    (password, "BOOTHWYN_PASSWORD", "boothwyn-password"),
    (vendor_id, "BOOTHWYN_VENDOR_ID", "boothwyn-vendor-id"),
    (location_id, "BOOTHWYN_LOCATION_ID", "boothwyn-location-id"),
    (network_id, "BOOTHWYN_NETWORK_ID", "boothwyn-network-id"),
    (practice_id, "BOOTHWYN_PRACTICE_ID", "boothwyn-practice-id"),
);
lifefile_account!(
    StriveAccount,
    "Strive's LifeFile account.",
    (api_base, "STRIVE_API_BASE", "strive-api-base"),
    (username, "STRIVE_USERNAME", "strive-username"),
    (password, "STRIVE_PASSWORD", "strive-password"),
    (vendor_id, "STRIVE_VENDOR_ID", "strive-vendor-id"),
    (location_id, "STRIVE_LOCATION_ID", "strive-location-id"),
    (network_id, "STRIVE_NETWORK_ID", "strive-network-id"),
    (practice_id, "STRIVE_PRACTICE_ID", "strive-practice-id"),
);

impl fmt::Debug for PharmacyAccounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PharmacyAccounts")
            .field("pioneerrx_api_base", &self.pioneerrx_api_base)
            .field("boothwyn_api_base", &self.boothwyn.api_base)
            .field("strive_api_base", &self.strive.api_base)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for BoothwynAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoothwynAccount")
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for StriveAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StriveAccount")
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

impl PharmacyAccounts {
    /// One adapter per configured pharmacy, by the routing matrix's pharmacy id.
    pub fn adapters(&self) -> Result<Vec<Box<dyn PharmacyAdapter>>, ConfigError> {
        if !(1..=120).contains(&self.timeout_secs) {
            return Err(ConfigError::new("PHARMACY_TIMEOUT_SECS", "must be between 1 and 120"));
        }
        let timeout = Duration::from_secs(self.timeout_secs);
        let mut out: Vec<Box<dyn PharmacyAdapter>> = Vec::new();
        if !self.pioneerrx_api_base.is_empty() {
            era_kit::config::http_url("PIONEERRX_API_BASE", &self.pioneerrx_api_base)?;
            for (var, secret) in [
                ("PIONEERRX_API_KEY", &self.pioneerrx_api_key),
                ("PIONEERRX_SHARED_SECRET", &self.pioneerrx_shared_secret),
            ] {
                if secret.expose_secret().trim().is_empty() {
                    return Err(ConfigError::new(var, "is required when PIONEERRX_API_BASE is set"));
                }
            }
            out.push(Box::new(PioneerRx::new(
                "gmp",
                PioneerRxAccount {
                    base_url: self.pioneerrx_api_base.clone(),
                    api_key: self.pioneerrx_api_key.clone(),
                    shared_secret: self.pioneerrx_shared_secret.clone(),
                    timeout,
                },
            )));
        }
        if let Some(account) = self.boothwyn.account(timeout)? {
            out.push(Box::new(LifeFile::new("boothwyn", account)));
        }
        if let Some(account) = self.strive.account(timeout)? {
            out.push(Box::new(LifeFile::new("strive", account)));
        }
        Ok(out)
    }
}

/// The approval pipeline's worker.
#[derive(Clone, Debug, clap::Args)]
pub struct PipelineConfig {
    /// Whether this replica resumes unfinished runs (every replica may; they never take the same run).
    #[arg(long, env = "PIPELINE_WORKER", default_value_t = true, action = clap::ArgAction::Set)]
    pub worker: bool,
    /// How long a replica may hold a run before another may take it over (heartbeats extend it).
    #[arg(long, env = "PIPELINE_LEASE_SECS", default_value_t = 60)]
    pub lease_secs: u64,
    /// How often an idle worker looks for runs to resume.
    #[arg(long, env = "PIPELINE_POLL_MS", default_value_t = 1000)]
    pub poll_ms: u64,
    /// How long an approval waits for its run before answering with the run still going (202 at the
    /// edge); below the 10 s deadline of a call between services.
    #[arg(long, env = "PIPELINE_SYNC_WAIT_MS", default_value_t = 8000)]
    pub sync_wait_ms: u64,
    /// The longest wait between attempts of a step that failed for a passing reason.
    #[arg(long, env = "PIPELINE_RETRY_MAX_SECS", default_value_t = 300)]
    pub retry_max_secs: u64,
    /// How long after a submission whose outcome is unknown (an answer lost, a replica stopped) we
    /// first ask the pharmacy whether it has the order; unset: the lease plus PHARMACY_TIMEOUT_SECS,
    /// past any request still being processed there.
    #[arg(long, env = "PIPELINE_LOOKUP_DELAY_SECS")]
    pub lookup_delay_secs: Option<u64>,
    /// How many days before a refill's due date the patient gets the refill_due reminder.
    #[arg(long, env = "REFILL_REMINDER_DAYS", default_value_t = 3)]
    pub refill_reminder_days: u32,
    /// After a refill's card is declined, how long until each retry (seconds, comma-separated); once
    /// they are used up the refill is overdue. Default: a day, then three more.
    #[arg(long, env = "REFILL_RETRY_SECS", value_delimiter = ',', default_values_t = [86_400u64, 259_200])]
    pub refill_retry_secs: Vec<u64>,
    /// Tests only (never from the environment): stop this replica's pipeline at one point, as a crash would.
    #[arg(skip)]
    pub failpoint: Option<Failpoint>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            worker: true,
            lease_secs: 60,
            poll_ms: 1000,
            sync_wait_ms: 8000,
            retry_max_secs: 300,
            lookup_delay_secs: None,
            refill_reminder_days: 3,
            refill_retry_secs: vec![86_400, 259_200],
            failpoint: None,
        }
    }
}

impl PipelineConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=3600).contains(&self.lease_secs) {
            return Err(ConfigError::new("PIPELINE_LEASE_SECS", "must be between 1 and 3600"));
        }
        if !(10..=60_000).contains(&self.poll_ms) {
            return Err(ConfigError::new("PIPELINE_POLL_MS", "must be between 10 and 60000"));
        }
        if self.sync_wait_ms > 9_000 {
            return Err(ConfigError::new(
                "PIPELINE_SYNC_WAIT_MS",
                "must be at most 9000 (calls between services have a 10 s deadline)",
            ));
        }
        if !(1..=86_400).contains(&self.retry_max_secs) {
            return Err(ConfigError::new(
                "PIPELINE_RETRY_MAX_SECS",
                "must be between 1 and 86400",
            ));
        }
        if self.refill_reminder_days > 30 {
            return Err(ConfigError::new("REFILL_REMINDER_DAYS", "must be between 0 and 30"));
        }
        if self.refill_retry_secs.len() > 10 || self.refill_retry_secs.iter().any(|s| !(1..=30 * 86_400).contains(s)) {
            return Err(ConfigError::new(
                "REFILL_RETRY_SECS",
                "must be at most 10 waits, each between 1 second and 30 days",
            ));
        }
        Ok(())
    }
}

/// Where a test stops the pipeline: at `step`, before its external call, after the call returned but
/// before its result is committed, or after the commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failpoint {
    pub step: String,
    pub at: FailAt,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailAt {
    BeforeCall,
    AfterCall,
    AfterCommit,
}
