//! era-pharmacy-routing: which pharmacy and prescriber serve a patient's state, the medication
//! catalogue, the approval pipeline, pharmacy orders and their callbacks, shipments and refills.

use std::{net::SocketAddr, sync::Arc};

use era_kit::{
    auth::Authenticator,
    cli::{BoxFuture, ServiceBinary},
    config::ConfigError,
    server::GrpcServer,
};
use era_proto::pharmacy_routing::v1::pharmacy_routing_service_server::PharmacyRoutingServiceServer;
use sqlx::{migrate::Migrator, PgPool};
use tokio::net::TcpListener;

pub mod carriers;
pub mod config;
pub mod domain;
pub mod error;
mod grpc;
pub mod pharmacies;
mod pipeline;
pub mod store;

pub use config::Config;

pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/pharmacy-routing");

/// The database role the service's queries run as (migration 0006 grants it what it may do).
pub const SERVICE_ROLE: &str = "era_pharmacy_routing_service";

/// Serves the routing service on `listener` until `shutdown` resolves. The database must be migrated.
pub async fn run(
    config: Config,
    listener: TcpListener,
    pool: PgPool,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Everything the service does runs as its own role (migration 0006), not as the tables' owner.
    let pool = era_kit::db::as_role(&pool, SERVICE_ROLE);
    let matrix = Arc::new(tokio::sync::OnceCell::new());
    let pipeline = Arc::new(pipeline::Pipeline::new(&config, pool.clone(), matrix.clone())?);
    // Runs are durable and every write is fenced, so stopping the worker anywhere loses nothing:
    // a held run's lease runs out and another replica resumes it.
    let worker = config.pipeline.worker.then(|| {
        (
            tokio::spawn(pipeline::run_worker(pipeline.clone())),
            // Refills come due and shipments are tracked on the same replicas that resume runs;
            // refills are claimed with SKIP LOCKED and tracking refreshed under a lock, so replicas
            // never start one refill twice or ask FedEx twice.
            tokio::spawn(pipeline::run_clock(pipeline.clone())),
        )
    });
    let service = grpc::RoutingService::new(pool, matrix, pipeline);
    let served = GrpcServer::new(Authenticator::new(&config.service.auth))
        .tls(config.service.mesh.tls()?)
        .add_service(PharmacyRoutingServiceServer::new(service))
        .serve(listener, shutdown)
        .await;
    if let Some((runs, refills)) = worker {
        runs.abort();
        refills.abort();
    }
    served
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
