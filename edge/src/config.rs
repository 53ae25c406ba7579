//! The edge's configuration, from the environment, validated at start.

use std::net::SocketAddr;

use era_kit::config::{
    require_secret, AuthConfig, ConfigError, DatabaseConfig, Environment, LoggingConfig, MeshConfig,
};
use secrecy::{ExposeSecret, SecretString};

pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:8080";
/// Bodies larger than this get 413. Intake forms and plugin calls are far smaller.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Clone, Debug, clap::Args)]
pub struct Config {
    /// Socket the HTTP server listens on.
    #[arg(long, env = "LISTEN_ADDR", default_value = DEFAULT_LISTEN_ADDR)]
    pub listen_addr: SocketAddr,
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub auth: AuthConfig,
    #[command(flatten)]
    pub secrets: EdgeSecrets,
    #[command(flatten)]
    pub peers: Peers,
    /// The admin portal a magic link's confirm page sends the browser to once signed in, with a
    /// one-time code in the URL's fragment (`#handoff=<code>`) that the portal exchanges at
    /// `POST /api/auth/session`. Unset: the confirm page says so and leaves the link unused.
    #[arg(long, env = "ADMIN_PORTAL_URL")]
    pub admin_portal_url: Option<String>,
    /// Origins the browser portals are served from, comma-separated (e.g.
    /// `https://admin.example.com,https://patient.example.com`). Empty: no cross-origin access.
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", value_delimiter = ',', default_value = "")]
    pub cors_allowed_origins: Vec<String>,
    /// Proxies in front of the edge that append the client's address to `X-Forwarded-For` (a load
    /// balancer is one); 0 takes the peer's address and ignores the header.
    #[arg(long, env = "TRUSTED_PROXY_HOPS", default_value_t = 0)]
    pub trusted_proxy_hops: usize,
    /// Multiplies every public route's per-client budget (tests and load tests raise it).
    #[arg(long, env = "RATE_LIMIT_MULTIPLIER", default_value_t = 1)]
    pub rate_limit_multiplier: u32,
    /// How long a client may take to send a request's headers before its connection is closed.
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub header_read_timeout_secs: u64,
    /// How long one request may take, its body included (408 after).
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// Requests served at once; more are refused at once with 503 and `Retry-After`.
    #[arg(long, env = "MAX_CONCURRENT_REQUESTS", default_value_t = 1024)]
    pub max_concurrent_requests: usize,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    #[command(flatten)]
    pub logging: LoggingConfig,
    #[command(flatten)]
    pub mesh: MeshConfig,
}

#[derive(Clone, clap::Args)]
pub struct EdgeSecrets {
    /// Signs admin JWTs and verifies the Canvas plugin's HMAC signatures.
    #[arg(long, env = "ADMIN_JWT_SECRET", hide_env_values = true)]
    pub admin_jwt_secret: Option<SecretString>,
    /// The Canvas plugin's name for the same secret as ADMIN_JWT_SECRET; either may be set.
    #[arg(long, env = "CANVAS_AUTH_SECRET", hide_env_values = true)]
    pub canvas_auth_secret: Option<SecretString>,
    /// Signs patient JWTs (a different key, so no patient token can ever pass as an admin's).
    #[arg(long, env = "PATIENT_JWT_SECRET", hide_env_values = true)]
    pub patient_jwt_secret: SecretString,
    /// When set, `/metrics` answers only `Authorization: Bearer <OPS_TOKEN>`, and `/readyz` tells
    /// which services are down only to it (anyone still gets the 200/503 a load balancer needs).
    #[arg(long, env = "OPS_TOKEN", hide_env_values = true)]
    pub ops_token: Option<SecretString>,
    /// Stripe's webhook signing secret (`whsec_...`); several, comma-separated, during a rotation.
    /// Unset: `POST /api/webhooks/stripe` answers 503.
    #[arg(long, env = "STRIPE_WEBHOOK_SECRET", hide_env_values = true)]
    pub stripe_webhook_secret: Option<SecretString>,
    #[command(flatten)]
    pub pharmacy_webhooks: PharmacyWebhookSecrets,
}

/// The secret each pharmacy signs its status callbacks with (`X-Pharmacy-Signature`), one per
/// pharmacy so a leaked one forges no other pharmacy's callbacks; several, comma-separated, during a
/// rotation. A pharmacy without one: its `POST /api/webhooks/pharmacy/{pharmacy}` answers 503.
#[derive(Clone, Default, clap::Args)]
pub struct PharmacyWebhookSecrets {
    /// GMP's PioneerRx.
    #[arg(
        long = "pioneerrx-webhook-secret",
        env = "PIONEERRX_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    pub pioneerrx: Option<SecretString>,
    #[arg(
        long = "boothwyn-webhook-secret",
        env = "BOOTHWYN_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    pub boothwyn: Option<SecretString>,
    #[arg(
        long = "strive-webhook-secret",
        env = "STRIVE_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    pub strive: Option<SecretString>,
}

impl PharmacyWebhookSecrets {
    /// Each pharmacy's id (as routing names it), its variable and its secret.
    pub fn all(&self) -> [(&'static str, &'static str, Option<&SecretString>); 3] {
        [
            ("gmp", "PIONEERRX_WEBHOOK_SECRET", self.pioneerrx.as_ref()),
            ("boothwyn", "BOOTHWYN_WEBHOOK_SECRET", self.boothwyn.as_ref()),
            ("strive", "STRIVE_WEBHOOK_SECRET", self.strive.as_ref()),
        ]
    }

    /// The variable and secret of the pharmacy with this id.
    pub fn of(&self, pharmacy: &str) -> Option<(&'static str, Option<&SecretString>)> {
        self.all()
            .into_iter()
            .find(|(id, _, _)| *id == pharmacy)
            .map(|(_, var, secret)| (var, secret))
    }
}

impl std::fmt::Debug for EdgeSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EdgeSecrets { .. }")
    }
}

impl EdgeSecrets {
    /// The admin JWT / Canvas HMAC secret, from whichever variable holds it.
    pub fn admin_jwt(&self) -> Result<&SecretString, ConfigError> {
        match (&self.admin_jwt_secret, &self.canvas_auth_secret) {
            (Some(a), Some(c)) if a.expose_secret() != c.expose_secret() => Err(ConfigError::new(
                "CANVAS_AUTH_SECRET",
                "differs from ADMIN_JWT_SECRET; they are one secret, set one of them or both to the same value",
            )),
            (Some(a), _) => Ok(a),
            (None, Some(c)) => Ok(c),
            (None, None) => Err(ConfigError::new(
                "ADMIN_JWT_SECRET",
                "is required (or set CANVAS_AUTH_SECRET)",
            )),
        }
    }
}

/// Where the services are.
#[derive(Clone, Debug, clap::Args)]
pub struct Peers {
    #[arg(long, env = "CANVAS_GRPC_URL", default_value = "http://127.0.0.1:50051")]
    pub canvas: String,
    #[arg(long, env = "PAYMENTS_GRPC_URL", default_value = "http://127.0.0.1:50052")]
    pub payments: String,
    #[arg(long, env = "PHARMACY_ROUTING_GRPC_URL", default_value = "http://127.0.0.1:50053")]
    pub pharmacy_routing: String,
    #[arg(long, env = "SCHEDULING_GRPC_URL", default_value = "http://127.0.0.1:50054")]
    pub scheduling: String,
    #[arg(long, env = "NOTIFICATIONS_GRPC_URL", default_value = "http://127.0.0.1:50055")]
    pub notifications: String,
}

impl Peers {
    /// Each peer with its variable name and the gRPC service it must report SERVING.
    pub fn all(&self) -> [(&'static str, &str, &'static str); 5] {
        [
            ("CANVAS_GRPC_URL", &self.canvas, "era.canvas.v1.CanvasService"),
            ("PAYMENTS_GRPC_URL", &self.payments, "era.payments.v1.PaymentsService"),
            (
                "PHARMACY_ROUTING_GRPC_URL",
                &self.pharmacy_routing,
                "era.pharmacy_routing.v1.PharmacyRoutingService",
            ),
            (
                "SCHEDULING_GRPC_URL",
                &self.scheduling,
                "era.scheduling.v1.SchedulingService",
            ),
            (
                "NOTIFICATIONS_GRPC_URL",
                &self.notifications,
                "era.notifications.v1.NotificationsService",
            ),
        ]
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.database.validate()?;
        if !(1..=300).contains(&self.header_read_timeout_secs) {
            return Err(ConfigError::new(
                "HEADER_READ_TIMEOUT_SECS",
                "must be between 1 and 300",
            ));
        }
        if !(1..=600).contains(&self.request_timeout_secs) {
            return Err(ConfigError::new("REQUEST_TIMEOUT_SECS", "must be between 1 and 600"));
        }
        if !(1..=100_000).contains(&self.max_concurrent_requests) {
            return Err(ConfigError::new(
                "MAX_CONCURRENT_REQUESTS",
                "must be between 1 and 100000",
            ));
        }
        if self.trusted_proxy_hops > 10 {
            return Err(ConfigError::new("TRUSTED_PROXY_HOPS", "must be at most 10"));
        }
        if !(1..=100_000).contains(&self.rate_limit_multiplier) {
            return Err(ConfigError::new(
                "RATE_LIMIT_MULTIPLIER",
                "must be between 1 and 100000",
            ));
        }
        self.auth.validate()?;
        let admin_jwt = self.secrets.admin_jwt()?;
        let var = if self.secrets.admin_jwt_secret.is_some() {
            "ADMIN_JWT_SECRET"
        } else {
            "CANVAS_AUTH_SECRET"
        };
        require_secret(var, admin_jwt)?;
        require_secret("PATIENT_JWT_SECRET", &self.secrets.patient_jwt_secret)?;
        if self.secrets.patient_jwt_secret.expose_secret() == admin_jwt.expose_secret() {
            return Err(ConfigError::new(
                "PATIENT_JWT_SECRET",
                "must differ from ADMIN_JWT_SECRET",
            ));
        }
        // The internal token's key opens every service: it shares its value with no other secret.
        let internal = self.auth.internal_token_secret.expose_secret();
        let others = [
            ("ADMIN_JWT_SECRET", Some(admin_jwt)),
            ("PATIENT_JWT_SECRET", Some(&self.secrets.patient_jwt_secret)),
            ("STRIPE_WEBHOOK_SECRET", self.secrets.stripe_webhook_secret.as_ref()),
            ("OPS_TOKEN", self.secrets.ops_token.as_ref()),
        ];
        let pharmacies = self
            .secrets
            .pharmacy_webhooks
            .all()
            .map(|(_, var, secret)| (var, secret));
        for (var, other) in others.into_iter().chain(pharmacies) {
            if other.is_some_and(|o| o.expose_secret().split(',').any(|part| part.trim() == internal)) {
                return Err(ConfigError::new(
                    "INTERNAL_TOKEN_SECRET",
                    format!("must differ from {var}"),
                ));
            }
        }
        // Stripe's endpoint secrets are Stripe's to choose; ours for the pharmacies must be strong,
        // since any holder can forge a shipment update, and each pharmacy's its own.
        if let Some(ops) = &self.secrets.ops_token {
            require_secret("OPS_TOKEN", ops)?;
        }
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for (_, var, secrets) in self.secrets.pharmacy_webhooks.all() {
            let Some(secrets) = secrets else { continue };
            for part in secrets
                .expose_secret()
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
            {
                require_secret(var, &SecretString::from(part.to_owned()))?;
                if let Some((other, _)) = seen.iter().find(|(v, s)| *v != var && *s == part) {
                    return Err(ConfigError::new(var, format!("must differ from {other}")));
                }
                seen.push((var, part));
            }
        }
        self.mesh.validate()?;
        if let Some(portal) = &self.admin_portal_url {
            self.mesh.external_url("ADMIN_PORTAL_URL", portal)?;
            if portal.contains('#') {
                return Err(ConfigError::new("ADMIN_PORTAL_URL", "must not have a fragment (#...)"));
            }
        }
        for (var, url, _) in self.peers.all() {
            self.mesh.peer_url(var, url)?;
        }
        if self.mesh.env == Environment::Production {
            // Without them the webhook routes answer 503: fine on a laptop, an outage in production.
            if self.secrets.stripe_webhook_secret.is_none() {
                return Err(ConfigError::new(
                    "STRIPE_WEBHOOK_SECRET",
                    "is required when ERA_ENV=production",
                ));
            }
            if self.secrets.pharmacy_webhooks.all().iter().all(|(_, _, s)| s.is_none()) {
                return Err(ConfigError::new(
                    "PIONEERRX_WEBHOOK_SECRET",
                    "or BOOTHWYN_WEBHOOK_SECRET or STRIVE_WEBHOOK_SECRET is required when ERA_ENV=production",
                ));
            }
        }
        for origin in self.cors_allowed_origins.iter().filter(|o| !o.trim().is_empty()) {
            let ok = (origin.starts_with("https://") || origin.starts_with("http://"))
                && origin.parse::<http::HeaderValue>().is_ok()
                && !origin.ends_with('/');
            if !ok {
                return Err(ConfigError::new(
                    "CORS_ALLOWED_ORIGINS",
                    format!("{origin:?} is not an origin like https://admin.example.com"),
                ));
            }
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::new("MAX_BODY_BYTES", "must be at least 1024"));
        }
        Ok(())
    }
}
