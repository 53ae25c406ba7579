//! era-edge: the REST edge. It authenticates (ADMIN_SECRET, admin and patient JWTs, the Canvas
//! plugin's HMAC), authorises the route, validates input, turns the call into gRPC with the caller
//! forwarded as an internal token, and maps the answer back. No business rules and no vendor calls.

use std::{future::Future, ops::Deref, sync::Arc};

use era_kit::auth::InternalTokens;
use secrecy::SecretString;
use sqlx::{migrate::Migrator, PgPool};
use tokio::net::TcpListener;

pub mod auth;
mod clients;
pub mod config;
pub mod error;
pub mod limits;
mod metrics;
pub mod openapi;
pub mod routes;
mod serve;

pub use clients::Clients;
pub use config::Config;
pub use routes::router;

pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations/edge");

/// Shared by every request.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    pub admin_secret: SecretString,
    pub admin_tokens: auth::jwt::TokenKind,
    pub patient_tokens: auth::jwt::TokenKind,
    pub intake_tokens: auth::jwt::TokenKind,
    pub hmac_secret: SecretString,
    pub internal: InternalTokens,
    pub revocations: auth::Revocations,
    pub admins: auth::Admins,
    pub handoffs: auth::Handoffs,
    pub clients: Clients,
    pub metrics: metrics::Metrics,
    /// The edge's own database (sessions, logins, rate-limit counts).
    pub pool: PgPool,
    /// The last readiness answer and when it was taken: `/readyz` asks the services at most once a
    /// second, however often it is hit.
    pub readiness: tokio::sync::Mutex<Option<(std::time::Instant, routes::Readiness)>>,
    pub config: Config,
}

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Builds the state from a validated config and the edge's migrated database.
    pub async fn new(config: Config, pool: PgPool) -> anyhow::Result<Self> {
        let admin_jwt = config.secrets.admin_jwt()?.clone();
        Ok(Self(Arc::new(Inner {
            admin_secret: config.auth.admin_secret.clone(),
            admin_tokens: auth::jwt::TokenKind::admin(&admin_jwt),
            patient_tokens: auth::jwt::TokenKind::patient(&config.secrets.patient_jwt_secret),
            intake_tokens: auth::jwt::TokenKind::intake(&config.secrets.patient_jwt_secret),
            hmac_secret: admin_jwt,
            internal: InternalTokens::new(&config.auth.internal_token_secret),
            revocations: auth::Revocations::start(pool.clone()).await?,
            admins: auth::Admins::new(pool.clone(), &config.secrets.patient_jwt_secret),
            handoffs: auth::Handoffs::new(pool.clone()),
            clients: Clients::connect(&config.peers, &config.mesh)?,
            metrics: metrics::Metrics::default(),
            pool,
            readiness: tokio::sync::Mutex::new(None),
            config,
        })))
    }
}

/// Serves the edge on `listener` until `shutdown` resolves; requests in flight then finish.
pub async fn run(
    config: Config,
    listener: TcpListener,
    pool: PgPool,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let header_timeout = std::time::Duration::from_secs(config.header_read_timeout_secs);
    // The edge serves no gRPC, so it re-reads its mesh certificate itself.
    let reloader = config.mesh.tls()?.map(|tls| tls.spawn_reloader());
    let state = AppState::new(config, pool).await?;
    let served = serve::serve(listener, router(state), header_timeout, shutdown).await;
    if let Some(reloader) = reloader {
        reloader.abort();
    }
    served
}

/// `GET url` answered 200, over plain HTTP/1.1 (the `healthcheck` subcommand; no client library
/// needed in the image).
pub async fn healthcheck(url: &str) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let uri: http::Uri = url.parse()?;
    let host = uri.host().ok_or_else(|| anyhow::anyhow!("{url} has no host"))?;
    let port = uri.port_u16().unwrap_or(80);
    let mut stream = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        tokio::net::TcpStream::connect((host, port)),
    )
    .await??;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n",
        uri.path()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await?;
    if head.starts_with(b"HTTP/1.1 200") {
        Ok(())
    } else {
        anyhow::bail!("{url} answered {}", String::from_utf8_lossy(&head))
    }
}
