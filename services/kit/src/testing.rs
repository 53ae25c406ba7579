//! Test helpers: a throwaway database per test on the server `DATABASE_URL` names (default: the local
//! PostgreSQL), dropped when the test ends, and listeners on port 0.

use std::{net::SocketAddr, str::FromStr};

use secrecy::SecretString;
use sqlx::{
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
    ConnectOptions, Connection, PgConnection, PgPool,
};
use tokio::net::TcpListener;

use crate::{
    config::{AuthConfig, DatabaseConfig, LoggingConfig, ServiceConfig},
    db::quote_ident,
};

pub const DEFAULT_SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The PostgreSQL server tests create their databases on.
pub fn server_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_SERVER_URL.to_owned())
}

/// A fresh database, migrated, dropped (with its connections) when this value is dropped.
#[derive(Debug)]
pub struct TestDb {
    pub pool: PgPool,
    pub url: String,
    name: String,
}

impl TestDb {
    pub async fn new(migrator: &Migrator) -> Self {
        let db = Self::empty().await;
        migrator
            .run(&db.pool)
            .await
            .expect("migrations apply to a fresh database");
        db
    }

    pub async fn empty() -> Self {
        let name = format!("era_test_{}", uuid::Uuid::new_v4().simple());
        let url = database_url(&name);
        crate::db::create_database_if_missing(&url)
            .await
            .expect("test database can be created");
        let options = PgConnectOptions::from_str(&url).unwrap().disable_statement_logging();
        let pool = PgPoolOptions::new()
            .max_connections(5)
            .connect_with(options)
            .await
            .expect("test database answers");
        Self { pool, url, name }
    }

    pub fn config(&self) -> DatabaseConfig {
        DatabaseConfig::new(self.url.clone())
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        drop_database_blocking(&self.name);
    }
}

/// Drops database `name` on the test server, closing its connections; usable from `Drop`.
pub fn drop_database_blocking(name: &str) {
    let name = name.to_owned();
    // Drop runs outside async; a short-lived runtime on its own thread does the cleanup.
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        rt.block_on(async {
            let options = PgConnectOptions::from_str(&server_url()).ok()?.database("postgres");
            let mut conn = PgConnection::connect_with(&options).await.ok()?;
            let sql = format!("drop database if exists {} with (force)", quote_ident(&name));
            sqlx::query(&sql).execute(&mut conn).await.ok()
        })
    })
    .join();
}

/// The URL of database `name` on the test server.
pub fn database_url(name: &str) -> String {
    let server = server_url();
    match server.rfind('/') {
        Some(i) if server[..i].contains("@") || server[..i].matches('/').count() >= 2 => {
            let (base, rest) = server.split_at(i);
            let query = rest.find('?').map_or("", |q| &rest[q..]);
            format!("{base}/{name}{query}")
        }
        _ => format!("{server}/{name}"),
    }
}

/// A listener on a free loopback port.
pub async fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("loopback port");
    let addr = l.local_addr().unwrap();
    (l, addr)
}

/// Secrets for tests; long enough to pass validation.
pub fn auth_config() -> AuthConfig {
    AuthConfig {
        admin_secret: SecretString::from("test-admin-secret-0123456789abcdef0123456789"),
        internal_token_secret: SecretString::from("test-internal-token-secret-0123456789abcdef"),
    }
}

pub fn service_config(db: &TestDb) -> ServiceConfig {
    ServiceConfig {
        listen_addr: None,
        database: db.config(),
        auth: auth_config(),
        logging: LoggingConfig::default(),
        mesh: crate::config::MeshConfig::development(Default::default()),
    }
}

/// The bench echo contract answering what it is sent: a service to stand up behind the kit's server
/// (TLS, auth) when the test is about the server, not a service.
#[derive(Clone, Copy, Debug, Default)]
pub struct Echo;

#[tonic::async_trait]
impl era_proto::bench::v1::echo_service_server::EchoService for Echo {
    async fn echo(
        &self,
        request: tonic::Request<era_proto::bench::v1::EchoRequest>,
    ) -> Result<tonic::Response<era_proto::bench::v1::EchoResponse>, tonic::Status> {
        Ok(tonic::Response::new(era_proto::bench::v1::EchoResponse {
            message: request.into_inner().message,
        }))
    }
}
