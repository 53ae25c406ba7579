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
    /// Refused when `production`: the sandbox stands in for vendors and belongs only in development.
    #[arg(long = "era-env", env = "ERA_ENV", default_value = "development")]
    env: era_kit::config::Environment,
    /// Socket the sandbox listens on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8090")]
    listen_addr: SocketAddr,
    /// The token `/_sandbox` (control, ledger, inbox) requires, as `Authorization: Bearer <token>`;
    /// at least 16 characters, letters, digits, `-` and `_` (the inbox keeps it in a cookie).
    #[arg(long, env = "SANDBOX_CONTROL_TOKEN", hide_env_values = true)]
    control_token: String,
    /// Host names `/_sandbox` answers besides loopback ones, comma-separated (e.g. the service name
    /// a compose network gives the sandbox).
    #[arg(long, env = "SANDBOX_ALLOWED_HOSTS", value_delimiter = ',', default_value = "")]
    allowed_hosts: Vec<String>,
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
    /// Base URL the clinic's Canvas plugin POSTs its signed events under (`{url}/prescription`,
    /// `{url}/patient-created`), e.g. `http://127.0.0.1:8080/api/webhooks/canvas`; unset, they are
    /// only stored (and can be set at run time with `PUT /_sandbox/canvas/webhook`).
    #[arg(long, env = "CANVAS_PLUGIN_WEBHOOK_URL")]
    canvas_plugin_webhook_url: Option<String>,
    /// The secret the Canvas plugin signs its events with (`X-Signature`): the edge's
    /// `ADMIN_JWT_SECRET`, which the plugin calls `CANVAS_AUTH_SECRET`.
    #[arg(
        long,
        env = "CANVAS_AUTH_SECRET",
        default_value = era_sandbox::state::DEFAULT_CANVAS_AUTH_SECRET,
        hide_env_values = true
    )]
    canvas_auth_secret: String,
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
    /// The Zoom account whose Server-to-Server OAuth app the token endpoint serves (`account_id`).
    #[arg(long, env = "ZOOM_ACCOUNT_ID", default_value = era_sandbox::state::DEFAULT_ZOOM_ACCOUNT_ID)]
    zoom_account_id: String,
    /// The Zoom app's client id (HTTP Basic user at `/zoom/oauth/token`).
    #[arg(long, env = "ZOOM_CLIENT_ID", default_value = era_sandbox::state::DEFAULT_ZOOM_CLIENT_ID)]
    zoom_client_id: String,
    /// The Zoom app's client secret.
    #[arg(
        long,
        env = "ZOOM_CLIENT_SECRET",
        default_value = era_sandbox::state::DEFAULT_ZOOM_CLIENT_SECRET,
        hide_env_values = true
    )]
    zoom_client_secret: String,
    /// The FedEx project's API key (`client_id` at `/fedex/oauth/token`).
    #[arg(long, env = "FEDEX_CLIENT_ID", default_value = era_sandbox::state::DEFAULT_FEDEX_CLIENT_ID)]
    fedex_client_id: String,
    /// The FedEx project's secret key (`client_secret`).
    #[arg(
        long,
        env = "FEDEX_CLIENT_SECRET",
        default_value = era_sandbox::state::DEFAULT_FEDEX_CLIENT_SECRET,
        hide_env_values = true
    )]
    fedex_client_secret: String,
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
    /// The `prx-api-key` PioneerRx's (GMP's) order API accepts.
    #[arg(
        long,
        env = "PIONEERRX_API_KEY",
        default_value = era_sandbox::state::DEFAULT_PIONEERRX_API_KEY,
        hide_env_values = true
    )]
    pioneerrx_api_key: String,
    /// The shared secret PioneerRx checks `prx-signature` with.
    #[arg(
        long,
        env = "PIONEERRX_SHARED_SECRET",
        default_value = era_sandbox::state::DEFAULT_PIONEERRX_SHARED_SECRET,
        hide_env_values = true
    )]
    pioneerrx_shared_secret: String,
    /// Ship-to states PioneerRx (GMP) serves, comma-separated; others are refused.
    #[arg(
        long,
        env = "PIONEERRX_STATES",
        value_delimiter = ',',
        default_values_t = era_sandbox::state::DEFAULT_PIONEERRX_STATES.iter().map(|s| (*s).to_owned())
    )]
    pioneerrx_states: Vec<String>,
    /// The HTTP Basic username Boothwyn's LifeFile API accepts.
    #[arg(long, env = "BOOTHWYN_USERNAME", default_value = era_sandbox::state::DEFAULT_BOOTHWYN_USERNAME)]
    boothwyn_username: String,
    /// The matching password.
    #[arg(
        long,
        env = "BOOTHWYN_PASSWORD",
        default_value = era_sandbox::state::DEFAULT_BOOTHWYN_PASSWORD,
        hide_env_values = true
    )]
    boothwyn_password: String,
    /// The `X-Vendor-ID` Boothwyn's LifeFile API expects.
    #[arg(long, env = "BOOTHWYN_VENDOR_ID", default_value = era_sandbox::state::DEFAULT_BOOTHWYN_VENDOR_ID)]
    boothwyn_vendor_id: String,
    /// The `X-Location-ID` Boothwyn's LifeFile API expects.
    #[arg(long, env = "BOOTHWYN_LOCATION_ID", default_value = era_sandbox::state::DEFAULT_BOOTHWYN_LOCATION_ID)]
    boothwyn_location_id: String,
    /// The `X-API-Network-ID` Boothwyn's LifeFile API expects.
    #[arg(long, env = "BOOTHWYN_NETWORK_ID", default_value = era_sandbox::state::DEFAULT_BOOTHWYN_NETWORK_ID)]
    boothwyn_network_id: String,
    /// Ship-to states Boothwyn serves, comma-separated; others are refused.
    #[arg(
        long,
        env = "BOOTHWYN_STATES",
        value_delimiter = ',',
        default_values_t = era_sandbox::state::default_lifefile_states()
    )]
    boothwyn_states: Vec<String>,
    /// The HTTP Basic username Strive's LifeFile API accepts.
    #[arg(long, env = "STRIVE_USERNAME", default_value = era_sandbox::state::DEFAULT_STRIVE_USERNAME)]
    strive_username: String,
    /// The matching password.
    #[arg(
        long,
        env = "STRIVE_PASSWORD",
        default_value = era_sandbox::state::DEFAULT_STRIVE_PASSWORD,
        hide_env_values = true
    )]
    strive_password: String,
    /// The `X-Vendor-ID` Strive's LifeFile API expects.
    #[arg(long, env = "STRIVE_VENDOR_ID", default_value = era_sandbox::state::DEFAULT_STRIVE_VENDOR_ID)]
    strive_vendor_id: String,
    /// The `X-Location-ID` Strive's LifeFile API expects.
    #[arg(long, env = "STRIVE_LOCATION_ID", default_value = era_sandbox::state::DEFAULT_STRIVE_LOCATION_ID)]
    strive_location_id: String,
    /// The `X-API-Network-ID` Strive's LifeFile API expects.
    #[arg(long, env = "STRIVE_NETWORK_ID", default_value = era_sandbox::state::DEFAULT_STRIVE_NETWORK_ID)]
    strive_network_id: String,
    /// Ship-to states Strive serves, comma-separated; others are refused.
    #[arg(
        long,
        env = "STRIVE_STATES",
        value_delimiter = ',',
        default_values_t = era_sandbox::state::default_lifefile_states()
    )]
    strive_states: Vec<String>,
    /// Base URL pharmacy status callbacks are POSTed under (`{url}/{pharmacy}`); unset, they are
    /// only stored (and can be set at run time with `PUT /_sandbox/pharmacy/webhook`).
    #[arg(long, env = "PHARMACY_WEBHOOK_URL")]
    pharmacy_webhook_url: Option<String>,
    /// The secret GMP's PioneerRx signs its callbacks with (`X-Pharmacy-Signature`).
    #[arg(
        long,
        env = "PIONEERRX_WEBHOOK_SECRET",
        default_value = era_sandbox::state::DEFAULT_PIONEERRX_WEBHOOK_SECRET,
        hide_env_values = true
    )]
    pioneerrx_webhook_secret: String,
    /// Boothwyn's callback secret.
    #[arg(
        long,
        env = "BOOTHWYN_WEBHOOK_SECRET",
        default_value = era_sandbox::state::DEFAULT_BOOTHWYN_WEBHOOK_SECRET,
        hide_env_values = true
    )]
    boothwyn_webhook_secret: String,
    /// Strive's callback secret.
    #[arg(
        long,
        env = "STRIVE_WEBHOOK_SECRET",
        default_value = era_sandbox::state::DEFAULT_STRIVE_WEBHOOK_SECRET,
        hide_env_values = true
    )]
    strive_webhook_secret: String,
    /// When set, new pharmacy orders move processing → shipped → delivered on their own, this many
    /// seconds per step.
    #[arg(long, env = "PHARMACY_AUTO_ADVANCE_SECS")]
    pharmacy_auto_advance_secs: Option<u64>,
    #[command(flatten)]
    logging: LoggingConfig,
}

/// Trimmed, upper-case state codes, blanks dropped.
fn states(list: Vec<String>) -> Vec<String> {
    list.into_iter()
        .map(|s| s.trim().to_ascii_uppercase())
        .filter(|s| !s.is_empty())
        .collect()
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    era_kit::telemetry::init(&config.logging);
    if config.env == era_kit::config::Environment::Production {
        eprintln!(
            "era-sandbox: ERA_ENV=production: the sandbox stands in for the vendors and never runs in production"
        );
        return ExitCode::from(2);
    }
    let token = &config.control_token;
    if token.len() < 16
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        eprintln!("era-sandbox: SANDBOX_CONTROL_TOKEN must be at least 16 letters, digits, '-' or '_'");
        return ExitCode::from(2);
    }
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
        pioneerrx_api_key: config.pioneerrx_api_key,
        pioneerrx_shared_secret: config.pioneerrx_shared_secret,
        pioneerrx_states: states(config.pioneerrx_states),
        boothwyn: era_sandbox::LifeFileAccount {
            username: config.boothwyn_username,
            password: config.boothwyn_password,
            vendor_id: config.boothwyn_vendor_id,
            location_id: config.boothwyn_location_id,
            network_id: config.boothwyn_network_id,
            states: states(config.boothwyn_states),
        },
        strive: era_sandbox::LifeFileAccount {
            username: config.strive_username,
            password: config.strive_password,
            vendor_id: config.strive_vendor_id,
            location_id: config.strive_location_id,
            network_id: config.strive_network_id,
            states: states(config.strive_states),
        },
        pharmacy_webhook_url: config.pharmacy_webhook_url.filter(|u| !u.is_empty()),
        pharmacy_webhook_secrets: era_sandbox::state::PharmacyWebhookSecrets {
            pioneerrx: config.pioneerrx_webhook_secret,
            boothwyn: config.boothwyn_webhook_secret,
            strive: config.strive_webhook_secret,
        },
        pharmacy_auto_advance_secs: config.pharmacy_auto_advance_secs,
        canvas_plugin_webhook_url: config.canvas_plugin_webhook_url.filter(|u| !u.is_empty()),
        canvas_plugin_secret: config.canvas_auth_secret,
        zoom_account_id: config.zoom_account_id,
        zoom_client_id: config.zoom_client_id,
        zoom_client_secret: config.zoom_client_secret,
        zoom_users: era_sandbox::state::default_zoom_users(),
        fedex_client_id: config.fedex_client_id,
        fedex_client_secret: config.fedex_client_secret,
        control_token: Some(config.control_token),
        allowed_hosts: config
            .allowed_hosts
            .into_iter()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .collect(),
    });
    match era_sandbox::run(sandbox, listener, era_kit::server::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("era-sandbox: {e:#}");
            ExitCode::FAILURE
        }
    }
}
