//! The whole mesh in one process: the vendor sandbox, the five services and the edge, each on its
//! own socket and talking real gRPC over loopback, each with its own database on one PostgreSQL
//! server. `era-dev` runs it on the standard ports; tests and the benchmark run it on port 0.

pub mod postgres;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::Context as _;
use era_kit::{
    config::{AuthConfig, DatabaseConfig, LoggingConfig, MeshConfig, ServiceConfig},
    dev_ca::DevCa,
    SecretString,
};
use secrecy::ExposeSecret;
use sqlx::PgPool;
use tokio::{net::TcpListener, sync::watch, task::JoinSet};

/// Listening ports; 0 picks a free one.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    pub edge: u16,
    pub sandbox: u16,
    pub canvas: u16,
    pub payments: u16,
    pub pharmacy_routing: u16,
    pub scheduling: u16,
    pub notifications: u16,
}

impl Ports {
    /// ARCHITECTURE.md's ports.
    pub const STANDARD: Ports = Ports {
        edge: 8080,
        sandbox: 8090,
        canvas: 50051,
        payments: 50052,
        pharmacy_routing: 50053,
        scheduling: 50054,
        notifications: 50055,
    };
    pub const ANY: Ports = Ports {
        edge: 0,
        sandbox: 0,
        canvas: 0,
        payments: 0,
        pharmacy_routing: 0,
        scheduling: 0,
        notifications: 0,
    };
}

/// The mesh's secrets. Missing ones are generated.
#[derive(Clone)]
pub struct Secrets {
    pub admin_secret: SecretString,
    pub admin_jwt_secret: SecretString,
    pub patient_jwt_secret: SecretString,
    pub internal_token_secret: SecretString,
    /// `RECORDS_KEYS`: versioned AES-256 keys of the intake records (`1:<base64>`).
    pub records_keys: SecretString,
    pub records_active_key: u32,
    pub blind_index_key: SecretString,
    /// The OAuth client the canvas service uses and the sandbox accepts.
    pub canvas_client_id: String,
    pub canvas_client_secret: SecretString,
    /// The Stripe secret key payments uses and the sandbox accepts (`sk_test_...`).
    pub stripe_secret_key: SecretString,
    /// The secret the sandbox signs Stripe events with and the edge verifies them with.
    pub stripe_webhook_secret: SecretString,
    /// `MESSAGE_KEYS`: versioned AES-256 keys of stored messages (`1:<base64>`).
    pub message_keys: SecretString,
    pub login_code_key: SecretString,
    /// The vendor credentials notifications uses and the sandbox accepts.
    pub sendgrid_api_key: SecretString,
    pub twilio_account_sid: String,
    pub twilio_auth_token: SecretString,
    pub hubspot_token: SecretString,
    /// `PIPELINE_KEYS`: versioned AES-256 keys of approval notes (`1:<base64>`).
    pub pipeline_keys: SecretString,
    /// The secrets the sandbox's pharmacies sign callbacks with and the edge verifies them with,
    /// one per pharmacy.
    pub pioneerrx_webhook_secret: SecretString,
    pub boothwyn_webhook_secret: SecretString,
    pub strive_webhook_secret: SecretString,
    /// The Zoom Server-to-Server OAuth app scheduling uses and the sandbox accepts.
    pub zoom_account_id: String,
    pub zoom_client_id: String,
    pub zoom_client_secret: SecretString,
    /// The FedEx project's API key and secret key pharmacy-routing's FedEx client uses and the
    /// sandbox's FedEx accepts (`FEDEX_CLIENT_ID`, `FEDEX_CLIENT_SECRET`).
    pub fedex_client_id: String,
    pub fedex_client_secret: SecretString,
    /// The token the sandbox's control plane (`/_sandbox`: ledger, faults, inbox) requires.
    pub sandbox_control_token: SecretString,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets { .. }")
    }
}

/// The Zoom account and app ids era-dev uses when the environment names none.
pub const DEV_ZOOM_ACCOUNT_ID: &str = "era-dev-zoom-account";
pub const DEV_ZOOM_CLIENT_ID: &str = "era-dev-zoom-client";
/// The FedEx API key era-dev uses when the environment names none.
pub const DEV_FEDEX_CLIENT_ID: &str = "era-dev-fedex-client";

/// `1:<32 random bytes, base64>`, the shape of `RECORDS_KEYS`.
pub fn random_records_key() -> SecretString {
    use base64::Engine as _;
    let bytes: [u8; 32] = rand::random();
    SecretString::from(format!("1:{}", base64::engine::general_purpose::STANDARD.encode(bytes)))
}

/// A test-mode Stripe key for the sandbox: `sk_test_` and 24 random bytes as hex.
pub fn random_stripe_key() -> SecretString {
    let bytes: [u8; 24] = rand::random();
    SecretString::from(format!("sk_test_{}", hex::encode(bytes)))
}

/// A Stripe-style endpoint secret: `whsec_` and 32 random bytes as hex.
pub fn random_webhook_secret() -> SecretString {
    let bytes: [u8; 32] = rand::random();
    SecretString::from(format!("whsec_{}", hex::encode(bytes)))
}

/// A SendGrid-style API key: `SG.` and random characters.
pub fn random_sendgrid_key() -> SecretString {
    let bytes: [u8; 24] = rand::random();
    SecretString::from(format!("SG.{}", hex::encode(bytes)))
}

/// A HubSpot private-app-style token.
pub fn random_hubspot_token() -> SecretString {
    let bytes: [u8; 16] = rand::random();
    SecretString::from(format!("pat-na1-{}", hex::encode(bytes)))
}

/// A Twilio account SID: `AC` and 32 hex digits.
pub fn random_twilio_sid() -> String {
    let bytes: [u8; 16] = rand::random();
    format!("AC{}", hex::encode(bytes))
}

/// 32 random bytes as hex.
pub fn random_secret() -> SecretString {
    let bytes: [u8; 32] = rand::random();
    SecretString::from(hex::encode(bytes))
}

impl Secrets {
    pub fn generate() -> Self {
        Self {
            admin_secret: random_secret(),
            admin_jwt_secret: random_secret(),
            patient_jwt_secret: random_secret(),
            internal_token_secret: random_secret(),
            records_keys: random_records_key(),
            records_active_key: 1,
            blind_index_key: random_secret(),
            canvas_client_id: "era-dev-canvas".into(),
            canvas_client_secret: random_secret(),
            stripe_secret_key: random_stripe_key(),
            stripe_webhook_secret: random_webhook_secret(),
            message_keys: random_records_key(),
            login_code_key: random_secret(),
            sendgrid_api_key: random_sendgrid_key(),
            twilio_account_sid: random_twilio_sid(),
            twilio_auth_token: random_secret(),
            hubspot_token: random_hubspot_token(),
            pipeline_keys: random_records_key(),
            pioneerrx_webhook_secret: random_secret(),
            boothwyn_webhook_secret: random_secret(),
            strive_webhook_secret: random_secret(),
            zoom_account_id: DEV_ZOOM_ACCOUNT_ID.into(),
            zoom_client_id: DEV_ZOOM_CLIENT_ID.into(),
            zoom_client_secret: random_secret(),
            fedex_client_id: DEV_FEDEX_CLIENT_ID.into(),
            fedex_client_secret: random_secret(),
            sandbox_control_token: random_secret(),
        }
    }

    /// Each secret from its environment variable when set, generated otherwise. Returns the names
    /// of the generated ones.
    pub fn from_env_or_generate() -> (Self, Vec<&'static str>) {
        let mut generated = Vec::new();
        let mut take = |var: &'static str| match std::env::var(var) {
            Ok(v) if !v.is_empty() => SecretString::from(v),
            _ => {
                generated.push(var);
                random_secret()
            }
        };
        let admin_secret = take("ADMIN_SECRET");
        let admin_jwt_secret = match std::env::var("CANVAS_AUTH_SECRET") {
            Ok(v) if !v.is_empty() && std::env::var("ADMIN_JWT_SECRET").is_err() => SecretString::from(v),
            _ => take("ADMIN_JWT_SECRET"),
        };
        let patient_jwt_secret = take("PATIENT_JWT_SECRET");
        let internal_token_secret = take("INTERNAL_TOKEN_SECRET");
        let blind_index_key = take("BLIND_INDEX_KEY");
        let canvas_client_secret = take("CANVAS_CLIENT_SECRET");
        let login_code_key = take("LOGIN_CODE_KEY");
        let twilio_auth_token = take("TWILIO_AUTH_TOKEN");
        let pioneerrx_webhook_secret = take("PIONEERRX_WEBHOOK_SECRET");
        let boothwyn_webhook_secret = take("BOOTHWYN_WEBHOOK_SECRET");
        let strive_webhook_secret = take("STRIVE_WEBHOOK_SECRET");
        let zoom_client_secret = take("ZOOM_CLIENT_SECRET");
        let fedex_client_secret = take("FEDEX_CLIENT_SECRET");
        let sandbox_control_token = take("SANDBOX_CONTROL_TOKEN");
        let (records_keys, records_active_key) = match std::env::var("RECORDS_KEYS") {
            Ok(v) if !v.is_empty() => (
                SecretString::from(v),
                std::env::var("RECORDS_ACTIVE_KEY")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1),
            ),
            _ => {
                generated.push("RECORDS_KEYS");
                (random_records_key(), 1)
            }
        };
        let stripe_secret_key = match std::env::var("STRIPE_SECRET_KEY") {
            Ok(v) if !v.is_empty() => SecretString::from(v),
            _ => {
                generated.push("STRIPE_SECRET_KEY");
                random_stripe_key()
            }
        };
        let stripe_webhook_secret = match std::env::var("STRIPE_WEBHOOK_SECRET") {
            Ok(v) if !v.is_empty() => SecretString::from(v),
            _ => {
                generated.push("STRIPE_WEBHOOK_SECRET");
                random_webhook_secret()
            }
        };
        let message_keys = match std::env::var("MESSAGE_KEYS") {
            Ok(v) if !v.is_empty() => SecretString::from(v),
            _ => {
                generated.push("MESSAGE_KEYS");
                random_records_key()
            }
        };
        let pipeline_keys = match std::env::var("PIPELINE_KEYS") {
            Ok(v) if !v.is_empty() => SecretString::from(v),
            _ => {
                generated.push("PIPELINE_KEYS");
                random_records_key()
            }
        };
        let hubspot_token = match std::env::var("HUBSPOT_ACCESS_TOKEN") {
            Ok(v) if !v.is_empty() => SecretString::from(v),
            _ => random_hubspot_token(),
        };
        let sendgrid_api_key = match std::env::var("SENDGRID_API_KEY") {
            Ok(v) if !v.is_empty() => SecretString::from(v),
            _ => random_sendgrid_key(),
        };
        let twilio_account_sid = std::env::var("TWILIO_ACCOUNT_SID")
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(random_twilio_sid);
        let given = |var: &str, default: &str| {
            std::env::var(var)
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        let canvas_client_id = given("CANVAS_CLIENT_ID", "era-dev-canvas");
        let zoom_account_id = given("ZOOM_ACCOUNT_ID", DEV_ZOOM_ACCOUNT_ID);
        let zoom_client_id = given("ZOOM_CLIENT_ID", DEV_ZOOM_CLIENT_ID);
        let fedex_client_id = given("FEDEX_CLIENT_ID", DEV_FEDEX_CLIENT_ID);
        (
            Self {
                admin_secret,
                admin_jwt_secret,
                patient_jwt_secret,
                internal_token_secret,
                records_keys,
                records_active_key,
                blind_index_key,
                canvas_client_id,
                canvas_client_secret,
                stripe_secret_key,
                stripe_webhook_secret,
                message_keys,
                login_code_key,
                sendgrid_api_key,
                twilio_account_sid,
                twilio_auth_token,
                hubspot_token,
                pipeline_keys,
                pioneerrx_webhook_secret,
                boothwyn_webhook_secret,
                strive_webhook_secret,
                zoom_account_id,
                zoom_client_id,
                zoom_client_secret,
                fedex_client_id,
                fedex_client_secret,
                sandbox_control_token,
            },
            generated,
        )
    }

    pub fn auth(&self) -> AuthConfig {
        AuthConfig {
            admin_secret: self.admin_secret.clone(),
            internal_token_secret: self.internal_token_secret.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct MeshOptions {
    pub host: IpAddr,
    pub ports: Ports,
    /// A PostgreSQL server URL (any database path) where the mesh may create its databases.
    pub server_url: String,
    /// Database names are `<prefix>_<service>`, e.g. `era_canvas`.
    pub database_prefix: String,
    pub secrets: Secrets,
    pub logging: LoggingConfig,
    pub cors_allowed_origins: Vec<String>,
    /// The payments worker that finishes unfinished charges and refunds.
    pub payments_resume: era_payments::config::ResumeConfig,
    /// The notifications outbox (retry schedule, polling, whether the worker runs).
    pub notifications_outbox: era_notifications::config::OutboxConfig,
    /// The approval pipeline's worker (lease, polling, the synchronous wait).
    pub pipeline: era_pharmacy_routing::config::PipelineConfig,
    /// The booking engine (visit length, clinic zone, worker, lease, the synchronous wait).
    pub scheduling: era_scheduling::config::EngineConfig,
    /// The edge's `RATE_LIMIT_MULTIPLIER` (tests raise it: they call public routes in bursts).
    pub rate_limit_multiplier: u32,
    /// The throwaway CA and certificate every gRPC hop of this mesh uses.
    pub ca: DevCa,
    /// Whether the sandbox's Canvas plugin posts its events to the edge
    /// (`/api/webhooks/canvas`). Off by default: a patient created in Canvas is then welcomed by
    /// email, which tests that count emails do not expect; era-dev turns it on.
    pub canvas_plugin_webhook: bool,
}

impl MeshOptions {
    pub fn new(server_url: impl Into<String>, secrets: Secrets) -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ports: Ports::STANDARD,
            server_url: server_url.into(),
            database_prefix: "era".into(),
            secrets,
            logging: LoggingConfig::default(),
            cors_allowed_origins: Vec::new(),
            payments_resume: Default::default(),
            notifications_outbox: Default::default(),
            pipeline: Default::default(),
            scheduling: Default::default(),
            rate_limit_multiplier: 1,
            // Key generation fails only when the system has no randomness, and then nothing works.
            #[expect(clippy::expect_used, reason = "no randomness, no mesh")]
            ca: DevCa::generate().expect("generating the mesh CA"),
            canvas_plugin_webhook: false,
        }
    }
}

/// A running mesh.
#[derive(Debug)]
pub struct Mesh {
    pub edge_url: String,
    pub sandbox_url: String,
    /// `(binary name, gRPC URL)` of each service.
    pub services: Vec<(&'static str, String)>,
    /// Every database the mesh uses.
    pub databases: Vec<String>,
    pub secrets: Secrets,
    /// The mesh's TLS settings, for clients that call the services directly.
    pub mesh_config: MeshConfig,
    /// One stop switch per component, so a test can take a single service down.
    stops: Vec<(&'static str, watch::Sender<bool>)>,
    tasks: JoinSet<(&'static str, anyhow::Result<()>)>,
}

/// The notifications service's settings against the sandbox: also used by tests that start a second
/// replica of it.
pub fn notifications_config(
    service: ServiceConfig,
    secrets: &Secrets,
    sandbox_url: &str,
    canvas_url: &str,
    edge_url: &str,
    outbox: era_notifications::config::OutboxConfig,
) -> era_notifications::Config {
    era_notifications::Config {
        service,
        email: era_notifications::config::EmailConfig {
            api_base: format!("{sandbox_url}/sendgrid"),
            api_key: secrets.sendgrid_api_key.clone(),
            from: "care@hisera.com".into(),
            from_name: "YourEra Care Team".into(),
            timeout_secs: 10,
        },
        sms: era_notifications::config::SmsConfig {
            api_base: format!("{sandbox_url}/twilio"),
            account_sid: secrets.twilio_account_sid.clone(),
            auth_token: secrets.twilio_auth_token.clone(),
            // Twilio's magic test number that always sends.
            from_number: "+15005550006".into(),
            messaging_service_sid: String::new(),
            timeout_secs: 10,
        },
        hubspot: era_notifications::config::HubSpotConfig {
            api_base: format!("{sandbox_url}/hubspot"),
            access_token: secrets.hubspot_token.clone(),
            sender_actor_id: era_sandbox::hubspot::seed::CARE_TEAM_AGENT.into(),
            timeout_secs: 10,
        },
        keys: era_notifications::config::MessageKeys {
            keys: secrets.message_keys.clone(),
            active_key: 1,
            login_code_key: secrets.login_code_key.clone(),
        },
        outbox,
        magic_link_url: format!("{edge_url}/api/auth/magic-link"),
        canvas_grpc_url: canvas_url.to_owned(),
    }
}

/// Tells the sandbox's `vendor` (stripe, pharmacy, canvas) where to POST its signed events.
async fn point_webhooks_at(sandbox_url: &str, token: &SecretString, vendor: &str, url: &str) -> anyhow::Result<()> {
    let resp = reqwest::Client::new()
        .put(format!("{sandbox_url}/_sandbox/{vendor}/webhook"))
        .bearer_auth(token.expose_secret())
        .json(&serde_json::json!({ "url": url }))
        .send()
        .await
        .with_context(|| format!("cannot reach the sandbox to set the {vendor} webhook URL"))?;
    anyhow::ensure!(
        resp.status().is_success(),
        "the sandbox refused the {vendor} webhook URL: {}",
        resp.status()
    );
    Ok(())
}

/// The gRPC URLs of the services the approval pipeline calls.
#[derive(Clone, Copy, Debug)]
pub struct Peers<'a> {
    pub canvas: &'a str,
    pub payments: &'a str,
    pub notifications: &'a str,
}

/// pharmacy-routing's settings against the sandbox's pharmacies (their default accounts).
pub fn pharmacy_routing_config(
    service: ServiceConfig,
    secrets: &Secrets,
    sandbox_url: &str,
    peers: Peers<'_>,
    pipeline: era_pharmacy_routing::config::PipelineConfig,
) -> era_pharmacy_routing::Config {
    use era_pharmacy_routing::config as c;
    use era_sandbox::state as s;
    c::Config {
        service,
        peers: c::Peers {
            canvas_grpc_url: peers.canvas.to_owned(),
            payments_grpc_url: peers.payments.to_owned(),
            notifications_grpc_url: peers.notifications.to_owned(),
        },
        keys: c::PipelineKeys {
            keys: secrets.pipeline_keys.clone(),
            active_key: 1,
        },
        pharmacies: c::PharmacyAccounts {
            pioneerrx_api_base: format!("{sandbox_url}/pioneerrx"),
            pioneerrx_api_key: s::DEFAULT_PIONEERRX_API_KEY.into(),
            pioneerrx_shared_secret: s::DEFAULT_PIONEERRX_SHARED_SECRET.into(),
            boothwyn: c::BoothwynAccount {
                api_base: format!("{sandbox_url}/boothwyn/lfapi/v1"),
                username: s::DEFAULT_BOOTHWYN_USERNAME.into(),
                password: s::DEFAULT_BOOTHWYN_PASSWORD.into(),
                vendor_id: s::DEFAULT_BOOTHWYN_VENDOR_ID.into(),
                location_id: s::DEFAULT_BOOTHWYN_LOCATION_ID.into(),
                network_id: s::DEFAULT_BOOTHWYN_NETWORK_ID.into(),
                practice_id: "era-clinic".into(),
            },
            strive: c::StriveAccount {
                api_base: format!("{sandbox_url}/strive/lfapi/v1"),
                username: s::DEFAULT_STRIVE_USERNAME.into(),
                password: s::DEFAULT_STRIVE_PASSWORD.into(),
                vendor_id: s::DEFAULT_STRIVE_VENDOR_ID.into(),
                location_id: s::DEFAULT_STRIVE_LOCATION_ID.into(),
                network_id: s::DEFAULT_STRIVE_NETWORK_ID.into(),
                practice_id: "era-clinic".into(),
            },
            timeout_secs: 20,
        },
        pipeline,
        carriers: {
            let fedex = fedex_access(secrets, sandbox_url);
            c::CarrierAccounts {
                fedex_base_url: fedex.base_url,
                fedex_client_id: fedex.client_id,
                fedex_client_secret: fedex.client_secret,
                ..Default::default()
            }
        },
    }
}

/// The edge's settings for this mesh's secrets and peers (also used by tests that start a second
/// edge on the same database).
pub fn edge_config(
    listen_addr: SocketAddr,
    database: DatabaseConfig,
    secrets: &Secrets,
    peers: era_edge::config::Peers,
    logging: LoggingConfig,
    mesh: MeshConfig,
) -> era_edge::Config {
    era_edge::Config {
        listen_addr,
        database,
        auth: secrets.auth(),
        secrets: era_edge::config::EdgeSecrets {
            admin_jwt_secret: Some(secrets.admin_jwt_secret.clone()),
            canvas_auth_secret: None,
            patient_jwt_secret: secrets.patient_jwt_secret.clone(),
            stripe_webhook_secret: Some(secrets.stripe_webhook_secret.clone()),
            ops_token: None,
            pharmacy_webhooks: era_edge::config::PharmacyWebhookSecrets {
                pioneerrx: Some(secrets.pioneerrx_webhook_secret.clone()),
                boothwyn: Some(secrets.boothwyn_webhook_secret.clone()),
                strive: Some(secrets.strive_webhook_secret.clone()),
            },
        },
        peers,
        admin_portal_url: None,
        cors_allowed_origins: Vec::new(),
        max_body_bytes: era_edge::config::DEFAULT_MAX_BODY_BYTES,
        trusted_proxy_hops: 0,
        rate_limit_multiplier: 1,
        header_read_timeout_secs: 10,
        request_timeout_secs: 30,
        max_concurrent_requests: 1024,
        logging,
        mesh,
    }
}

/// The gRPC URLs of the services scheduling calls.
#[derive(Clone, Copy, Debug)]
pub struct SchedulingPeers<'a> {
    pub canvas: &'a str,
    pub pharmacy_routing: &'a str,
    pub notifications: &'a str,
}

/// scheduling's settings against the sandbox's Zoom.
pub fn scheduling_config(
    service: ServiceConfig,
    secrets: &Secrets,
    sandbox_url: &str,
    peers: SchedulingPeers<'_>,
    engine: era_scheduling::config::EngineConfig,
) -> era_scheduling::Config {
    use era_scheduling::config as c;
    c::Config {
        service,
        peers: c::Peers {
            canvas_grpc_url: peers.canvas.to_owned(),
            pharmacy_routing_grpc_url: peers.pharmacy_routing.to_owned(),
            notifications_grpc_url: peers.notifications.to_owned(),
        },
        zoom: c::ZoomConfig {
            base_url: format!("{sandbox_url}/zoom/v2"),
            token_url: format!("{sandbox_url}/zoom/oauth/token"),
            account_id: secrets.zoom_account_id.clone(),
            client_id: secrets.zoom_client_id.clone(),
            client_secret: secrets.zoom_client_secret.clone(),
            timeout_secs: 10,
        },
        engine,
    }
}

/// Where the mesh reaches FedEx and with what: the sandbox's `/fedex` (a client's
/// `FEDEX_BASE_URL`, under which it asks `/oauth/token` and `/track/v1/trackingnumbers`) and the
/// project's API key and secret key, for the FedEx client's settings.
#[derive(Clone)]
pub struct FedexAccess {
    pub base_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
}

impl std::fmt::Debug for FedexAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FedexAccess")
            .field("base_url", &self.base_url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// FedEx as the sandbox at `sandbox_url` serves it, with the mesh's credentials.
pub fn fedex_access(secrets: &Secrets, sandbox_url: &str) -> FedexAccess {
    FedexAccess {
        base_url: format!("{sandbox_url}/fedex"),
        client_id: secrets.fedex_client_id.clone(),
        client_secret: secrets.fedex_client_secret.clone(),
    }
}

/// The URL of database `name` on the server of `server_url`.
pub fn database_url(server_url: &str, name: &str) -> anyhow::Result<String> {
    let mut url: reqwest::Url = server_url.parse().context("not a valid PostgreSQL URL")?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

async fn database(options: &MeshOptions, service: &str) -> anyhow::Result<(DatabaseConfig, PgPool, String)> {
    let name = format!("{}_{}", options.database_prefix, service.replace('-', "_"));
    let url = database_url(&options.server_url, &name)?;
    era_kit::db::create_database_if_missing(&url)
        .await
        .with_context(|| format!("database {name}"))?;
    let config = DatabaseConfig::new(url);
    let pool = era_kit::db::connect(&config)
        .await
        .with_context(|| format!("database {name}"))?;
    Ok((config, pool, name))
}

async fn bind(host: IpAddr, port: u16, what: &str) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind((host, port))
        .await
        .with_context(|| format!("cannot listen on {host}:{port} for {what}"))?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Every socket the mesh listens on, bound before the mesh opens any outbound connection: the
/// standard ports lie inside Linux's ephemeral range, so a connection to PostgreSQL or a peer opened
/// first could take one of them.
struct Listeners {
    sandbox: (TcpListener, SocketAddr),
    canvas: (TcpListener, SocketAddr),
    payments: (TcpListener, SocketAddr),
    pharmacy_routing: (TcpListener, SocketAddr),
    scheduling: (TcpListener, SocketAddr),
    notifications: (TcpListener, SocketAddr),
    edge: (TcpListener, SocketAddr),
}

impl Listeners {
    async fn bind(host: IpAddr, ports: Ports) -> anyhow::Result<Self> {
        Ok(Self {
            sandbox: bind(host, ports.sandbox, "era-sandbox").await?,
            canvas: bind(host, ports.canvas, "era-canvas").await?,
            payments: bind(host, ports.payments, "era-payments").await?,
            pharmacy_routing: bind(host, ports.pharmacy_routing, "era-pharmacy-routing").await?,
            scheduling: bind(host, ports.scheduling, "era-scheduling").await?,
            notifications: bind(host, ports.notifications, "era-notifications").await?,
            edge: bind(host, ports.edge, "era-edge").await?,
        })
    }
}

impl Mesh {
    pub async fn start(options: MeshOptions) -> anyhow::Result<Mesh> {
        let mut stops = Vec::new();
        let mut stopped = |name: &'static str| {
            let (stop, mut rx) = watch::channel(false);
            stops.push((name, stop));
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let mut tasks = JoinSet::new();
        let mut services = Vec::new();
        let mut databases = Vec::new();
        anyhow::ensure!(
            options.host.is_loopback(),
            "the mesh's throwaway certificate names only loopback addresses"
        );
        let bound = Listeners::bind(options.host, options.ports).await?;
        let mesh_config = options.ca.mesh_config();

        let (listener, addr) = bound.sandbox;
        let sandbox_config = era_sandbox::SandboxConfig {
            canvas_client_id: options.secrets.canvas_client_id.clone(),
            canvas_client_secret: options.secrets.canvas_client_secret.expose_secret().to_owned(),
            stripe_secret_key: options.secrets.stripe_secret_key.expose_secret().to_owned(),
            stripe_webhook_secret: options.secrets.stripe_webhook_secret.expose_secret().to_owned(),
            sendgrid_api_key: options.secrets.sendgrid_api_key.expose_secret().to_owned(),
            twilio_account_sid: options.secrets.twilio_account_sid.clone(),
            twilio_auth_token: options.secrets.twilio_auth_token.expose_secret().to_owned(),
            hubspot_token: options.secrets.hubspot_token.expose_secret().to_owned(),
            pharmacy_webhook_secrets: era_sandbox::state::PharmacyWebhookSecrets {
                pioneerrx: options.secrets.pioneerrx_webhook_secret.expose_secret().to_owned(),
                boothwyn: options.secrets.boothwyn_webhook_secret.expose_secret().to_owned(),
                strive: options.secrets.strive_webhook_secret.expose_secret().to_owned(),
            },
            // The edge verifies the plugin with ADMIN_JWT_SECRET (the plugin's CANVAS_AUTH_SECRET).
            canvas_plugin_secret: options.secrets.admin_jwt_secret.expose_secret().to_owned(),
            zoom_account_id: options.secrets.zoom_account_id.clone(),
            zoom_client_id: options.secrets.zoom_client_id.clone(),
            zoom_client_secret: options.secrets.zoom_client_secret.expose_secret().to_owned(),
            fedex_client_id: options.secrets.fedex_client_id.clone(),
            fedex_client_secret: options.secrets.fedex_client_secret.expose_secret().to_owned(),
            control_token: Some(options.secrets.sandbox_control_token.expose_secret().to_owned()),
            ..Default::default()
        };
        tasks.spawn({
            let stopped = stopped("era-sandbox");
            async move {
                (
                    "era-sandbox",
                    era_sandbox::run(era_sandbox::Sandbox::with_config(sandbox_config), listener, stopped).await,
                )
            }
        });
        let sandbox_url = format!("http://{addr}");

        macro_rules! service {
            ($krate:ident, $name:literal, $db:literal, $bound:expr) => {
                service!($krate, $name, $db, $bound, |service: ServiceConfig| service)
            };
            ($krate:ident, $name:literal, $db:literal, $bound:expr, $config:expr) => {{
                let (database, pool, db_name) = database(&options, $db).await?;
                era_kit::db::migrate(&pool, &$krate::MIGRATOR)
                    .await
                    .with_context(|| format!("migrating {}", $name))?;
                databases.push(db_name);
                let (listener, addr) = $bound;
                let config = ($config)(ServiceConfig {
                    listen_addr: Some(addr),
                    database,
                    auth: options.secrets.auth(),
                    logging: options.logging.clone(),
                    mesh: mesh_config.clone(),
                });
                let stopped = stopped($name);
                tasks.spawn(async move { ($name, $krate::run(config, listener, pool, stopped).await) });
                services.push(($name, format!("https://{addr}")));
                format!("https://{addr}")
            }};
        }
        let bound_notifications_addr = bound.notifications.1;
        // Canvas needs pharmacy-routing's URL, and pharmacy-routing needs canvas's, payments' and
        // notifications' (channels connect lazily, so it starts last).
        let pharmacy_routing = format!("https://{}", bound.pharmacy_routing.1);
        let canvas_config = |service: ServiceConfig| era_canvas::Config {
            service,
            canvas: era_canvas::config::CanvasConfig {
                base_url: format!("{sandbox_url}/canvas"),
                fhir_url: format!("{sandbox_url}/canvas-fhir"),
                client_id: options.secrets.canvas_client_id.clone(),
                client_secret: options.secrets.canvas_client_secret.clone(),
                timeout_secs: 10,
                read_attempts: 3,
                intake_questionnaire_id: era_sandbox::canvas::seed::INTAKE_QUESTIONNAIRE_ID.to_owned(),
            },
            records: era_canvas::config::RecordsConfig {
                keys: options.secrets.records_keys.clone(),
                active_key: options.secrets.records_active_key,
                blind_index_key: options.secrets.blind_index_key.clone(),
            },
            pharmacy_routing_grpc_url: pharmacy_routing.clone(),
        };
        let canvas = service!(era_canvas, "era-canvas", "canvas", bound.canvas, canvas_config);
        let payments_config = |service: ServiceConfig| era_payments::Config {
            service,
            stripe: era_payments::config::StripeConfig {
                api_base: format!("{sandbox_url}/stripe"),
                secret_key: options.secrets.stripe_secret_key.clone(),
                timeout_secs: 20,
                max_retries: 2,
            },
            resume: options.payments_resume.clone(),
        };
        let payments = service!(
            era_payments,
            "era-payments",
            "payments",
            bound.payments,
            payments_config
        );
        let scheduling_config = |service: ServiceConfig| {
            scheduling_config(
                service,
                &options.secrets,
                &sandbox_url,
                SchedulingPeers {
                    canvas: &canvas,
                    pharmacy_routing: &pharmacy_routing,
                    notifications: &format!("https://{bound_notifications_addr}"),
                },
                options.scheduling.clone(),
            )
        };
        let scheduling = service!(
            era_scheduling,
            "era-scheduling",
            "scheduling",
            bound.scheduling,
            scheduling_config
        );
        // The magic links notifications sends point at the edge.
        let (edge_listener, edge_addr) = bound.edge;
        let edge_url = format!("http://{edge_addr}");
        let notifications_config = |service: ServiceConfig| {
            notifications_config(
                service,
                &options.secrets,
                &sandbox_url,
                &canvas,
                &edge_url,
                options.notifications_outbox.clone(),
            )
        };
        let notifications = service!(
            era_notifications,
            "era-notifications",
            "notifications",
            bound.notifications,
            notifications_config
        );
        let routing_config = |service: ServiceConfig| {
            pharmacy_routing_config(
                service,
                &options.secrets,
                &sandbox_url,
                Peers {
                    canvas: &canvas,
                    payments: &payments,
                    notifications: &notifications,
                },
                options.pipeline.clone(),
            )
        };
        let served = service!(
            era_pharmacy_routing,
            "era-pharmacy-routing",
            "pharmacy-routing",
            bound.pharmacy_routing,
            routing_config
        );
        debug_assert_eq!(served, pharmacy_routing);

        let (database, pool, db_name) = database(&options, "edge").await?;
        era_kit::db::migrate(&pool, &era_edge::MIGRATOR)
            .await
            .context("migrating era-edge")?;
        databases.push(db_name);
        let (listener, addr) = (edge_listener, edge_addr);
        let peers = era_edge::config::Peers {
            canvas,
            payments,
            pharmacy_routing,
            scheduling,
            notifications,
        };
        let mut config = edge_config(
            addr,
            database,
            &options.secrets,
            peers,
            options.logging.clone(),
            mesh_config.clone(),
        );
        config.cors_allowed_origins = options.cors_allowed_origins.clone();
        // No admin portal runs here: a magic link signs in to the API docs, which take the handoff.
        config.admin_portal_url = Some(format!("{edge_url}/docs"));
        config.rate_limit_multiplier = options.rate_limit_multiplier;
        config.validate()?;
        let stopped_edge = stopped("era-edge");
        tasks.spawn(async move { ("era-edge", era_edge::run(config, listener, pool, stopped_edge).await) });

        // The sandbox started before the edge had an address: now tell it where Stripe's events,
        // the pharmacies' callbacks and (when asked) the Canvas plugin's events go.
        let edge_url = format!("http://{addr}");
        let token = &options.secrets.sandbox_control_token;
        point_webhooks_at(
            &sandbox_url,
            token,
            "stripe",
            &format!("{edge_url}/api/webhooks/stripe"),
        )
        .await?;
        point_webhooks_at(
            &sandbox_url,
            token,
            "pharmacy",
            &format!("{edge_url}/api/webhooks/pharmacy"),
        )
        .await?;
        if options.canvas_plugin_webhook {
            point_webhooks_at(
                &sandbox_url,
                token,
                "canvas",
                &format!("{edge_url}/api/webhooks/canvas"),
            )
            .await?;
        }

        Ok(Mesh {
            edge_url,
            sandbox_url,
            services,
            databases,
            secrets: options.secrets,
            mesh_config,
            stops,
            tasks,
        })
    }

    /// FedEx at this mesh's sandbox, with the credentials the sandbox accepts.
    pub fn fedex(&self) -> FedexAccess {
        fedex_access(&self.secrets, &self.sandbox_url)
    }

    /// Waits until the edge reports every service SERVING.
    pub async fn wait_ready(&self, timeout: std::time::Duration) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let ready = client
                .get(format!("{}/readyz", self.edge_url))
                .send()
                .await
                .map(|r| r.status().is_success());
            if matches!(ready, Ok(true)) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("the mesh was not ready within {timeout:?}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Resolves when any component stops on its own (a crash), naming it.
    pub async fn exited(&mut self) -> (&'static str, anyhow::Result<()>) {
        match self.tasks.join_next().await {
            Some(Ok(result)) => result,
            Some(Err(e)) => ("a component", Err(anyhow::anyhow!("panicked: {e}"))),
            None => ("the mesh", Ok(())),
        }
    }

    /// Asks every component to stop and waits for calls in flight to finish.
    pub async fn shutdown(mut self) {
        for (_, stop) in &self.stops {
            let _ = stop.send(true);
        }
        while self.tasks.join_next().await.is_some() {}
    }

    /// Stops one service (as a crash or a deploy would) and waits until it no longer reports SERVING.
    pub async fn shutdown_service(&self, name: &str) {
        if let Some((_, stop)) = self.stops.iter().find(|(n, _)| *n == name) {
            let _ = stop.send(true);
        }
        let Some(url) = self.service_url(name) else { return };
        for _ in 0..200 {
            let tls = self.mesh_config.tls().ok().flatten();
            if !matches!(era_kit::server::check_health(url, tls.as_ref(), "").await, Ok(true)) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }

    pub fn admin_secret(&self) -> &str {
        self.secrets.admin_secret.expose_secret()
    }

    /// A client of the sandbox's control plane: every request carries its token.
    pub fn sandbox_control(&self) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Ok(v) = format!("Bearer {}", self.secrets.sandbox_control_token.expose_secret()).parse() {
            headers.insert(reqwest::header::AUTHORIZATION, v);
        }
        reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap_or_default()
    }

    /// A channel to one of the services, presenting the mesh's certificate.
    pub fn channel(&self, url: &str) -> anyhow::Result<tonic::transport::Channel> {
        self.mesh_config.channel(url)
    }

    pub fn service_url(&self, name: &str) -> Option<&str> {
        self.services.iter().find(|(n, _)| *n == name).map(|(_, u)| u.as_str())
    }
}
