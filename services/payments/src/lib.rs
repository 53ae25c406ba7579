//! era-payments: Stripe: setup intents, saved cards (payment holds), off-session charges, refunds, discount codes, webhooks.

use std::net::SocketAddr;

use era_kit::{
    auth::Authenticator,
    cli::{BoxFuture, ServiceBinary},
    config::ServiceConfig,
    server::GrpcServer,
};
use era_proto::payments::v1::payments_service_server::PaymentsServiceServer;
use sqlx::{migrate::Migrator, PgPool};
use tokio::net::TcpListener;

mod grpc;

pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/payments");

/// The service has no settings of its own yet.
pub type Config = ServiceConfig;

/// Serves the service on `listener` until `shutdown` resolves. The database must be migrated.
pub async fn run(
    config: Config,
    listener: TcpListener,
    _pool: PgPool,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    GrpcServer::new(Authenticator::new(&config.auth))
        .add_service(PaymentsServiceServer::new(grpc::Service))
        .serve(listener, shutdown)
        .await
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

    fn run(
        config: Config,
        listener: TcpListener,
        pool: PgPool,
        shutdown: BoxFuture<()>,
    ) -> BoxFuture<anyhow::Result<()>> {
        Box::pin(run(config, listener, pool, shutdown))
    }
}
