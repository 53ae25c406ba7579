//! era-pharmacy-routing: which pharmacy and prescriber serve a patient's state, the medication
//! catalogue, and (from later issues) the approval pipeline, pharmacy orders, shipments and refills.

use std::net::SocketAddr;

use era_kit::{
    auth::Authenticator,
    cli::{BoxFuture, ServiceBinary},
    config::ServiceConfig,
    server::GrpcServer,
};
use era_proto::pharmacy_routing::v1::pharmacy_routing_service_server::PharmacyRoutingServiceServer;
use sqlx::{migrate::Migrator, PgPool};
use tokio::net::TcpListener;

pub mod domain;
pub mod error;
mod grpc;
pub mod pharmacies;
pub mod store;

pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/pharmacy-routing");

/// The service has no settings of its own yet.
pub type Config = ServiceConfig;

/// Serves the routing service on `listener` until `shutdown` resolves. The database must be migrated.
pub async fn run(
    config: Config,
    listener: TcpListener,
    pool: PgPool,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let service = grpc::RoutingService::new(pool);
    GrpcServer::new(Authenticator::new(&config.auth))
        .add_service(PharmacyRoutingServiceServer::new(service))
        .serve(listener, shutdown)
        .await
}

/// The `era-pharmacy-routing` binary.
#[derive(Debug)]
pub struct Binary;

impl ServiceBinary for Binary {
    type Config = Config;
    const NAME: &'static str = "era-pharmacy-routing";
    const DEFAULT_LISTEN_ADDR: SocketAddr = era_kit::config::loopback(50053);

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
