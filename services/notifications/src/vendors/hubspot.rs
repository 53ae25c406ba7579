//! HubSpot's Conversations inbox API (v3): threads, their messages, and posting a reply or an
//! internal comment. Reads are retried on 429, 5xx and network errors; a post is not (HubSpot has
//! no idempotency key; the caller's reply record decides what is safe).

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::config::HubSpotConfig;

#[derive(Clone)]
pub(crate) struct HubSpot {
    http: reqwest::Client,
    base: String,
    token: SecretString,
    /// The agent replies are sent as (`A-<userId>`).
    pub(crate) sender: String,
}

impl std::fmt::Debug for HubSpot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubSpot")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// Why a HubSpot call failed. Its texts carry statuses and categories only: HubSpot's messages can
/// quote what the patient wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HubError {
    NotFound,
    /// 429 or 5xx, or no connection: nothing was done.
    Unavailable(String),
    /// The request went out and no answer came back: it may have been done.
    Uncertain(String),
    /// HubSpot refused the request (its status: a 400, or 401/403, our configuration's fault).
    Refused(u16, String),
}

const READ_ATTEMPTS: u32 = 3;

impl HubSpot {
    pub(crate) fn new(config: &HubSpotConfig) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(config.timeout_secs))
                .connect_timeout(Duration::from_secs(5))
                .build()?,
            base: config.api_base.trim_end_matches('/').to_owned(),
            token: config.access_token.clone(),
            sender: config.sender_actor_id.clone(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/conversations/v3/conversations{path}", self.base)
    }

    /// A GET, retried where that is safe.
    pub(crate) async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, HubError> {
        let mut last = HubError::Unavailable("hubspot: no attempt made".into());
        for attempt in 0..READ_ATTEMPTS {
            if attempt > 0 {
                let pause = match &last {
                    HubError::Unavailable(_) => Duration::from_millis(200 * 2u64.pow(attempt)),
                    _ => break,
                };
                tokio::time::sleep(pause).await;
            }
            let sent = self
                .http
                .get(self.url(path))
                .bearer_auth(self.token.expose_secret())
                .query(query)
                .send()
                .await;
            last = match sent {
                Ok(resp) => match classify(resp).await {
                    Ok(v) => return Ok(v),
                    Err(e) => e,
                },
                // A read done twice does no harm: every transport failure may be retried.
                Err(_) => HubError::Unavailable("hubspot: the request failed".into()),
            };
        }
        Err(last)
    }

    /// A POST, tried once.
    pub(crate) async fn post(&self, path: &str, body: &Value) -> Result<Value, HubError> {
        let sent = self
            .http
            .post(self.url(path))
            .bearer_auth(self.token.expose_secret())
            .json(body)
            .send()
            .await;
        let resp = match sent {
            Ok(resp) => resp,
            Err(e) if e.is_connect() => return Err(HubError::Unavailable("hubspot: could not connect".into())),
            Err(_) => return Err(HubError::Uncertain("hubspot: no answer to a post".into())),
        };
        // A gateway error can come after HubSpot saved the message: only a 429 says it did nothing.
        let status = resp.status().as_u16();
        match classify(resp).await {
            Ok(body) if body["id"].as_str().is_some_and(|id| !id.is_empty()) => Ok(body),
            Ok(_) => Err(HubError::Uncertain(
                "hubspot: a post answered without the message".into(),
            )),
            Err(HubError::Unavailable(why)) if status >= 500 => Err(HubError::Uncertain(why)),
            Err(e) => Err(e),
        }
    }
}

async fn classify(resp: reqwest::Response) -> Result<Value, HubError> {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or_default();
    match status {
        200..=299 => Ok(body),
        404 => Err(HubError::NotFound),
        429 => Err(HubError::Unavailable("hubspot: rate limited".into())),
        s if s >= 500 => Err(HubError::Unavailable(format!("hubspot: server error {s}"))),
        s => {
            let category = body["category"].as_str().unwrap_or("unknown");
            Err(HubError::Refused(
                s,
                format!("hubspot refused the request ({s} {category})"),
            ))
        }
    }
}
