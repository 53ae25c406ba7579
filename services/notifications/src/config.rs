//! The notifications service's settings: the shared blocks, the vendors (SendGrid, Twilio), the
//! message keys, the outbox's retry schedule and which channels each event uses. Checked at start.

use std::{collections::BTreeMap, fmt, time::Duration};

use era_kit::{
    config::{require_secret, ConfigError, MeshConfig, ServiceConfig},
    sealing::{parse_keys, Keyring},
};
use secrecy::{ExposeSecret, SecretString};

use crate::templates::{Channel, Kind};

#[derive(Clone, Debug, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub service: ServiceConfig,
    #[command(flatten)]
    pub email: EmailConfig,
    #[command(flatten)]
    pub sms: SmsConfig,
    #[command(flatten)]
    pub hubspot: HubSpotConfig,
    #[command(flatten)]
    pub keys: MessageKeys,
    #[command(flatten)]
    pub outbox: OutboxConfig,
    /// The page a magic link opens; the link is this with `?token=...` appended.
    #[arg(
        long,
        env = "MAGIC_LINK_URL",
        default_value = "http://127.0.0.1:8080/api/auth/magic-link"
    )]
    pub magic_link_url: String,
    /// Where canvas serves gRPC (a patient's email and phone when a notification names only the patient).
    #[arg(long, env = "CANVAS_GRPC_URL", default_value = "http://127.0.0.1:50051")]
    pub canvas_grpc_url: String,
}

impl AsRef<ServiceConfig> for Config {
    fn as_ref(&self) -> &ServiceConfig {
        &self.service
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.service.validate()?;
        self.email.validate(&self.service.mesh)?;
        self.sms.validate(&self.service.mesh)?;
        self.hubspot.validate(&self.service.mesh)?;
        self.keys.keyring()?;
        self.outbox.schedule()?;
        self.outbox.channels()?;
        self.service.mesh.external_url("MAGIC_LINK_URL", &self.magic_link_url)?;
        if self.magic_link_url.contains('?') || self.magic_link_url.contains('#') {
            return Err(ConfigError::new("MAGIC_LINK_URL", "must not have a query or fragment"));
        }
        self.service.mesh.peer_url("CANVAS_GRPC_URL", &self.canvas_grpc_url)
    }
}

/// SendGrid and the sender every email comes from.
#[derive(Clone, clap::Args)]
pub struct EmailConfig {
    /// SendGrid's API host, without `/v3` (the sandbox's `/sendgrid` locally).
    #[arg(
        id = "sendgrid_api_base",
        long = "sendgrid-api-base",
        env = "SENDGRID_API_BASE",
        default_value = "https://api.sendgrid.com"
    )]
    pub api_base: String,
    #[arg(long, env = "SENDGRID_API_KEY", hide_env_values = true)]
    pub api_key: SecretString,
    #[arg(long, env = "EMAIL_FROM", default_value = "care@hisera.com")]
    pub from: String,
    #[arg(long, env = "EMAIL_FROM_NAME", default_value = "YourEra Care Team")]
    pub from_name: String,
    /// Seconds one SendGrid request may take.
    #[arg(
        id = "sendgrid_timeout_secs",
        long = "sendgrid-timeout-secs",
        env = "SENDGRID_TIMEOUT_SECS",
        default_value_t = 10
    )]
    pub timeout_secs: u64,
}

impl fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailConfig")
            .field("api_base", &self.api_base)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl EmailConfig {
    fn validate(&self, mesh: &MeshConfig) -> Result<(), ConfigError> {
        mesh.external_url("SENDGRID_API_BASE", &self.api_base)?;
        if self.api_key.expose_secret().trim().len() < 8 {
            return Err(ConfigError::new(
                "SENDGRID_API_KEY",
                "is required (a SendGrid API key, SG.…)",
            ));
        }
        if !self.from.contains('@') {
            return Err(ConfigError::new("EMAIL_FROM", "must be an email address"));
        }
        timeout("SENDGRID_TIMEOUT_SECS", self.timeout_secs)
    }
}

fn timeout(var: &'static str, secs: u64) -> Result<(), ConfigError> {
    if !(1..=60).contains(&secs) {
        return Err(ConfigError::new(var, "must be between 1 and 60"));
    }
    Ok(())
}

/// Twilio and the number (or Messaging Service) every SMS comes from.
#[derive(Clone, clap::Args)]
pub struct SmsConfig {
    /// Twilio's API host, without `/2010-04-01` (the sandbox's `/twilio` locally).
    #[arg(
        id = "twilio_api_base",
        long = "twilio-api-base",
        env = "TWILIO_API_BASE",
        default_value = "https://api.twilio.com"
    )]
    pub api_base: String,
    #[arg(long, env = "TWILIO_ACCOUNT_SID")]
    pub account_sid: String,
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: SecretString,
    /// The sending number (E.164); or leave empty and set TWILIO_MESSAGING_SERVICE_SID.
    #[arg(long, env = "TWILIO_FROM_NUMBER", default_value = "")]
    pub from_number: String,
    #[arg(long, env = "TWILIO_MESSAGING_SERVICE_SID", default_value = "")]
    pub messaging_service_sid: String,
    #[arg(
        id = "twilio_timeout_secs",
        long = "twilio-timeout-secs",
        env = "TWILIO_TIMEOUT_SECS",
        default_value_t = 10
    )]
    pub timeout_secs: u64,
}

impl fmt::Debug for SmsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmsConfig")
            .field("api_base", &self.api_base)
            .field("account_sid", &self.account_sid)
            .finish_non_exhaustive()
    }
}

impl SmsConfig {
    fn validate(&self, mesh: &MeshConfig) -> Result<(), ConfigError> {
        mesh.external_url("TWILIO_API_BASE", &self.api_base)?;
        let sid = &self.account_sid;
        if !(sid.len() == 34 && sid.starts_with("AC") && sid[2..].bytes().all(|b| b.is_ascii_hexdigit())) {
            return Err(ConfigError::new(
                "TWILIO_ACCOUNT_SID",
                "must be an account SID (AC and 32 hex digits)",
            ));
        }
        if self.auth_token.expose_secret().trim().len() < 16 {
            return Err(ConfigError::new(
                "TWILIO_AUTH_TOKEN",
                "is required (the account's auth token)",
            ));
        }
        match (self.from_number.is_empty(), self.messaging_service_sid.is_empty()) {
            (true, true) => {
                return Err(ConfigError::new(
                    "TWILIO_FROM_NUMBER",
                    "is required unless TWILIO_MESSAGING_SERVICE_SID is set",
                ))
            }
            (false, _) if !crate::templates::is_e164(&self.from_number) => {
                return Err(ConfigError::new(
                    "TWILIO_FROM_NUMBER",
                    "must be an E.164 number, e.g. +15005550006",
                ))
            }
            _ => {}
        }
        timeout("TWILIO_TIMEOUT_SECS", self.timeout_secs)
    }
}

/// HubSpot's conversation inbox and the agent replies are sent as.
#[derive(Clone, clap::Args)]
pub struct HubSpotConfig {
    /// HubSpot's API host (the sandbox's `/hubspot` locally).
    #[arg(
        id = "hubspot_api_base",
        long = "hubspot-api-base",
        env = "HUBSPOT_API_BASE",
        default_value = "https://api.hubapi.com"
    )]
    pub api_base: String,
    /// A private app's (or the new platform's static) access token with `conversations.read` and
    /// `conversations.write`.
    #[arg(long, env = "HUBSPOT_ACCESS_TOKEN", hide_env_values = true)]
    pub access_token: SecretString,
    /// The agent actor replies are sent as, `A-<userId>`.
    #[arg(long, env = "HUBSPOT_SENDER_ACTOR_ID")]
    pub sender_actor_id: String,
    #[arg(
        id = "hubspot_timeout_secs",
        long = "hubspot-timeout-secs",
        env = "HUBSPOT_TIMEOUT_SECS",
        default_value_t = 10
    )]
    pub timeout_secs: u64,
}

impl fmt::Debug for HubSpotConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubSpotConfig")
            .field("api_base", &self.api_base)
            .field("sender_actor_id", &self.sender_actor_id)
            .finish_non_exhaustive()
    }
}

impl HubSpotConfig {
    fn validate(&self, mesh: &MeshConfig) -> Result<(), ConfigError> {
        mesh.external_url("HUBSPOT_API_BASE", &self.api_base)?;
        if self.access_token.expose_secret().trim().len() < 8 {
            return Err(ConfigError::new(
                "HUBSPOT_ACCESS_TOKEN",
                "is required (a private app access token)",
            ));
        }
        let agent = self.sender_actor_id.strip_prefix("A-").unwrap_or_default();
        if agent.is_empty() || !agent.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConfigError::new(
                "HUBSPOT_SENDER_ACTOR_ID",
                "must be an agent actor id, A-<userId>",
            ));
        }
        timeout("HUBSPOT_TIMEOUT_SECS", self.timeout_secs)
    }
}

/// The keys that seal stored addresses and message contents.
#[derive(Clone, clap::Args)]
pub struct MessageKeys {
    /// Versioned AES-256 keys, `version:base64key` separated by commas.
    #[arg(long, env = "MESSAGE_KEYS", hide_env_values = true)]
    pub keys: SecretString,
    /// The version new rows are sealed under.
    #[arg(long, env = "MESSAGE_ACTIVE_KEY")]
    pub active_key: u32,
    /// Key of the HMACs login codes and links are stored as; at least 32 characters.
    #[arg(long, env = "LOGIN_CODE_KEY", hide_env_values = true)]
    pub login_code_key: SecretString,
}

impl fmt::Debug for MessageKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageKeys")
            .field("active_key", &self.active_key)
            .finish_non_exhaustive()
    }
}

impl MessageKeys {
    pub fn keyring(&self) -> Result<Keyring, ConfigError> {
        let keys = parse_keys("MESSAGE_KEYS", &self.keys, "MESSAGE_ACTIVE_KEY", self.active_key)?;
        require_secret("LOGIN_CODE_KEY", &self.login_code_key)?;
        Ok(Keyring::new(
            keys,
            self.active_key,
            self.login_code_key.expose_secret().as_bytes(),
        ))
    }
}

/// The outbox worker.
#[derive(Clone, Debug, clap::Args)]
pub struct OutboxConfig {
    /// Seconds before each attempt, comma-separated: the first is the first attempt's delay, and
    /// after the last attempt fails the message is dead-lettered.
    #[arg(
        long,
        env = "OUTBOX_RETRY_SCHEDULE",
        default_value = "0,5,300,1800,7200,18000,36000,36000"
    )]
    pub retry_schedule: String,
    /// How long a worker may hold a message before another may take it over (heartbeats extend it).
    #[arg(long, env = "OUTBOX_LEASE_SECS", default_value_t = 60)]
    pub lease_secs: u64,
    /// How often an idle worker looks for due messages (a send in this process wakes it at once).
    #[arg(long, env = "OUTBOX_POLL_MS", default_value_t = 1000)]
    pub poll_ms: u64,
    /// Whether this replica runs the worker.
    #[arg(long, env = "OUTBOX_WORKER", default_value_t = true, action = clap::ArgAction::Set)]
    pub worker: bool,
    /// Overrides of the channels each event uses, e.g.
    /// `prescription_approved=email+portal;one_time_code=email`.
    #[arg(long, env = "NOTIFICATION_CHANNELS", default_value = "")]
    pub channels: String,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            retry_schedule: "0,5,300,1800,7200,18000,36000,36000".into(),
            lease_secs: 60,
            poll_ms: 1000,
            worker: true,
            channels: String::new(),
        }
    }
}

impl OutboxConfig {
    /// The delays before attempts 1, 2, ...
    pub fn schedule(&self) -> Result<Vec<Duration>, ConfigError> {
        let bad = || {
            ConfigError::new(
                "OUTBOX_RETRY_SCHEDULE",
                "must be 1-20 comma-separated non-negative numbers of seconds, e.g. 0,5,300",
            )
        };
        let delays = self
            .retry_schedule
            .split(',')
            .map(|s| {
                s.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|d| d.is_finite() && (0.0..=7.0 * 86_400.0).contains(d))
                    .map(Duration::from_secs_f64)
                    .ok_or_else(bad)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if delays.is_empty() || delays.len() > 20 {
            return Err(bad());
        }
        if !(5..=3600).contains(&self.lease_secs) {
            return Err(ConfigError::new("OUTBOX_LEASE_SECS", "must be between 5 and 3600"));
        }
        if !(10..=60_000).contains(&self.poll_ms) {
            return Err(ConfigError::new("OUTBOX_POLL_MS", "must be between 10 and 60000"));
        }
        Ok(delays)
    }

    /// The configured channels of each event: the defaults with NOTIFICATION_CHANNELS applied.
    pub fn channels(&self) -> Result<BTreeMap<Kind, Vec<Channel>>, ConfigError> {
        let mut out: BTreeMap<Kind, Vec<Channel>> =
            Kind::ALL.iter().map(|k| (*k, k.default_channels().to_vec())).collect();
        for entry in self.channels.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = |why: String| ConfigError::new("NOTIFICATION_CHANNELS", why);
            let (kind, channels) = entry
                .split_once('=')
                .ok_or_else(|| bad(format!("`{entry}` is not `event=channel+channel`")))?;
            let kind = Kind::from_code(kind.trim()).ok_or_else(|| bad(format!("unknown event `{}`", kind.trim())))?;
            let mut list = Vec::new();
            for c in channels.split('+').map(str::trim).filter(|c| !c.is_empty()) {
                let c =
                    Channel::from_code(c).ok_or_else(|| bad(format!("unknown channel `{c}` (email, sms, portal)")))?;
                if !list.contains(&c) {
                    list.push(c);
                }
            }
            if list.is_empty() {
                return Err(bad(format!("`{}` names no channel", kind.code())));
            }
            out.insert(kind, list);
        }
        Ok(out)
    }
}
