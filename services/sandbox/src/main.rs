//! `era-sandbox`: the vendor simulators on their own, for a staging environment.

use std::{net::SocketAddr, process::ExitCode};

use clap::Parser;
use era_kit::config::LoggingConfig;

// glibc's allocator spends a large share of each small request consolidating blocks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "era-sandbox", about = "Simulators of the mesh's external vendors")]
struct Config {
    /// Socket the sandbox listens on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8090")]
    listen_addr: SocketAddr,
    #[command(flatten)]
    logging: LoggingConfig,
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    era_kit::telemetry::init(&config.logging);
    let listener = match tokio::net::TcpListener::bind(config.listen_addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("era-sandbox: cannot listen on LISTEN_ADDR={}: {e}", config.listen_addr);
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(addr = %config.listen_addr, "era-sandbox listening");
    match era_sandbox::run(
        era_sandbox::Sandbox::new(),
        listener,
        era_kit::server::shutdown_signal(),
    )
    .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("era-sandbox: {e:#}");
            ExitCode::FAILURE
        }
    }
}
