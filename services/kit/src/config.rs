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

/// Where a component runs. Production refuses what belongs only to development: a sandbox or other
/// local vendor URL, a plaintext peer, a missing mesh certificate or webhook secret.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Environment {
    /// The default, so that a deployment which forgets `ERA_ENV` gets the strict checks.
    #[default]
    Production,
    /// era-dev, the tests, docker compose against the sandbox.
    Development,
}

/// How a component fits into the mesh: the environment and the TLS on its gRPC hops.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct MeshConfig {
    /// `production` (the default) or `development`.
    #[arg(long = "era-env", env = "ERA_ENV", default_value = "production")]
    pub env: Environment,
    #[command(flatten)]
    pub tls: crate::tls::TlsConfig,
    /// Loaded once and shared by the server and every channel, so a reload reaches all of them.
    #[arg(skip)]
    loaded: std::sync::Arc<std::sync::OnceLock<Option<crate::tls::MeshTls>>>,
}

impl MeshConfig {
    /// A development mesh over the given TLS documents (era-dev and the tests).
    pub fn development(tls: crate::tls::TlsConfig) -> Self {
        Self {
            env: Environment::Development,
            tls,
            loaded: Default::default(),
        }
    }

    /// Checks the TLS documents, which production requires.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tls()?.is_none() && self.env == Environment::Production {
            return Err(ConfigError::new(
                "MESH_TLS_CA",
                "is required when ERA_ENV=production (the default): gRPC between components runs over mTLS; set ERA_ENV=development for a plaintext local mesh",
            ));
        }
        Ok(())
    }

    /// The loaded TLS identity, `None` for a plaintext development mesh.
    pub fn tls(&self) -> Result<Option<crate::tls::MeshTls>, ConfigError> {
        if let Some(loaded) = self.loaded.get() {
            return Ok(loaded.clone());
        }
        let loaded = self.tls.load()?;
        Ok(self.loaded.get_or_init(|| loaded).clone())
    }

    /// A lazily connected channel to a peer, over mesh TLS when it is set.
    pub fn channel(&self, url: &str) -> anyhow::Result<tonic::transport::Channel> {
        crate::client::channel(url, self.tls()?.as_ref())
    }

    /// A peer's gRPC URL: `https://` when mesh TLS is set, `http://` only when it is not.
    pub fn peer_url(&self, var: &'static str, value: &str) -> Result<(), ConfigError> {
        http_url(var, value)?;
        match (value.starts_with("https://"), self.tls.is_set()) {
            (true, true) | (false, false) => Ok(()),
            (false, true) => Err(ConfigError::new(
                var,
                "is a plaintext http:// URL while mesh TLS is set; use https://",
            )),
            (true, false) => Err(ConfigError::new(
                var,
                "is an https:// URL but mesh TLS is not set (MESH_TLS_CA, MESH_TLS_CERT, MESH_TLS_KEY)",
            )),
        }
    }

    /// A URL outside the mesh (a vendor's API, the public magic-link page): in production it must be
    /// https:// on a public host name, which the sandbox and other local stand-ins never are.
    pub fn external_url(&self, var: &'static str, value: &str) -> Result<(), ConfigError> {
        http_url(var, value)?;
        if self.env == Environment::Production {
            let uri = value
                .parse::<http::Uri>()
                .map_err(|_| ConfigError::new(var, "is not a URL"))?;
            if uri.scheme_str() != Some("https") {
                return Err(ConfigError::new(var, "must be an https:// URL when ERA_ENV=production"));
            }
            if uri.host().is_some_and(is_local_host) {
                return Err(ConfigError::new(
                    var,
                    "names a local or private host (the sandbox's kind of address); ERA_ENV=production needs the real endpoint",
                ));
            }
        }
        Ok(())
    }
}

/// Loopback, private, link-local and unspecified addresses, `localhost`, and names without a dot
/// (a compose service such as `sandbox`): nowhere a vendor's production API lives.
pub fn is_local_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return match ip {
            std::net::IpAddr::V4(v4) => {
                v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified()
            }
            std::net::IpAddr::V6(v6) => {
                let first = v6.segments()[0];
                v6.is_loopback()
                    || v6.is_unspecified()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80
                    || v6
                        .to_ipv4_mapped()
                        .is_some_and(|v4| v4.is_loopback() || v4.is_private())
            }
        };
    }
    let host = host.trim_end_matches('.');
    host == "localhost"
        || host.ends_with(".localhost")
        || host.ends_with(".local")
        || host.ends_with(".internal")
        || !host.contains('.')
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
    #[command(flatten)]
    pub mesh: MeshConfig,
}

impl AsRef<ServiceConfig> for ServiceConfig {
    fn as_ref(&self) -> &ServiceConfig {
        self
    }
}

impl ServiceConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.database.validate()?;
        self.auth.validate()?;
        self.mesh.validate()
    }
}

/// `127.0.0.1:<port>`, for the binaries' default listen addresses.
pub const fn loopback(port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::V4(std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, port))
}
