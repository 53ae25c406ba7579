//! era-payments: Stripe for the clinic: a Stripe customer per Canvas patient, the card saved at
//! intake (payment holds), off-session charges exactly once per reference, refunds with an audit
//! trail, and discount codes.

use std::{net::SocketAddr, sync::Arc};

use era_kit::{
    auth::Authenticator,
    cli::{BoxFuture, ServiceBinary},
    config::ConfigError,
    server::GrpcServer,
};
use era_proto::payments::v1::payments_service_server::PaymentsServiceServer;
use sqlx::{migrate::Migrator, PgPool};
use tokio::net::TcpListener;

mod app;
mod charges;
pub mod config;
mod discounts;
mod error;
mod grpc;
mod holds;
mod resume;
pub mod store;
pub mod stripe;
mod webhooks;

pub use config::Config;
pub use error::Error;

pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/payments");

/// Serves the service on `listener` until `shutdown` resolves. The database must be migrated.
pub async fn run(
    config: Config,
    listener: TcpListener,
    pool: PgPool,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = Arc::new(app::App::new(&config, store::Store::new(pool))?);
    // Everything the worker does is durable and keyed, so stopping it mid-pass loses nothing.
    let worker = tokio::spawn(resume::run(
        app.clone(),
        std::time::Duration::from_secs(config.resume.every_secs),
        std::time::Duration::from_secs(config.resume.quiet_secs),
    ));
    let served = GrpcServer::new(Authenticator::new(&config.service.auth))
        .tls(config.service.mesh.tls()?)
        .add_service(PaymentsServiceServer::new(grpc::Service { app }))
        .serve(listener, shutdown)
        .await;
    worker.abort();
    served
}

/// The `era-payments` binary.
#[derive(Debug)]
pub struct Binary;

impl ServiceBinary for Binary {
    type Config = Config;
    const NAME: &'static str = "era-payments";
    const DEFAULT_LISTEN_ADDR: SocketAddr = era_kit::config::loopback(50052);

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
