//! `era-edge`: parse and validate configuration, then serve, migrate or health-check.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser};
use era_edge::Config;

// glibc's allocator spends a large share of each small request consolidating blocks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "era-edge", about = "The REST edge of the Era integration mesh")]
struct Cli {
    #[command(subcommand)]
    command: Option<era_kit::cli::Command>,
    #[command(flatten)]
    config: Config,
}

fn main() -> ExitCode {
    let cli = match Cli::from_arg_matches(&Cli::command().get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let Err(e) = cli.config.validate() {
        eprintln!("era-edge: configuration error: {e}");
        return ExitCode::from(2);
    }
    era_kit::telemetry::init(&cli.config.logging);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("era-edge: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(cli.command.unwrap_or(era_kit::cli::Command::Serve), cli.config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("era-edge: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(command: era_kit::cli::Command, config: Config) -> anyhow::Result<()> {
    use era_kit::cli::Command;
    match command {
        Command::Healthcheck => {
            let addr = config.listen_addr;
            let host = if addr.ip().is_unspecified() {
                "127.0.0.1".to_owned()
            } else {
                addr.ip().to_string()
            };
            era_edge::healthcheck(&format!("http://{host}:{}/healthz", addr.port())).await
        }
        Command::Migrate => {
            let pool = era_kit::db::connect(&config.database).await?;
            era_kit::db::migrate(&pool, &era_edge::MIGRATOR).await
        }
        Command::Serve => {
            let pool = era_kit::db::connect(&config.database).await?;
            era_kit::db::migrate(&pool, &era_edge::MIGRATOR).await?;
            let listener = tokio::net::TcpListener::bind(config.listen_addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on LISTEN_ADDR={}: {e}", config.listen_addr))?;
            tracing::info!(addr = %config.listen_addr, "era-edge listening");
            era_edge::run(config, listener, pool, era_kit::server::shutdown_signal()).await
        }
    }
}
