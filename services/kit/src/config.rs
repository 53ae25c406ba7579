//! Configuration blocks shared by every binary. Each field comes from an environment variable
//! (that is how the deploy's secrets arrive) and is validated at start with an error that names it.

use std::{fmt, str::FromStr};

use secrecy::{ExposeSecret, SecretString};

/// A configuration value that was present but unusable.
#[derive(Debug, thiserror::Error)]
#[error("invalid {var}: {reason}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: &'static str,
    /// Why, without echoing the value (it may be a secret).
    pub reason: String,
}

impl ConfigError {
    pub fn new(var: &'static str, reason: impl Into<String>) -> Self {
        Self {
            var,
            reason: reason.into(),
        }
    }
}

/// Checks that `value` (the setting of `var`) is an absolute http:// or https:// URL with a host.
pub fn http_url(var: &'static str, value: &str) -> Result<(), ConfigError> {
    let ok = value
        .parse::<http::Uri>()
        .is_ok_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some_and(|h| !h.is_empty()));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(var, "must be an http:// or https:// URL"))
    }
}

/// The service's own database.
#[derive(Clone, clap::Args)]
pub struct DatabaseConfig {
    /// PostgreSQL URL of this service's own database (one database per service).
    #[arg(long = "database-url", env = "DATABASE_URL", value_name = "DATABASE_URL")]
    pub url: SecretString,
    /// Connections kept in the pool.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub max_connections: u32,
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password.
        f.debug_struct("DatabaseConfig")
            .field("url", &"[redacted]")
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl DatabaseConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: SecretString::from(url.into()),
            max_connections: 10,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let url = self.url.expose_secret();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(ConfigError::new(
                "DATABASE_URL",
                "must be a postgres:// or postgresql:// URL",
            ));
        }
        if sqlx::postgres::PgConnectOptions::from_str(url).is_err() {
            return Err(ConfigError::new("DATABASE_URL", "is not a valid PostgreSQL URL"));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::new("DATABASE_MAX_CONNECTIONS", "must be at least 1"));
        }
        Ok(())
    }
}

/// The secrets a service needs to tell who is calling.
#[derive(Clone, clap::Args)]
pub struct AuthConfig {
    /// Server-to-server secret: full admin access when sent as `authorization: Bearer <ADMIN_SECRET>`.
    #[arg(long, env = "ADMIN_SECRET", hide_env_values = true)]
    pub admin_secret: SecretString,
    /// Key of the short-lived internal tokens the edge mints for each call (HS256).
    #[arg(long, env = "INTERNAL_TOKEN_SECRET", hide_env_values = true)]
    pub internal_token_secret: SecretString,
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthConfig { .. }")
    }
}

impl AuthConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        require_secret("ADMIN_SECRET", &self.admin_secret)?;
        require_secret("INTERNAL_TOKEN_SECRET", &self.internal_token_secret)?;
        // One leaked secret must not open the other door.
        if self.internal_token_secret.expose_secret() == self.admin_secret.expose_secret() {
            return Err(ConfigError::new(
                "INTERNAL_TOKEN_SECRET",
                "must differ from ADMIN_SECRET",
            ));
        }
        Ok(())
    }
}

/// Minimum length of every secret: 32 characters, i.e. 256 bits of key for HS256 when random.
pub const MIN_SECRET_LEN: usize = 32;

/// Checks a secret is long enough to be a key, without ever printing it.
pub fn require_secret(var: &'static str, secret: &SecretString) -> Result<(), ConfigError> {
    let len = secret.expose_secret().len();
    if len < MIN_SECRET_LEN {
        return Err(ConfigError::new(
            var,
            format!(
                "must be at least {MIN_SECRET_LEN} characters (got {len}); generate one with `openssl rand -hex 32`"
            ),
        ));
    }
    Ok(())
}

/// How logs are written.
#[derive(Clone, Debug, clap::Args)]
pub struct LoggingConfig {
    /// `text` for people, `json` for the log pipeline.
    #[arg(long, env = "LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    /// tracing filter, e.g. `info` or `era_pharmacy_routing=debug,info`.
    #[arg(long, env = "LOG_FILTER", default_value = "info")]
    pub log_filter: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Text,
            log_filter: "info".into(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// What every gRPC service binary needs besides its own settings.
#[derive(Clone, Debug, clap::Args)]
pub struct ServiceConfig {
    /// Socket the gRPC server listens on; each binary has its own default port.
    #[arg(long, env = "LISTEN_ADDR")]
    pub listen_addr: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub auth: AuthConfig,
    #[command(flatten)]
    pub logging: LoggingConfig,
}

impl AsRef<ServiceConfig> for ServiceConfig {
    fn as_ref(&self) -> &ServiceConfig {
        self
    }
}

impl ServiceConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.database.validate()?;
        self.auth.validate()
    }
}

/// `127.0.0.1:<port>`, for the binaries' default listen addresses.
pub const fn loopback(port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::V4(std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, port))
}
