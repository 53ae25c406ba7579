//! era-scheduling: telehealth appointments. Availability from the practitioners' Canvas schedules
//! (those licensed in the patient's state), booking exactly once (the row first, then a durable job
//! that makes the Zoom meeting, the Canvas Appointment and the patient's confirmation and reminder),
//! cancellation and rescheduling through the same job, and visit outcomes read back from Canvas.

use std::{net::SocketAddr, sync::Arc};

use era_kit::{
    auth::Authenticator,
    cli::{BoxFuture, ServiceBinary},
    config::ConfigError,
    jobs::{Queue, Runner},
    server::GrpcServer,
};
use era_proto::scheduling::v1::scheduling_service_server::SchedulingServiceServer;
use sqlx::{migrate::Migrator, PgPool};
use tokio::net::TcpListener;

mod app;
mod availability;
mod booking;
pub mod config;
mod error;
mod grpc;
mod reconcile;
mod store;
mod visits;
mod zones;
mod zoom;

pub use config::Config;
pub use error::Error;

pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/scheduling");

/// Serves the service on `listener` until `shutdown` resolves. The database must be migrated.
pub async fn run(
    config: Config,
    listener: TcpListener,
    pool: PgPool,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    config.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    era_kit::jobs::install(&pool).await?;
    let app = Arc::new(app::App::new(&config, store::Store::new(pool))?);
    let mut workers = tokio::task::JoinSet::new();
    if config.engine.worker {
        let runner = Runner::new(
            app.queue.clone(),
            Arc::new(reconcile::Reconciler(app.clone())),
            config.engine.runner(),
            app.failpoints.clone(),
        );
        workers.spawn(runner.run());
        workers.spawn(visits::run(
            app.clone(),
            std::time::Duration::from_secs(config.engine.status_every_secs),
        ));
    }
    let served = GrpcServer::new(Authenticator::new(&config.service.auth))
        .tls(config.service.mesh.tls()?)
        .add_service(SchedulingServiceServer::new(grpc::Service(app)))
        .serve(listener, shutdown)
        .await;
    workers.abort_all();
    served
}

/// The job queue of a scheduling database, for tests that read a booking's job.
pub fn queue(pool: PgPool) -> Queue {
    Queue::new(pool)
}

/// The `era-scheduling` binary.
#[derive(Debug)]
pub struct Binary;

impl ServiceBinary for Binary {
    type Config = Config;
    const NAME: &'static str = "era-scheduling";
    const DEFAULT_LISTEN_ADDR: SocketAddr = era_kit::config::loopback(50054);

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
