//! The Canvas FHIR client.
//!
//! - One OAuth token (client credentials) shared by every call, refreshed by a single caller while
//!   the others wait, five minutes before it expires, and once more after any 401.
//! - Reads (GET) are retried with jittered exponential backoff on 429, 5xx and timeouts. Writes are
//!   never retried blindly: Canvas may have acted on a request whose answer was lost, and a
//!   duplicate patient or task is worse than an error. Callers that must create exactly once keep a
//!   durable record and look for the resource before creating it again.
//! - Nothing that could carry PHI (query strings, bodies) is logged: only method, resource type,
//!   status and timing.

use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::{header, Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::{de::DeserializeOwned, Deserialize};
use tokio::sync::Mutex;

use super::model::{Bundle, OperationOutcome};
use crate::config::CanvasConfig;

/// What went wrong talking to Canvas.
#[derive(Debug, thiserror::Error)]
pub enum FhirError {
    /// Canvas could not be reached, timed out, or kept failing (429/5xx) after the retries reads get.
    /// For a write, Canvas may or may not have acted.
    #[error("Canvas is unavailable: {detail}")]
    Unavailable { detail: String },
    /// The OAuth client was refused: a configuration fault, not the caller's.
    #[error("Canvas refused the service's credentials: {0}")]
    Credentials(String),
    #[error("{text}")]
    NotFound { text: String },
    /// Canvas answered 4xx with an OperationOutcome (validation, business rule, conflict).
    #[error("Canvas refused the request ({status} {code}): {text}")]
    Rejected { status: u16, code: String, text: String },
    /// Canvas answered something the client cannot read.
    #[error("unexpected answer from Canvas: {0}")]
    Protocol(String),
}

pub type FhirResult<T> = Result<T, FhirError>;

/// One page of a search.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: Option<u32>,
    /// The `next` link, relative to the FHIR base.
    pub next: Option<String>,
}

#[derive(Debug)]
struct Token {
    value: SecretString,
    refresh_at: Instant,
    generation: u64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
}

/// Refresh this long before the token's expiry, so a call never starts with a token about to lapse.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(2);

pub struct FhirClient {
    http: reqwest::Client,
    token_url: String,
    fhir_base: String,
    client_id: String,
    client_secret: SecretString,
    read_attempts: u32,
    token: Mutex<Option<Token>>,
    generations: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for FhirClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FhirClient")
            .field("fhir_base", &self.fhir_base)
            .finish_non_exhaustive()
    }
}

impl FhirClient {
    pub fn new(config: &CanvasConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout())
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Self {
            http,
            token_url: format!("{}/auth/token/", config.base_url.trim_end_matches('/')),
            fhir_base: config.fhir_url.trim_end_matches('/').to_owned(),
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            read_attempts: config.read_attempts,
            token: Mutex::new(None),
            generations: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// `GET /<ty>/<id>`.
    pub async fn read<T: DeserializeOwned>(&self, ty: &str, id: &str) -> FhirResult<T> {
        if id.is_empty() || id.contains(['/', '?', '#']) {
            return Err(FhirError::NotFound {
                text: format!("Unknown {ty} resource"),
            });
        }
        let (status, _, body) = self.send(Method::GET, ty, &format!("/{ty}/{id}"), None).await?;
        expect_ok(status, &body)?;
        parse(&body)
    }

    /// `GET /<ty>?params`: one page.
    pub async fn search<T: DeserializeOwned>(&self, ty: &str, params: &[(&str, String)]) -> FhirResult<Page<T>> {
        let query = encode_query(params);
        let path = if query.is_empty() {
            format!("/{ty}")
        } else {
            format!("/{ty}?{query}")
        };
        self.page(ty, &path).await
    }

    /// Follows a `next` link of an earlier page (relative to the FHIR base, as Canvas writes them).
    pub async fn next_page<T: DeserializeOwned>(&self, ty: &str, link: &str) -> FhirResult<Page<T>> {
        // Links are relative; one with a scheme must still point at our base.
        let path = match link.strip_prefix(&self.fhir_base) {
            Some(rest) if rest.starts_with('/') || rest.starts_with('?') => rest.to_owned(),
            Some(_) => return Err(FhirError::Protocol("a next link points outside the FHIR base".into())),
            None if link.starts_with('/') => link.to_owned(),
            None => return Err(FhirError::Protocol("a next link points outside the FHIR base".into())),
        };
        self.page(ty, &path).await
    }

    /// Every page of a search, up to `max_items`.
    pub async fn search_all<T: DeserializeOwned>(
        &self,
        ty: &str,
        params: &[(&str, String)],
        max_items: usize,
    ) -> FhirResult<Vec<T>> {
        let mut page = self.search::<T>(ty, params).await?;
        let mut items = std::mem::take(&mut page.items);
        while let Some(next) = page.next.take() {
            if items.len() >= max_items {
                break;
            }
            page = self.next_page::<T>(ty, &next).await?;
            items.append(&mut page.items);
        }
        items.truncate(max_items);
        Ok(items)
    }

    async fn page<T: DeserializeOwned>(&self, ty: &str, path: &str) -> FhirResult<Page<T>> {
        let (status, _, body) = self.send(Method::GET, ty, path, None).await?;
        expect_ok(status, &body)?;
        let bundle: Bundle<T> = parse(&body)?;
        Ok(Page {
            items: bundle.entry.into_iter().map(|e| e.resource).collect(),
            total: bundle.total,
            next: bundle.link.into_iter().find(|l| l.relation == "next").map(|l| l.url),
        })
    }

    /// `POST /<ty>`: answers the new id from the `Location` header. Never retried after the request
    /// may have reached Canvas.
    pub async fn create(&self, ty: &str, resource: &serde_json::Value) -> FhirResult<String> {
        let (status, headers, body) = self.send(Method::POST, ty, &format!("/{ty}"), Some(resource)).await?;
        if status != StatusCode::CREATED && status != StatusCode::OK {
            return Err(error_for(status, &body));
        }
        let location = headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| FhirError::Protocol(format!("{ty} created without a Location header")))?;
        id_from_location(location, ty)
            .ok_or_else(|| FhirError::Protocol(format!("{ty} created with an unreadable Location header")))
    }

    /// `PUT /<ty>/<id>`.
    pub async fn update(&self, ty: &str, id: &str, resource: &serde_json::Value) -> FhirResult<()> {
        self.update_unmodified_since(ty, id, resource, None).await
    }

    /// `PUT /<ty>/<id>` that Canvas refuses with 412 (`Rejected`, code `conflict`) when the resource
    /// changed after `last_updated` (its `meta.lastUpdated` when read), so a read-modify-write does
    /// not overwrite someone else's change.
    pub async fn update_unmodified_since(
        &self,
        ty: &str,
        id: &str,
        resource: &serde_json::Value,
        last_updated: Option<&str>,
    ) -> FhirResult<()> {
        // HTTP dates have whole seconds. Rounding the version's time up keeps our own version from
        // counting as "changed since" when Canvas compares at full precision; a change later in
        // that same second still goes unseen, which no HTTP date can express.
        let condition = last_updated
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| {
                let secs = t.timestamp() + i64::from(t.timestamp_subsec_nanos() > 0);
                chrono::DateTime::from_timestamp(secs, 0)
                    .unwrap_or_default()
                    .format("%a, %d %b %Y %H:%M:%S GMT")
                    .to_string()
            });
        if condition.is_none() {
            tracing::warn!(
                resource = ty,
                "no lastUpdated to condition the update on; writing unconditionally"
            );
        }
        let (status, _, body) = self
            .send_with(
                Method::PUT,
                ty,
                &format!("/{ty}/{id}"),
                Some(resource),
                condition.as_deref(),
            )
            .await?;
        expect_ok(status, &body)
    }

    async fn send(
        &self,
        method: Method,
        ty: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> FhirResult<(StatusCode, header::HeaderMap, Vec<u8>)> {
        self.send_with(method, ty, path, body, None).await
    }

    /// One exchange, with the token and retry policy applied; `unmodified_since` (an HTTP date)
    /// makes a PUT conditional.
    async fn send_with(
        &self,
        method: Method,
        ty: &str,
        path: &str,
        body: Option<&serde_json::Value>,
        unmodified_since: Option<&str>,
    ) -> FhirResult<(StatusCode, header::HeaderMap, Vec<u8>)> {
        let retries_allowed = method == Method::GET;
        let url = format!("{}{path}", self.fhir_base);
        let mut attempt = 0;
        let mut refreshed = false;
        loop {
            attempt += 1;
            let (token, generation) = self.token().await?;
            let mut req = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(token.expose_secret())
                .header(header::ACCEPT, "application/json");
            if let Some(body) = body {
                req = req.json(body);
            }
            if let Some(date) = unmodified_since {
                req = req.header(header::IF_UNMODIFIED_SINCE, date);
            }
            let started = Instant::now();
            let outcome = req.send().await;
            let elapsed_ms = started.elapsed().as_millis() as u64;
            let (status, headers, bytes) = match outcome {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    match resp.bytes().await {
                        Ok(b) => (status, headers, b.to_vec()),
                        Err(e) => {
                            tracing::warn!(%method, resource = ty, attempt, elapsed_ms, error = %e.without_url(), "Canvas body lost");
                            if retries_allowed && attempt < self.read_attempts {
                                backoff(attempt, None).await;
                                continue;
                            }
                            return Err(FhirError::Unavailable {
                                detail: format!("{method} {ty}: response lost"),
                            });
                        }
                    }
                }
                Err(e) => {
                    let kind = if e.is_timeout() {
                        "timed out"
                    } else {
                        "connection failed"
                    };
                    tracing::warn!(%method, resource = ty, attempt, elapsed_ms, "Canvas request {kind}");
                    if retries_allowed && attempt < self.read_attempts {
                        backoff(attempt, None).await;
                        continue;
                    }
                    return Err(FhirError::Unavailable {
                        detail: format!("{method} {ty}: {kind}"),
                    });
                }
            };
            tracing::debug!(%method, resource = ty, status = status.as_u16(), attempt, elapsed_ms, "Canvas call");
            if status == StatusCode::UNAUTHORIZED {
                // The token expired or was revoked early: fetch a new one and try once more. The
                // request was refused before Canvas acted on it, so this is safe for writes too.
                self.invalidate(generation).await;
                if !refreshed {
                    refreshed = true;
                    attempt -= 1;
                    continue;
                }
                return Err(FhirError::Credentials("Canvas answered 401 with a fresh token".into()));
            }
            if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                tracing::warn!(%method, resource = ty, status = status.as_u16(), attempt, "Canvas is failing");
                if retries_allowed && attempt < self.read_attempts {
                    backoff(attempt, retry_after(&headers)).await;
                    continue;
                }
                return Err(FhirError::Unavailable {
                    detail: format!("{method} {ty}: {}", status.as_u16()),
                });
            }
            return Ok((status, headers, bytes));
        }
    }

    /// The current token, fetching one when there is none or it is due for refresh. The lock makes
    /// concurrent callers wait for one fetch instead of each fetching.
    async fn token(&self) -> FhirResult<(SecretString, u64)> {
        let mut slot = self.token.lock().await;
        if let Some(t) = slot.as_ref() {
            if Instant::now() < t.refresh_at {
                return Ok((t.value.clone(), t.generation));
            }
        }
        let fresh = self.fetch_token().await?;
        let out = (fresh.value.clone(), fresh.generation);
        *slot = Some(fresh);
        Ok(out)
    }

    /// Forgets the token that got a 401, unless another caller already replaced it.
    async fn invalidate(&self, generation: u64) {
        let mut slot = self.token.lock().await;
        if slot.as_ref().is_some_and(|t| t.generation == generation) {
            *slot = None;
        }
    }

    async fn fetch_token(&self) -> FhirResult<Token> {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose_secret()),
        ];
        let mut attempt = 0;
        let resp = loop {
            attempt += 1;
            match self.http.post(&self.token_url).form(&form).send().await {
                Ok(r)
                    if (r.status().is_server_error() || r.status() == StatusCode::TOO_MANY_REQUESTS)
                        && attempt < self.read_attempts =>
                {
                    backoff(attempt, retry_after(r.headers())).await;
                }
                Ok(r) => break r,
                // Fetching a token has no effect in Canvas, so it may be retried like a read.
                Err(_) if attempt < self.read_attempts => backoff(attempt, None).await,
                Err(e) => {
                    let kind = if e.is_timeout() {
                        "timed out"
                    } else {
                        "connection failed"
                    };
                    return Err(FhirError::Unavailable {
                        detail: format!("token endpoint {kind}"),
                    });
                }
            }
        };
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::BAD_REQUEST || status == StatusCode::FORBIDDEN {
            tracing::error!(
                status = status.as_u16(),
                "Canvas refused CANVAS_CLIENT_ID/CANVAS_CLIENT_SECRET"
            );
            return Err(FhirError::Credentials(format!(
                "token endpoint answered {}",
                status.as_u16()
            )));
        }
        if !status.is_success() {
            return Err(FhirError::Unavailable {
                detail: format!("token endpoint answered {}", status.as_u16()),
            });
        }
        let body: TokenResponse = resp
            .json()
            .await
            .map_err(|_| FhirError::Protocol("token response is not the expected JSON".into()))?;
        let lifetime = Duration::from_secs(body.expires_in.unwrap_or(3600));
        let generation = self.generations.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        tracing::info!(lifetime_secs = lifetime.as_secs(), "Canvas token fetched");
        Ok(Token {
            value: SecretString::from(body.access_token),
            refresh_at: Instant::now() + lifetime.saturating_sub(REFRESH_MARGIN.min(lifetime / 2)),
            generation,
        })
    }
}

/// Full jitter: a random wait up to the exponential bound, honouring `Retry-After` when Canvas
/// sends one (capped, so a bad header cannot stall a call).
async fn backoff(attempt: u32, retry_after: Option<Duration>) {
    let bound = BACKOFF_BASE.saturating_mul(1 << attempt.min(8)).min(BACKOFF_CAP);
    let jittered = Duration::from_millis(rand::thread_rng().gen_range(0..=bound.as_millis() as u64));
    tokio::time::sleep(retry_after.map_or(jittered, |r| r.min(BACKOFF_CAP))).await;
}

fn retry_after(headers: &header::HeaderMap) -> Option<Duration> {
    headers
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

fn expect_ok(status: StatusCode, body: &[u8]) -> FhirResult<()> {
    if status.is_success() {
        Ok(())
    } else {
        Err(error_for(status, body))
    }
}

fn error_for(status: StatusCode, body: &[u8]) -> FhirError {
    let (code, text) = outcome_of(body);
    if status == StatusCode::NOT_FOUND {
        return FhirError::NotFound {
            text: if text.is_empty() {
                "not found in Canvas".into()
            } else {
                text
            },
        };
    }
    FhirError::Rejected {
        status: status.as_u16(),
        code,
        text: if text.is_empty() {
            // Canvas sometimes answers HTML (a wrong host, the FHIR API not enabled).
            "no OperationOutcome in the answer".into()
        } else {
            text
        },
    }
}

fn outcome_of(body: &[u8]) -> (String, String) {
    serde_json::from_slice::<OperationOutcome>(body)
        .map(|o| o.summary())
        .unwrap_or_default()
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> FhirResult<T> {
    serde_json::from_slice(body)
        .map_err(|e| FhirError::Protocol(format!("cannot read the resource: {}", e.classify_name())))
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    // The error's Display may quote a value from the body (PHI); its category may not.
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "io",
            serde_json::error::Category::Syntax => "not JSON",
            serde_json::error::Category::Data => "unexpected shape",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}

/// The id in a `Location` header: the segment after `/<ty>/`, whatever the scheme and host, with or
/// without `/_history/<n>`.
pub fn id_from_location(location: &str, ty: &str) -> Option<String> {
    let marker = format!("/{ty}/");
    let start = location.rfind(&marker)? + marker.len();
    let id = location[start..].split(['/', '?', '#']).next()?;
    (!id.is_empty()).then(|| id.to_owned())
}

/// Query string for search parameters (values percent-encoded; commas kept, they mean OR).
fn encode_query(params: &[(&str, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b',' | b'/' | b':' | b'|' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_every_location_shape() {
        for loc in [
            "http://fumage-x.canvasmedical.com/Task/abc",
            "https://fumage-x.canvasmedical.com/Task/abc/_history/1",
            "/canvas-fhir/Task/abc/_history/3",
        ] {
            assert_eq!(id_from_location(loc, "Task").as_deref(), Some("abc"), "{loc}");
        }
        assert_eq!(id_from_location("http://x/Patient/abc", "Task"), None);
        assert_eq!(id_from_location("http://x/Task/", "Task"), None);
    }

    #[test]
    fn queries_keep_commas_and_escape_the_rest() {
        let q = encode_query(&[
            ("_id", "a,b".into()),
            ("label", "Rx Review".into()),
            ("email", "a+b@x.com".into()),
        ]);
        assert_eq!(q, "_id=a,b&label=Rx%20Review&email=a%2Bb%40x.com");
    }
}
