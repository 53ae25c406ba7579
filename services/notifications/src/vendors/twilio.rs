//! Twilio Programmable Messaging (2010-04-01): send an SMS, and find one whose answer was lost.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::{retry_after, transport, Found, Outcome};
use crate::config::SmsConfig;

#[derive(Debug, Clone)]
pub(crate) struct Sms {
    pub(crate) to: String,
    pub(crate) body: String,
}

#[derive(Clone)]
pub(crate) struct Twilio {
    http: reqwest::Client,
    base: String,
    account: String,
    token: SecretString,
    from: String,
    messaging_service: String,
}

impl std::fmt::Debug for Twilio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Twilio")
            .field("base", &self.base)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

/// Twilio error codes that no retry can fix: invalid, unreachable, unsubscribed or landline numbers.
const PERMANENT: &[i64] = &[21211, 21408, 21610, 21612, 21614];

impl Twilio {
    pub(crate) fn new(config: &SmsConfig) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(config.timeout_secs))
                .connect_timeout(Duration::from_secs(5))
                .build()?,
            base: config.api_base.trim_end_matches('/').to_owned(),
            account: config.account_sid.clone(),
            token: config.auth_token.clone(),
            from: config.from_number.clone(),
            messaging_service: config.messaging_service_sid.clone(),
        })
    }

    fn messages_url(&self) -> String {
        format!("{}/2010-04-01/Accounts/{}/Messages.json", self.base, self.account)
    }

    pub(crate) async fn send(&self, m: &Sms) -> Outcome {
        let mut form = vec![("To", m.to.as_str()), ("Body", m.body.as_str())];
        if self.from.is_empty() {
            form.push(("MessagingServiceSid", self.messaging_service.as_str()));
        } else {
            form.push(("From", self.from.as_str()));
        }
        let sent = self
            .http
            .post(self.messages_url())
            .basic_auth(&self.account, Some(self.token.expose_secret()))
            .form(&form)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => return transport("twilio", &e),
        };
        let code = resp.status().as_u16();
        let after = retry_after(resp.headers());
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        if (200..300).contains(&code) {
            return Outcome::Sent {
                vendor_id: body["sid"].as_str().unwrap_or_default().to_owned(),
                http_status: code,
            };
        }
        // Twilio's message texts quote the number; only its code is kept.
        let twilio_code = body["code"].as_i64().unwrap_or_default();
        let error = format!("twilio: error {twilio_code} ({code})");
        match code {
            429 => Outcome::Retry {
                http_status: code,
                error,
                after,
            },
            401 | 403 => Outcome::Retry {
                http_status: code,
                error: format!(
                    "{error}: the credentials were refused (check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN)"
                ),
                after: None,
            },
            c if c >= 500 => Outcome::Retry {
                http_status: code,
                error,
                after,
            },
            _ if PERMANENT.contains(&twilio_code) => Outcome::Permanent {
                http_status: code,
                error,
            },
            // Other refusals (a bad sender, a misconfigured service) may be fixed by an operator;
            // the schedule ends in the dead letter either way.
            _ => Outcome::Retry {
                http_status: code,
                error,
                after: None,
            },
        }
    }

    /// Looks for a message from us with this body to this number, created since `since`. Twilio
    /// lists newest first; no date filter, since a message still queued has no send date yet.
    pub(crate) async fn find(&self, m: &Sms, since: chrono::DateTime<chrono::Utc>) -> Found {
        // A minute of slack for the clocks.
        let since = since - chrono::Duration::minutes(1);
        let resp = self
            .http
            .get(self.messages_url())
            .basic_auth(&self.account, Some(self.token.expose_secret()))
            .query(&[("To", m.to.as_str()), ("PageSize", "100")])
            .send()
            .await;
        let body: serde_json::Value = match resp {
            Ok(r) if r.status().is_success() => match r.json().await {
                Ok(b) => b,
                Err(_) => {
                    return Found::Unknown {
                        error: "twilio lookup answered no JSON".into(),
                    }
                }
            },
            Ok(r) => {
                return Found::Unknown {
                    error: format!("twilio lookup answered {}", r.status().as_u16()),
                }
            }
            Err(_) => {
                return Found::Unknown {
                    error: "twilio lookup failed".into(),
                }
            }
        };
        let found = body["messages"].as_array().into_iter().flatten().find(|msg| {
            let created = msg["date_created"]
                .as_str()
                .and_then(|d| chrono::DateTime::parse_from_rfc2822(d).ok())
                .map(|d| d.with_timezone(&chrono::Utc));
            let ours = if self.from.is_empty() {
                msg["messaging_service_sid"].as_str() == Some(self.messaging_service.as_str())
            } else {
                msg["from"].as_str() == Some(self.from.as_str())
            };
            ours && msg["body"].as_str() == Some(m.body.as_str()) && created.is_some_and(|c| c >= since)
        });
        match found {
            Some(msg) => Found::Sent {
                vendor_id: msg["sid"].as_str().unwrap_or_default().to_owned(),
            },
            None => Found::NotSent,
        }
    }
}
