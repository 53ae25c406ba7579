//! SendGrid v3 mail send, and its Email Activity lookup for a send whose answer was lost.

use std::time::Duration;

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::{retry_after, transport, Found, Outcome};
use crate::config::EmailConfig;

/// One email to one person.
#[derive(Debug, Clone)]
pub(crate) struct Email {
    pub(crate) to: String,
    pub(crate) to_name: String,
    pub(crate) subject: String,
    pub(crate) text: String,
    pub(crate) html: String,
    /// Our outbox message id, sent as a custom argument so a lost send can be found again.
    pub(crate) message_id: String,
}

#[derive(Clone)]
pub(crate) struct SendGrid {
    http: reqwest::Client,
    base: String,
    key: SecretString,
    from: String,
    from_name: String,
}

impl std::fmt::Debug for SendGrid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendGrid")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// The custom argument that carries our message id.
const MESSAGE_ARG: &str = "era_message_id";

impl SendGrid {
    pub(crate) fn new(config: &EmailConfig) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(config.timeout_secs))
                .connect_timeout(Duration::from_secs(5))
                .build()?,
            base: config.api_base.trim_end_matches('/').to_owned(),
            key: config.api_key.clone(),
            from: config.from.clone(),
            from_name: config.from_name.clone(),
        })
    }

    pub(crate) async fn send(&self, m: &Email) -> Outcome {
        let mut to = json!({ "email": m.to });
        if !m.to_name.is_empty() {
            to["name"] = json!(m.to_name);
        }
        let body = json!({
            "personalizations": [{ "to": [to] }],
            "from": { "email": self.from, "name": self.from_name },
            "subject": m.subject,
            "content": [
                { "type": "text/plain", "value": m.text },
                { "type": "text/html", "value": m.html },
            ],
            "custom_args": { MESSAGE_ARG: m.message_id },
            // Clinical mail: no open or click tracking rewriting links or adding pixels.
            "tracking_settings": { "click_tracking": { "enable": false }, "open_tracking": { "enable": false } },
        });
        let sent = self
            .http
            .post(format!("{}/v3/mail/send", self.base))
            .bearer_auth(self.key.expose_secret())
            .json(&body)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => return transport("sendgrid", &e),
        };
        let status = resp.status();
        let code = status.as_u16();
        if status == StatusCode::ACCEPTED || status.is_success() {
            let vendor_id = resp
                .headers()
                .get("x-message-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            return Outcome::Sent {
                vendor_id,
                http_status: code,
            };
        }
        // Every response carries the rate-limit window's reset; only a 429 means we must wait for it.
        let after = retry_after(resp.headers());
        let reset = reset_in(resp.headers());
        let fields = error_fields(resp).await;
        match code {
            429 => Outcome::Retry {
                http_status: code,
                error: "sendgrid: rate limited".into(),
                after: after.or(reset),
            },
            401 | 403 => Outcome::Retry {
                http_status: code,
                error: "sendgrid: the API key was refused (check SENDGRID_API_KEY)".into(),
                after: None,
            },
            c if c >= 500 => Outcome::Retry {
                http_status: code,
                error: format!("sendgrid: server error {c}"),
                after,
            },
            c => Outcome::Permanent {
                http_status: code,
                error: format!("sendgrid: refused ({c}){fields}"),
            },
        }
    }

    /// Asks the Email Activity API whether a message with our id went out.
    pub(crate) async fn find(&self, message_id: &str) -> Found {
        let query = format!("unique_args['{MESSAGE_ARG}']=\"{message_id}\"");
        let resp = self
            .http
            .get(format!("{}/v3/messages", self.base))
            .bearer_auth(self.key.expose_secret())
            .query(&[("query", query.as_str()), ("limit", "1")])
            .send()
            .await;
        let resp = match resp {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                return Found::Unknown {
                    error: format!("sendgrid activity lookup answered {}", r.status().as_u16()),
                }
            }
            Err(_) => {
                return Found::Unknown {
                    error: "sendgrid activity lookup failed".into(),
                }
            }
        };
        let body: serde_json::Value = match resp.json().await {
            Ok(b) => b,
            Err(_) => {
                return Found::Unknown {
                    error: "sendgrid activity lookup answered no JSON".into(),
                }
            }
        };
        match body["messages"].as_array().and_then(|m| m.first()) {
            Some(m) => Found::Sent {
                vendor_id: m["msg_id"].as_str().unwrap_or_default().to_owned(),
            },
            None => Found::NotSent,
        }
    }
}

/// `X-RateLimit-Reset` (Unix seconds) as a delay from now.
fn reset_in(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let reset: i64 = headers.get("x-ratelimit-reset")?.to_str().ok()?.trim().parse().ok()?;
    let now = chrono::Utc::now().timestamp();
    Some(Duration::from_secs(u64::try_from(reset - now).unwrap_or(0).max(1)))
}

/// The fields SendGrid's error body names (its messages may quote the address, so they stay out).
async fn error_fields(resp: reqwest::Response) -> String {
    let Ok(body) = resp.json::<serde_json::Value>().await else {
        return String::new();
    };
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .map(|e| e.iter().filter_map(|e| e["field"].as_str()).collect())
        .unwrap_or_default();
    if fields.is_empty() {
        String::new()
    } else {
        format!(": {}", fields.join(", "))
    }
}
