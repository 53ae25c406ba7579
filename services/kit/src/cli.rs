//! The entry point every service binary shares: parse and validate configuration, then `serve`
//! (the default; migrates first), `migrate`, or `healthcheck`. Keeps each `main.rs` to one line.

use std::{fmt::Debug, future::Future, net::SocketAddr, pin::Pin, process::ExitCode};

use clap::{CommandFactory, FromArgMatches};
use sqlx::{migrate::Migrator, PgPool};
use tokio::net::TcpListener;

use crate::config::{ConfigError, ServiceConfig};

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

#[derive(Clone, Debug, clap::Subcommand)]
pub enum Command {
    /// Migrate the database, then serve until SIGTERM or SIGINT (the default).
    Serve,
    /// Apply this service's migrations and exit.
    Migrate,
    /// Exit 0 if the server at LISTEN_ADDR reports SERVING (for container health checks).
    Healthcheck,
}

#[derive(Debug, clap::Parser)]
struct Cli<C: clap::Args> {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: C,
}

/// What the shared entry point needs to know about a service.
pub trait ServiceBinary {
    type Config: clap::Args + AsRef<ServiceConfig> + Clone + Debug + Send + 'static;
    /// Binary name, e.g. `era-pharmacy-routing`.
    const NAME: &'static str;
    /// Where it listens when `LISTEN_ADDR` is unset.
    const DEFAULT_LISTEN_ADDR: SocketAddr;
    fn migrator() -> &'static Migrator;
    /// Checks beyond the shared blocks; the default checks only those.
    fn validate(config: &Self::Config) -> Result<(), ConfigError> {
        config.as_ref().validate()
    }
    fn run(
        config: Self::Config,
        listener: TcpListener,
        pool: PgPool,
        shutdown: BoxFuture<()>,
    ) -> BoxFuture<anyhow::Result<()>>;
}

/// The binary's command line, as `main` parses it (tests check it is well formed).
pub fn command<S: ServiceBinary>() -> clap::Command {
    Cli::<S::Config>::command().name(S::NAME)
}

/// Command-line arguments saying what the environment `env` would: each variable as the long flag of
/// the setting that reads it, so a deployment's variables can be checked without setting them in this
/// process. A variable no setting reads is an error naming it (a typo would otherwise be ignored).
pub fn args_from_env(cmd: &clap::Command, env: &[(String, String)]) -> Result<Vec<String>, String> {
    let mut args = vec![cmd.get_name().to_owned()];
    for (var, value) in env {
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_env().is_some_and(|e| e == var.as_str()))
            .ok_or_else(|| format!("{var} is not a setting of {}", cmd.get_name()))?;
        let long = arg
            .get_long()
            .ok_or_else(|| format!("{var} has no flag in {}", cmd.get_name()))?;
        args.push(format!("--{long}={value}"));
    }
    Ok(args)
}

/// Parses and validates `S`'s configuration from `env` as its `main` would (see [`args_from_env`]).
pub fn check_env<S: ServiceBinary>(env: &[(String, String)]) -> Result<(), String> {
    let cmd = command::<S>();
    let args = args_from_env(&cmd, env)?;
    let matches = cmd.try_get_matches_from(args).map_err(|e| e.to_string())?;
    let cli = Cli::<S::Config>::from_arg_matches(&matches).map_err(|e| e.to_string())?;
    S::validate(&cli.config).map_err(|e| e.to_string())
}

pub fn main<S: ServiceBinary>() -> ExitCode {
    let matches = command::<S>().get_matches();
    let cli = match Cli::<S::Config>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let Err(e) = S::validate(&cli.config) {
        eprintln!("{}: configuration error: {e}", S::NAME);
        return ExitCode::from(2);
    }
    crate::telemetry::init(&cli.config.as_ref().logging);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{}: cannot start the runtime: {e}", S::NAME);
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(execute::<S>(cli.command.unwrap_or(Command::Serve), cli.config));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "{} stopped", S::NAME);
            eprintln!("{}: {e:#}", S::NAME);
            ExitCode::FAILURE
        }
    }
}

async fn execute<S: ServiceBinary>(command: Command, config: S::Config) -> anyhow::Result<()> {
    let addr = config.as_ref().listen_addr.unwrap_or(S::DEFAULT_LISTEN_ADDR);
    match command {
        Command::Healthcheck => {
            let host = if addr.ip().is_unspecified() {
                "127.0.0.1".to_owned()
            } else {
                addr.ip().to_string()
            };
            let tls = config.as_ref().mesh.tls()?;
            let scheme = if tls.is_some() { "https" } else { "http" };
            let url = format!("{scheme}://{host}:{}", addr.port());
            if crate::server::check_health(&url, tls.as_ref(), "").await? {
                Ok(())
            } else {
                anyhow::bail!("{url} is not SERVING")
            }
        }
        Command::Migrate => {
            let pool = crate::db::connect(&config.as_ref().database).await?;
            crate::db::migrate(&pool, S::migrator()).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Serve => {
            let pool = crate::db::connect(&config.as_ref().database).await?;
            crate::db::migrate(&pool, S::migrator()).await?;
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on LISTEN_ADDR={addr}: {e}"))?;
            tracing::info!(%addr, "{} listening", S::NAME);
            S::run(config, listener, pool, Box::pin(crate::server::shutdown_signal())).await
        }
    }
}
