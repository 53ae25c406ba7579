//! era-canvas: the mesh's only door to Canvas Medical (FHIR): patients and the public intake flow,
//! immutable encrypted intake records, the "Rx Review" queue with its H&P package, practitioners,
//! prescriptions, patient-practitioner messages, schedules, slots and appointments.

use std::{net::SocketAddr, sync::Arc};

use era_kit::{
    auth::Authenticator,
    cli::{BoxFuture, ServiceBinary},
    config::ConfigError,
    server::GrpcServer,
};
use era_proto::canvas::v1::canvas_service_server::CanvasServiceServer;
use sqlx::{migrate::Migrator, PgPool};
use tokio::net::TcpListener;

mod app;
mod chart;
pub mod config;
pub mod convert;
mod error;
pub mod fhir;
mod grpc;
mod identity;
mod patients;
mod pdf;
mod queue;
pub mod store;

pub use config::Config;
pub use error::Error;

pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/canvas");

/// Serves the service on `listener` until `shutdown` resolves. The database must be migrated.
pub async fn run(
    config: Config,
    listener: TcpListener,
    pool: PgPool,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let keys = config.records.keyring().map_err(|e| anyhow::anyhow!("{e}"))?;
    let app = Arc::new(app::App::new(&config, store::Store::new(pool, keys))?);
    GrpcServer::new(Authenticator::new(&config.service.auth))
        .tls(config.service.mesh.tls()?)
        .add_service(CanvasServiceServer::new(grpc::Service { app }))
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
