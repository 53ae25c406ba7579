//! era-canvas: Canvas Medical (FHIR): patients, the Rx queue, intake records, practitioners, prescriptions, communications, schedules.

use std::net::SocketAddr;

use era_kit::{
    auth::Authenticator,
    cli::{BoxFuture, ServiceBinary},
    config::ServiceConfig,
    server::GrpcServer,
};
use era_proto::canvas::v1::canvas_service_server::CanvasServiceServer;
use sqlx::{migrate::Migrator, PgPool};
use tokio::net::TcpListener;

mod grpc;

pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/canvas");

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
        .add_service(CanvasServiceServer::new(grpc::Service))
        .serve(listener, shutdown)
        .await
}

/// The `era-canvas` binary.
#[derive(Debug)]
pub struct Binary;

impl ServiceBinary for Binary {
    type Config = Config;
    const NAME: &'static str = "era-canvas";
    const DEFAULT_LISTEN_ADDR: SocketAddr = era_kit::config::loopback(50051);

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
