//! The canvas service's settings: the shared blocks, the Canvas connection, the intake-record keys
//! and the peer it asks for dosage options. Parsed and checked once at start.

use std::{fmt, time::Duration};

use era_kit::{
    config::{require_secret, ConfigError, MeshConfig, ServiceConfig},
    sealing::{parse_keys, Keyring},
};
use secrecy::{ExposeSecret, SecretString};

#[derive(Clone, Debug, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub service: ServiceConfig,
    #[command(flatten)]
    pub canvas: CanvasConfig,
    #[command(flatten)]
    pub records: RecordsConfig,
    /// Where pharmacy-routing serves gRPC (dosage options for the H&P package, prescriber by state).
    #[arg(long, env = "PHARMACY_ROUTING_GRPC_URL", default_value = "http://127.0.0.1:50053")]
    pub pharmacy_routing_grpc_url: String,
}

impl AsRef<ServiceConfig> for Config {
    fn as_ref(&self) -> &ServiceConfig {
        &self.service
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.service.validate()?;
        self.canvas.validate(&self.service.mesh)?;
        self.records.keyring()?;
        self.service
            .mesh
            .peer_url("PHARMACY_ROUTING_GRPC_URL", &self.pharmacy_routing_grpc_url)
    }
}

/// The Canvas instance and the OAuth client the service uses.
#[derive(Clone, clap::Args)]
pub struct CanvasConfig {
    /// The Canvas EMR host (token endpoint `<base>/auth/token/`).
    #[arg(long, env = "CANVAS_BASE_URL", default_value = "https://yourera.canvasmedical.com")]
    pub base_url: String,
    /// The Canvas FHIR base (`https://fumage-<instance>.canvasmedical.com`).
    #[arg(
        long,
        env = "CANVAS_FHIR_URL",
        default_value = "https://fumage-yourera.canvasmedical.com"
    )]
    pub fhir_url: String,
    #[arg(long, env = "CANVAS_CLIENT_ID")]
    pub client_id: String,
    #[arg(long, env = "CANVAS_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: SecretString,
    /// Seconds one Canvas request may take.
    #[arg(long, env = "CANVAS_TIMEOUT_SECS", default_value_t = 10)]
    pub timeout_secs: u64,
    /// Attempts a read gets (first try included) on 429, 5xx and timeouts.
    #[arg(long, env = "CANVAS_READ_ATTEMPTS", default_value_t = 3)]
    pub read_attempts: u32,
    /// The intake questionnaire's id in Canvas (answers are written there when a submission names it).
    #[arg(long, env = "CANVAS_INTAKE_QUESTIONNAIRE_ID", default_value = "")]
    pub intake_questionnaire_id: String,
}

impl fmt::Debug for CanvasConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CanvasConfig")
            .field("base_url", &self.base_url)
            .field("fhir_url", &self.fhir_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("timeout_secs", &self.timeout_secs)
            .field("read_attempts", &self.read_attempts)
            .finish()
    }
}

impl CanvasConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    fn validate(&self, mesh: &MeshConfig) -> Result<(), ConfigError> {
        mesh.external_url("CANVAS_BASE_URL", &self.base_url)?;
        mesh.external_url("CANVAS_FHIR_URL", &self.fhir_url)?;
        if self.client_id.trim().is_empty() {
            return Err(ConfigError::new("CANVAS_CLIENT_ID", "must not be empty"));
        }
        if self.client_secret.expose_secret().is_empty() {
            return Err(ConfigError::new("CANVAS_CLIENT_SECRET", "must not be empty"));
        }
        if !(1..=120).contains(&self.timeout_secs) {
            return Err(ConfigError::new("CANVAS_TIMEOUT_SECS", "must be between 1 and 120"));
        }
        if !(1..=10).contains(&self.read_attempts) {
            return Err(ConfigError::new("CANVAS_READ_ATTEMPTS", "must be between 1 and 10"));
        }
        Ok(())
    }
}

/// Keys of the encrypted intake records.
#[derive(Clone, clap::Args)]
pub struct RecordsConfig {
    /// Versioned AES-256 keys, `version:base64key` separated by commas, e.g. `1:<44 chars>,2:<44 chars>`.
    /// Old versions stay listed so records written under them still read.
    #[arg(long, env = "RECORDS_KEYS", hide_env_values = true)]
    pub keys: SecretString,
    /// The version new records are written under.
    #[arg(long, env = "RECORDS_ACTIVE_KEY")]
    pub active_key: u32,
    /// Key of the HMAC blind indexes (email, date of birth); at least 32 characters.
    #[arg(long, env = "BLIND_INDEX_KEY", hide_env_values = true)]
    pub blind_index_key: SecretString,
}

impl fmt::Debug for RecordsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordsConfig")
            .field("active_key", &self.active_key)
            .finish_non_exhaustive()
    }
}

impl RecordsConfig {
    /// Parses and checks the keys; the error names the variable and never shows a key.
    pub fn keyring(&self) -> Result<Keyring, ConfigError> {
        let keys = parse_keys("RECORDS_KEYS", &self.keys, "RECORDS_ACTIVE_KEY", self.active_key)?;
        require_secret("BLIND_INDEX_KEY", &self.blind_index_key)?;
        Ok(Keyring::new(
            keys,
            self.active_key,
            self.blind_index_key.expose_secret().as_bytes(),
        ))
    }
}
