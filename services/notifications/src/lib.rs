//! era-notifications: email and SMS (SendGrid, Twilio) through a durable outbox, patient notifications, HubSpot conversations, login codes.

use std::net::SocketAddr;

use era_kit::{
    auth::Authenticator,
    cli::{BoxFuture, ServiceBinary},
    config::ServiceConfig,
    server::GrpcServer,
};
use era_proto::notifications::v1::notifications_service_server::NotificationsServiceServer;
use sqlx::{migrate::Migrator, PgPool};
use tokio::net::TcpListener;

mod grpc;

pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/notifications");

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
        .add_service(NotificationsServiceServer::new(grpc::Service))
        .serve(listener, shutdown)
        .await
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

    fn run(
        config: Config,
        listener: TcpListener,
        pool: PgPool,
        shutdown: BoxFuture<()>,
    ) -> BoxFuture<anyhow::Result<()>> {
        Box::pin(run(config, listener, pool, shutdown))
    }
}
