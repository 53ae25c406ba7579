//! The payments service's settings: the shared blocks and the Stripe account. Checked at start.

use std::fmt;

use era_kit::config::{ConfigError, MeshConfig, ServiceConfig};
use secrecy::{ExposeSecret, SecretString};

#[derive(Clone, Debug, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub service: ServiceConfig,
    #[command(flatten)]
    pub stripe: StripeConfig,
    #[command(flatten)]
    pub resume: ResumeConfig,
}

impl AsRef<ServiceConfig> for Config {
    fn as_ref(&self) -> &ServiceConfig {
        &self.service
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.service.validate()?;
        self.stripe.validate(&self.service.mesh)?;
        self.resume.validate()
    }
}

/// The worker that finishes charges and refunds their callers left unfinished (crate::resume).
#[derive(Clone, Debug, clap::Args)]
pub struct ResumeConfig {
    /// Seconds between the worker's passes.
    #[arg(long = "resume-every-secs", env = "PAYMENTS_RESUME_EVERY_SECS", default_value_t = 30)]
    pub every_secs: u64,
    /// Seconds a charge or refund must sit unfinished before the worker takes it over; a live
    /// caller normally finishes well within this (Stripe's timeout times its retries).
    #[arg(
        long = "resume-quiet-secs",
        env = "PAYMENTS_RESUME_QUIET_SECS",
        default_value_t = 120
    )]
    pub quiet_secs: u64,
}

impl Default for ResumeConfig {
    fn default() -> Self {
        Self {
            every_secs: 30,
            quiet_secs: 120,
        }
    }
}

impl ResumeConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=3600).contains(&self.every_secs) {
            return Err(ConfigError::new(
                "PAYMENTS_RESUME_EVERY_SECS",
                "must be between 1 and 3600",
            ));
        }
        if !(1..=86_400).contains(&self.quiet_secs) {
            return Err(ConfigError::new(
                "PAYMENTS_RESUME_QUIET_SECS",
                "must be between 1 and 86400",
            ));
        }
        Ok(())
    }
}

#[derive(Clone, clap::Args)]
pub struct StripeConfig {
    /// Stripe's API base (the sandbox's `/stripe` in local runs).
    #[arg(long, env = "STRIPE_API_BASE", default_value = "https://api.stripe.com")]
    pub api_base: String,
    /// The secret API key (`sk_live_...` or `sk_test_...`).
    #[arg(long, env = "STRIPE_SECRET_KEY", hide_env_values = true)]
    pub secret_key: SecretString,
    /// Seconds one Stripe request may take.
    #[arg(long, env = "STRIPE_TIMEOUT_SECS", default_value_t = 20)]
    pub timeout_secs: u64,
    /// Retries of a request Stripe's idempotency makes safe (network errors, 409, 429, 5xx).
    #[arg(long, env = "STRIPE_MAX_RETRIES", default_value_t = 2)]
    pub max_retries: u32,
}

impl fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeConfig")
            .field("api_base", &self.api_base)
            .field("secret_key", &"[redacted]")
            .field("timeout_secs", &self.timeout_secs)
            .field("max_retries", &self.max_retries)
            .finish()
    }
}

impl StripeConfig {
    fn validate(&self, mesh: &MeshConfig) -> Result<(), ConfigError> {
        mesh.external_url("STRIPE_API_BASE", &self.api_base)?;
        let key = self.secret_key.expose_secret();
        if !(key.starts_with("sk_live_") || key.starts_with("sk_test_") || key.starts_with("rk_")) || key.len() < 12 {
            return Err(ConfigError::new(
                "STRIPE_SECRET_KEY",
                "must be a Stripe secret key (sk_live_…, sk_test_… or a restricted rk_… key)",
            ));
        }
        if !(1..=120).contains(&self.timeout_secs) {
            return Err(ConfigError::new("STRIPE_TIMEOUT_SECS", "must be between 1 and 120"));
        }
        if self.max_retries > 5 {
            return Err(ConfigError::new("STRIPE_MAX_RETRIES", "must be at most 5"));
        }
        Ok(())
    }
}
