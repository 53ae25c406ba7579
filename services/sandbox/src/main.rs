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
    /// The OAuth client id Canvas's token endpoint accepts.
    #[arg(long, env = "CANVAS_CLIENT_ID", default_value = "era-sandbox-canvas-client")]
    canvas_client_id: String,
    /// The matching client secret.
    #[arg(
        long,
        env = "CANVAS_CLIENT_SECRET",
        default_value = "era-sandbox-canvas-secret",
        hide_env_values = true
    )]
    canvas_client_secret: String,
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
    let sandbox = era_sandbox::Sandbox::with_config(era_sandbox::SandboxConfig {
        canvas_client_id: config.canvas_client_id,
        canvas_client_secret: config.canvas_client_secret,
    });
    match era_sandbox::run(sandbox, listener, era_kit::server::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("era-sandbox: {e:#}");
            ExitCode::FAILURE
        }
    }
}
