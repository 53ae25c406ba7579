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
    /// The secret key Stripe's API accepts (Bearer or Basic); must start with `sk_test_`.
    #[arg(
        long,
        env = "STRIPE_SECRET_KEY",
        default_value = era_sandbox::state::DEFAULT_STRIPE_SECRET_KEY,
        hide_env_values = true
    )]
    stripe_secret_key: String,
    /// Where signed Stripe events are POSTed; unset, events are only stored (and can be set at run
    /// time with `PUT /_sandbox/stripe/webhook`).
    #[arg(long, env = "STRIPE_WEBHOOK_URL")]
    stripe_webhook_url: Option<String>,
    /// The `whsec_...` secret Stripe events are signed with.
    #[arg(
        long,
        env = "STRIPE_WEBHOOK_SECRET",
        default_value = era_sandbox::state::DEFAULT_STRIPE_WEBHOOK_SECRET,
        hide_env_values = true
    )]
    stripe_webhook_secret: String,
    #[command(flatten)]
    logging: LoggingConfig,
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    era_kit::telemetry::init(&config.logging);
    if !config.stripe_secret_key.starts_with("sk_test_") {
        eprintln!("era-sandbox: STRIPE_SECRET_KEY must be a test key (sk_test_...)");
        return ExitCode::FAILURE;
    }
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
        stripe_secret_key: config.stripe_secret_key,
        stripe_webhook_url: config.stripe_webhook_url.filter(|u| !u.is_empty()),
        stripe_webhook_secret: config.stripe_webhook_secret,
    });
    match era_sandbox::run(sandbox, listener, era_kit::server::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("era-sandbox: {e:#}");
            ExitCode::FAILURE
        }
    }
}
