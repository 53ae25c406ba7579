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
    /// The API key SendGrid's mail/send accepts (`Authorization: Bearer ...`).
    #[arg(
        long,
        env = "SENDGRID_API_KEY",
        default_value = era_sandbox::state::DEFAULT_SENDGRID_API_KEY,
        hide_env_values = true
    )]
    sendgrid_api_key: String,
    /// The Twilio Account SID (`AC...`) whose Messages resource is served.
    #[arg(long, env = "TWILIO_ACCOUNT_SID", default_value = era_sandbox::state::DEFAULT_TWILIO_ACCOUNT_SID)]
    twilio_account_sid: String,
    /// The Twilio auth token requests authenticate with and status callbacks are signed with.
    #[arg(
        long,
        env = "TWILIO_AUTH_TOKEN",
        default_value = era_sandbox::state::DEFAULT_TWILIO_AUTH_TOKEN,
        hide_env_values = true
    )]
    twilio_auth_token: String,
    /// `From` numbers the Twilio account owns, comma-separated (E.164); others fail with 21606.
    #[arg(
        long,
        env = "TWILIO_FROM_NUMBERS",
        value_delimiter = ',',
        default_values_t = era_sandbox::state::DEFAULT_TWILIO_FROM_NUMBERS.iter().map(|n| (*n).to_owned())
    )]
    twilio_from_numbers: Vec<String>,
    /// The HubSpot private app token the conversations API accepts (`Authorization: Bearer ...`).
    #[arg(
        long,
        env = "HUBSPOT_ACCESS_TOKEN",
        default_value = era_sandbox::state::DEFAULT_HUBSPOT_TOKEN,
        hide_env_values = true
    )]
    hubspot_access_token: String,
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
    // Twilio's clients build URLs from the SID and some check its shape.
    let sid = &config.twilio_account_sid;
    if !(sid.len() == 34 && sid.starts_with("AC") && sid[2..].bytes().all(|b| b.is_ascii_hexdigit())) {
        eprintln!("era-sandbox: TWILIO_ACCOUNT_SID must be AC followed by 32 hex digits");
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
        sendgrid_api_key: config.sendgrid_api_key,
        twilio_account_sid: config.twilio_account_sid,
        twilio_auth_token: config.twilio_auth_token,
        twilio_from_numbers: config
            .twilio_from_numbers
            .into_iter()
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .collect(),
        hubspot_token: config.hubspot_access_token,
    });
    match era_sandbox::run(sandbox, listener, era_kit::server::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("era-sandbox: {e:#}");
            ExitCode::FAILURE
        }
    }
}
