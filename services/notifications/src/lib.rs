//! era-notifications: email and SMS (SendGrid, Twilio) through a durable outbox, the patient
//! portal's notifications, HubSpot conversations and the logins' codes and links.

use std::{net::SocketAddr, sync::Arc};

use era_kit::{
    auth::Authenticator,
    cli::{BoxFuture, ServiceBinary},
    config::ConfigError,
    server::GrpcServer,
};
use era_proto::notifications::v1::notifications_service_server::NotificationsServiceServer;
use sqlx::{migrate::Migrator, PgPool};
use tokio::net::TcpListener;

mod app;
pub mod config;
mod conversations;
mod error;
mod grpc;
mod logins;
mod outbox;
mod portal;
pub mod store;
pub mod templates;
mod vendors;
mod worker;

pub use config::Config;
pub use error::Error;

pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/notifications");

/// Serves the service on `listener` until `shutdown` resolves. The database must be migrated.
pub async fn run(
    config: Config,
    listener: TcpListener,
    pool: PgPool,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = Arc::new(app::App::new(&config, store::Store::new(pool))?);
    // The outbox is durable and every write after a vendor call is fenced, so stopping the worker
    // at any point loses nothing: a held message's lease runs out and another attempt takes it.
    let worker = config.outbox.worker.then(|| tokio::spawn(worker::run(app.clone())));
    let served = GrpcServer::new(Authenticator::new(&config.service.auth))
        .tls(config.service.mesh.tls()?)
        .add_service(NotificationsServiceServer::new(grpc::Service { app }))
        .serve(listener, shutdown)
        .await;
    if let Some(w) = worker {
        w.abort();
    }
    served
}

/// The `era-notifications` binary.
#[derive(Debug)]
pub struct Binary;

impl ServiceBinary for Binary {
    type Config = Config;
    const NAME: &'static str = "era-notifications";
    const DEFAULT_LISTEN_ADDR: SocketAddr = era_kit::config::loopback(50055);

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    fn validate(config: &Config) -> Result<(), ConfigError> {
        config.validate()
    }

    fn run(
        config: Config,
        listener: TcpListener,
        pool: PgPool,
        shutdown: BoxFuture<()>,
    ) -> BoxFuture<anyhow::Result<()>> {
        Box::pin(run(config, listener, pool, shutdown))
    }
}
