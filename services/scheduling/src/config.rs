//! The scheduling service's settings: the shared blocks, the peers it calls, the Zoom account and
//! the booking engine. Checked at start, each error naming its variable.

use std::{fmt, time::Duration};

use era_kit::{
    config::{ConfigError, MeshConfig, ServiceConfig},
    jobs::{Failpoint, RunnerConfig},
};
use secrecy::{ExposeSecret, SecretString};

#[derive(Clone, Debug, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub service: ServiceConfig,
    #[command(flatten)]
    pub peers: Peers,
    #[command(flatten)]
    pub zoom: ZoomConfig,
    #[command(flatten)]
    pub engine: EngineConfig,
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
            .peer_url("PHARMACY_ROUTING_GRPC_URL", &self.peers.pharmacy_routing_grpc_url)?;
        self.service
            .mesh
            .peer_url("NOTIFICATIONS_GRPC_URL", &self.peers.notifications_grpc_url)?;
        self.zoom.validate(&self.service.mesh)?;
        self.engine.validate()
    }
}

/// The services scheduling calls.
#[derive(Clone, Debug, clap::Args)]
pub struct Peers {
    #[arg(long, env = "CANVAS_GRPC_URL", default_value = "http://127.0.0.1:50051")]
    pub canvas_grpc_url: String,
    #[arg(long, env = "PHARMACY_ROUTING_GRPC_URL", default_value = "http://127.0.0.1:50053")]
    pub pharmacy_routing_grpc_url: String,
    #[arg(long, env = "NOTIFICATIONS_GRPC_URL", default_value = "http://127.0.0.1:50055")]
    pub notifications_grpc_url: String,
}

/// The Zoom Server-to-Server OAuth app the meetings are made with.
#[derive(Clone, clap::Args)]
pub struct ZoomConfig {
    /// The Meetings API v2 base (the sandbox's `/zoom/v2` locally).
    #[arg(long, env = "ZOOM_BASE_URL", default_value = "https://api.zoom.us/v2")]
    pub base_url: String,
    #[arg(long, env = "ZOOM_TOKEN_URL", default_value = "https://zoom.us/oauth/token")]
    pub token_url: String,
    #[arg(long, env = "ZOOM_ACCOUNT_ID", default_value = "")]
    pub account_id: String,
    #[arg(long, env = "ZOOM_CLIENT_ID", default_value = "")]
    pub client_id: String,
    #[arg(long, env = "ZOOM_CLIENT_SECRET", default_value = "", hide_env_values = true)]
    pub client_secret: SecretString,
    /// Seconds one Zoom request may take.
    #[arg(long, env = "ZOOM_TIMEOUT_SECS", default_value_t = 10)]
    pub timeout_secs: u64,
}

impl fmt::Debug for ZoomConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZoomConfig")
            .field("base_url", &self.base_url)
            .field("token_url", &self.token_url)
            .field("account_id", &self.account_id)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl ZoomConfig {
    fn validate(&self, mesh: &MeshConfig) -> Result<(), ConfigError> {
        mesh.external_url("ZOOM_BASE_URL", &self.base_url)?;
        mesh.external_url("ZOOM_TOKEN_URL", &self.token_url)?;
        for (var, value) in [
            ("ZOOM_ACCOUNT_ID", self.account_id.as_str()),
            ("ZOOM_CLIENT_ID", self.client_id.as_str()),
            ("ZOOM_CLIENT_SECRET", self.client_secret.expose_secret()),
        ] {
            if value.trim().is_empty() {
                return Err(ConfigError::new(
                    var,
                    "is required (the Zoom Server-to-Server OAuth app)",
                ));
            }
        }
        if !(1..=120).contains(&self.timeout_secs) {
            return Err(ConfigError::new("ZOOM_TIMEOUT_SECS", "must be between 1 and 120"));
        }
        Ok(())
    }
}

/// The booking engine.
#[derive(Clone, Debug, clap::Args)]
pub struct EngineConfig {
    /// The length of a visit when a request names none; Canvas's slots are cut to it.
    #[arg(long, env = "SCHEDULING_VISIT_MINUTES", default_value_t = 20)]
    pub visit_minutes: u32,
    /// The IANA time zone of the practitioners' schedules (the clinic's location).
    #[arg(long, env = "SCHEDULING_CLINIC_TIME_ZONE", default_value = "America/New_York")]
    pub clinic_time_zone: String,
    /// How long Canvas's schedules and slots are reused between availability requests. Bookings
    /// made here always count at once, whatever this says.
    #[arg(long, env = "SCHEDULING_AVAILABILITY_CACHE_SECS", default_value_t = 5)]
    pub availability_cache_secs: u64,
    /// How long a booking, cancellation or move waits for its vendors before answering with the
    /// work still going; below the 10 s deadline of a call between services.
    #[arg(long, env = "SCHEDULING_SYNC_WAIT_MS", default_value_t = 8000)]
    pub sync_wait_ms: u64,
    /// Whether this replica runs the booking jobs and the visit-status worker.
    #[arg(long, env = "SCHEDULING_WORKER", default_value_t = true, action = clap::ArgAction::Set)]
    pub worker: bool,
    /// How long a replica may hold a booking job before another may take it over.
    #[arg(long, env = "SCHEDULING_LEASE_SECS", default_value_t = 60)]
    pub lease_secs: u64,
    /// How often an idle worker looks for due jobs.
    #[arg(long, env = "SCHEDULING_POLL_MS", default_value_t = 1000)]
    pub poll_ms: u64,
    /// Seconds to wait before each retry of a booking job whose vendor failed for a passing reason,
    /// comma-separated; past the last the job waits for an operator.
    #[arg(
        long,
        env = "SCHEDULING_RETRY_SCHEDULE",
        value_delimiter = ',',
        default_value = "5,30,120,600,1800,3600,10800,21600"
    )]
    pub retry_schedule_secs: Vec<u64>,
    /// How often booked visits that have begun are read back from Canvas (fulfilled, no-show).
    #[arg(long, env = "SCHEDULING_STATUS_EVERY_SECS", default_value_t = 300)]
    pub status_every_secs: u64,
    /// Tests only (never from the environment): stop this replica at one point, as a crash would.
    #[arg(skip)]
    pub failpoint: Option<Failpoint>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            visit_minutes: 20,
            clinic_time_zone: "America/New_York".into(),
            availability_cache_secs: 5,
            sync_wait_ms: 8000,
            worker: true,
            lease_secs: 60,
            poll_ms: 1000,
            retry_schedule_secs: vec![5, 30, 120, 600, 1800, 3600, 10800, 21600],
            status_every_secs: 300,
            failpoint: None,
        }
    }
}

impl EngineConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(5..=240).contains(&self.visit_minutes) {
            return Err(ConfigError::new(
                "SCHEDULING_VISIT_MINUTES",
                "must be between 5 and 240",
            ));
        }
        if self.clinic_time_zone.parse::<chrono_tz::Tz>().is_err() {
            return Err(ConfigError::new(
                "SCHEDULING_CLINIC_TIME_ZONE",
                "must be an IANA time zone, e.g. America/New_York",
            ));
        }
        if self.availability_cache_secs > 60 {
            return Err(ConfigError::new(
                "SCHEDULING_AVAILABILITY_CACHE_SECS",
                "must be at most 60 (availability is cached for seconds at most)",
            ));
        }
        if self.sync_wait_ms > 9_000 {
            return Err(ConfigError::new(
                "SCHEDULING_SYNC_WAIT_MS",
                "must be at most 9000 (calls between services have a 10 s deadline)",
            ));
        }
        if !(1..=3600).contains(&self.lease_secs) {
            return Err(ConfigError::new("SCHEDULING_LEASE_SECS", "must be between 1 and 3600"));
        }
        if !(10..=60_000).contains(&self.poll_ms) {
            return Err(ConfigError::new("SCHEDULING_POLL_MS", "must be between 10 and 60000"));
        }
        if self.retry_schedule_secs.is_empty() || self.retry_schedule_secs.iter().any(|s| *s > 86_400) {
            return Err(ConfigError::new(
                "SCHEDULING_RETRY_SCHEDULE",
                "must list at least one wait, each at most 86400 seconds",
            ));
        }
        if !(1..=86_400).contains(&self.status_every_secs) {
            return Err(ConfigError::new(
                "SCHEDULING_STATUS_EVERY_SECS",
                "must be between 1 and 86400",
            ));
        }
        Ok(())
    }

    pub fn clinic_zone(&self) -> chrono_tz::Tz {
        self.clinic_time_zone.parse().unwrap_or(chrono_tz::America::New_York)
    }

    pub(crate) fn runner(&self) -> RunnerConfig {
        RunnerConfig {
            lease: Duration::from_secs(self.lease_secs),
            poll: Duration::from_millis(self.poll_ms),
            schedule: self
                .retry_schedule_secs
                .iter()
                .copied()
                .map(Duration::from_secs)
                .collect(),
            ..RunnerConfig::default()
        }
    }
}
