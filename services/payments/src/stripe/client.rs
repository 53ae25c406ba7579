//! The Stripe client: form-encoded v1 requests, errors by kind, and retries only where Stripe's own
//! idempotency makes them safe.
//!
//! Every POST carries the idempotency key the caller derived from a durable record (never a fresh
//! random one per attempt), so a retry after a lost answer replays Stripe's stored result instead of
//! charging again. Retries happen on network failures, 409 (the same key still in flight), 5xx, 429
//! and whenever Stripe says `Stripe-Should-Retry: true`; never when it says `false`.

use std::time::Duration;

use rand::Rng as _;
use reqwest::{header, Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use super::types::{ApiErrorBody, StripeError, StripeErrorKind};
use crate::config::StripeConfig;

/// The API version whose object shapes the client reads (promotion codes changed shape in 2025-09).
pub(super) const STRIPE_VERSION: &str = "2024-06-20";
const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_CAP: Duration = Duration::from_secs(3);

pub struct StripeClient {
    http: reqwest::Client,
    base: String,
    key: SecretString,
    max_retries: u32,
}

impl std::fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// Form parameters in order; nested keys written out (`metadata[k]`, `expand[0]`).
pub type Params = Vec<(String, String)>;

pub type StripeResult<T> = Result<T, StripeError>;

impl StripeClient {
    pub fn new(config: &StripeConfig) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(config.timeout_secs))
                .connect_timeout(Duration::from_secs(5))
                .build()?,
            base: config.api_base.trim_end_matches('/').to_owned(),
            key: config.secret_key.clone(),
            max_retries: config.max_retries,
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str, params: &Params) -> StripeResult<T> {
        self.send(Method::GET, path, params, None).await
    }

    /// A POST under `idempotency_key`, which the caller keeps durably before calling.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &Params,
        idempotency_key: &str,
    ) -> StripeResult<T> {
        self.send(Method::POST, path, params, Some(idempotency_key)).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        params: &Params,
        idempotency_key: Option<&str>,
    ) -> StripeResult<T> {
        let url = format!("{}{path}", self.base);
        let body = encode(params);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(self.key.expose_secret())
                .header("Stripe-Version", STRIPE_VERSION)
                .header(header::ACCEPT, "application/json");
            req = if method == Method::GET {
                req.query(params)
            } else {
                req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body.clone())
            };
            if let Some(key) = idempotency_key {
                req = req.header("Idempotency-Key", key);
            }
            let outcome = req.send().await;
            let resp = match outcome {
                Ok(r) => r,
                Err(e) => {
                    let kind = if e.is_timeout() {
                        "timed out"
                    } else {
                        "connection failed"
                    };
                    tracing::warn!(%method, path = path_template(path), attempt, "Stripe request {kind}");
                    // A lost request may have reached Stripe: only the same key makes another safe.
                    if self.may_retry(&method, idempotency_key, attempt) {
                        backoff(attempt).await;
                        continue;
                    }
                    return Err(StripeError::network(format!(
                        "{method} {}: {kind}",
                        path_template(path)
                    )));
                }
            };
            let status = resp.status();
            let should_retry = resp
                .headers()
                .get("stripe-should-retry")
                .and_then(|v| v.to_str().ok())
                .map(|v| v == "true");
            let request_id = resp
                .headers()
                .get("request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let bytes = match resp.bytes().await {
                Ok(b) => b,
                Err(_) => {
                    if self.may_retry(&method, idempotency_key, attempt) {
                        backoff(attempt).await;
                        continue;
                    }
                    return Err(StripeError::network(format!(
                        "{method} {}: answer lost",
                        path_template(path)
                    )));
                }
            };
            tracing::debug!(%method, path = path_template(path), status = status.as_u16(), attempt, request_id, "Stripe call");
            if status.is_success() {
                return serde_json::from_slice(&bytes)
                    .map_err(|_| StripeError::api(status.as_u16(), "Stripe answered with an unreadable object"));
            }
            let retryable = match should_retry {
                Some(explicit) => explicit,
                None => {
                    status == StatusCode::CONFLICT
                        || status == StatusCode::TOO_MANY_REQUESTS
                        || status.is_server_error()
                }
            };
            if retryable && self.may_retry(&method, idempotency_key, attempt) {
                tracing::warn!(%method, path = path_template(path), status = status.as_u16(), attempt, "Stripe asked for a retry");
                backoff(attempt).await;
                continue;
            }
            let body: ApiErrorBody = serde_json::from_slice(&bytes).unwrap_or_default();
            let err = StripeError::from_body(status.as_u16(), body.error);
            if err.kind != StripeErrorKind::Card {
                tracing::warn!(%method, path = path_template(path), status = status.as_u16(), kind = ?err.kind, code = err.code.as_deref().unwrap_or_default(), request_id, "Stripe refused a request");
            }
            return Err(err);
        }
    }

    /// Reads may always be retried; writes only under an idempotency key.
    fn may_retry(&self, method: &Method, key: Option<&str>, attempt: u32) -> bool {
        attempt <= self.max_retries && (method == Method::GET || key.is_some())
    }
}

async fn backoff(attempt: u32) {
    let bound = BACKOFF_BASE.saturating_mul(1 << attempt.min(6)).min(BACKOFF_CAP);
    let wait = rand::thread_rng().gen_range(bound / 2..=bound);
    tokio::time::sleep(wait).await;
}

/// The path with ids replaced, for logs (`/v1/payment_intents/{id}/confirm`).
fn path_template(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.contains('_') && seg.len() > 8 && !seg.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                "{id}"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `application/x-www-form-urlencoded`, brackets escaped (Stripe accepts either).
fn encode(params: &Params) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_escape_brackets_and_values() {
        let params = vec![
            ("metadata[reference]".to_owned(), "run 1/payment".to_owned()),
            ("expand[0]".to_owned(), "latest_charge".to_owned()),
        ];
        assert_eq!(
            encode(&params),
            "metadata%5Breference%5D=run%201%2Fpayment&expand%5B0%5D=latest_charge"
        );
    }

    #[test]
    fn log_paths_hide_ids() {
        assert_eq!(
            path_template("/v1/payment_intents/pi_3Nabc123XYZ/confirm"),
            "/v1/payment_intents/{id}/confirm"
        );
        assert_eq!(path_template("/v1/customers"), "/v1/customers");
    }
}
