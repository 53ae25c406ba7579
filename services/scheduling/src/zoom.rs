//! The Zoom client: Server-to-Server OAuth (an account token, cached until shortly before it
//! expires and fetched again when Zoom calls it expired) and the Meetings API v2 calls booking
//! needs. Zoom has no idempotency keys, so a create whose answer was lost is reported as uncertain:
//! the caller looks the meeting up (host, start and our reference in the agenda) before creating
//! another. Logs name the method, the path with ids masked, the status and Zoom's tracking id; never
//! a join link, a passcode or a topic.

use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::config::ZoomConfig;

/// A meeting as booking keeps it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Meeting {
    pub id: i64,
    pub join_url: String,
    pub password: String,
}

impl std::fmt::Debug for Meeting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meeting").field("id", &self.id).finish_non_exhaustive()
    }
}

/// What booking asks Zoom for: the seed's body.
#[derive(Clone, Debug)]
pub(crate) struct NewMeeting<'a> {
    pub host: &'a str,
    pub topic: String,
    pub start: DateTime<Utc>,
    pub duration_minutes: i64,
    /// Our reference, kept in the agenda so a lost create can be found again.
    pub reference: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ZoomError {
    /// Nothing happened at Zoom (a refused connection, a rate limit, a read that failed): try later.
    #[error("zoom unavailable: {0}")]
    Unavailable(String),
    /// The request may have been carried out (a lost answer, a 5xx to a write).
    #[error("zoom outcome unknown: {0}")]
    Uncertain(String),
    /// Zoom refused it and will again (validation, an unknown user or meeting).
    /// Zoom's message is kept out of the display: it can name a host's email.
    #[error("zoom refused: HTTP {status}, code {code}")]
    Refused { status: u16, code: i64, message: String },
}

#[derive(Deserialize)]
struct ZoomErrorBody {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct TokenBody {
    access_token: String,
    expires_in: u64,
}

#[derive(Deserialize)]
struct MeetingBody {
    id: i64,
    #[serde(default)]
    join_url: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    agenda: String,
}

#[derive(Deserialize)]
struct MeetingList {
    #[serde(default)]
    meetings: Vec<MeetingBody>,
    #[serde(default)]
    next_page_token: String,
}

pub(crate) struct Zoom {
    http: reqwest::Client,
    base_url: String,
    token_url: String,
    account_id: String,
    client_id: String,
    client_secret: SecretString,
    token: Mutex<Option<(String, Instant)>>,
}

impl std::fmt::Debug for Zoom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zoom")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// Zoom's 401 for an expired or unknown token.
const INVALID_TOKEN: i64 = 124;
/// Zoom's 404 for a meeting that is gone.
const MEETING_NOT_FOUND: i64 = 3001;

impl Zoom {
    pub(crate) fn new(config: &ZoomConfig) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(config.timeout_secs))
                .build()?,
            base_url: config.base_url.trim_end_matches('/').to_owned(),
            token_url: config.token_url.clone(),
            account_id: config.account_id.clone(),
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            token: Mutex::new(None),
        })
    }

    /// The account token, fetched when missing, near its end, or after Zoom called it invalid.
    async fn token(&self, refresh: bool) -> Result<String, ZoomError> {
        let mut held = self.token.lock().await;
        if let Some((token, until)) = held.as_ref() {
            if !refresh && Instant::now() < *until {
                return Ok(token.clone());
            }
        }
        let resp = self
            .http
            .post(&self.token_url)
            .basic_auth(&self.client_id, Some(self.client_secret.expose_secret()))
            .form(&[("grant_type", "account_credentials"), ("account_id", &self.account_id)])
            .send()
            .await
            .map_err(|e| ZoomError::Unavailable(format!("token request failed: {}", without_url(&e))))?;
        let status = resp.status();
        tracing::info!(
            vendor = "zoom",
            method = "POST",
            path = "/oauth/token",
            status = status.as_u16(),
            "zoom call"
        );
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return Err(ZoomError::Unavailable(format!("token request answered {status}")));
        }
        if !status.is_success() {
            // Zoom's token errors are {"reason", "error"}: our credentials are wrong.
            let body: Value = resp.json().await.unwrap_or_default();
            return Err(ZoomError::Refused {
                status: status.as_u16(),
                code: 0,
                message: format!("token refused: {}", body["error"].as_str().unwrap_or("unknown error")),
            });
        }
        let body: TokenBody = resp
            .json()
            .await
            .map_err(|_| ZoomError::Unavailable("token answer unreadable".into()))?;
        // A minute's margin, so a token never expires between our check and Zoom's.
        let until = Instant::now() + Duration::from_secs(body.expires_in.saturating_sub(60).max(1));
        *held = Some((body.access_token.clone(), until));
        Ok(body.access_token)
    }

    /// One API call. A 401 "invalid token" means nothing was done: fetch a new token and try once
    /// more.
    async fn call(
        &self,
        method: Method,
        path: &str,
        masked: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), ZoomError> {
        let mut refresh = false;
        loop {
            let token = self.token(refresh).await?;
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.base_url))
                .bearer_auth(token);
            if let Some(b) = body {
                req = req.json(b);
            }
            let writes = method != Method::GET;
            let resp = match req.send().await {
                Ok(r) => r,
                // A connection never made carried nothing; any other failure may have.
                Err(e) if e.is_connect() => return Err(ZoomError::Unavailable(without_url(&e))),
                Err(e) if writes => return Err(ZoomError::Uncertain(without_url(&e))),
                Err(e) => return Err(ZoomError::Unavailable(without_url(&e))),
            };
            let status = resp.status();
            let tracking = resp
                .headers()
                .get("x-zm-trackingid")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            tracing::info!(vendor = "zoom", method = %method, path = masked, status = status.as_u16(), tracking, "zoom call");
            let text = resp.text().await.unwrap_or_default();
            let value: Value = if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or(Value::Null)
            };
            if status.is_success() {
                return Ok((status, value));
            }
            let err: ZoomErrorBody = serde_json::from_value(value.clone()).unwrap_or(ZoomErrorBody {
                code: 0,
                message: String::new(),
            });
            if status == StatusCode::UNAUTHORIZED && err.code == INVALID_TOKEN && !refresh {
                refresh = true;
                continue;
            }
            // A fresh token refused, or an app without the meeting scopes: our configuration, which
            // an operator fixes; the work waits for it.
            if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
                tracing::error!(
                    vendor = "zoom",
                    status = status.as_u16(),
                    code = err.code,
                    "zoom refused the app: check its credentials and scopes"
                );
                return Err(ZoomError::Unavailable(format!("zoom refused the app: HTTP {status}")));
            }
            if status == StatusCode::TOO_MANY_REQUESTS {
                return Err(ZoomError::Unavailable(format!("rate limited: {}", err.message)));
            }
            if status.is_server_error() {
                let why = format!("HTTP {status}");
                return Err(if writes {
                    ZoomError::Uncertain(why)
                } else {
                    ZoomError::Unavailable(why)
                });
            }
            return Err(ZoomError::Refused {
                status: status.as_u16(),
                code: err.code,
                message: err.message,
            });
        }
    }

    /// Creates a scheduled meeting (type 2) hosted by `m.host`.
    pub(crate) async fn create_meeting(&self, m: &NewMeeting<'_>) -> Result<Meeting, ZoomError> {
        let body = json!({
            "topic": m.topic,
            "type": 2,
            "start_time": zoom_time(m.start),
            "duration": m.duration_minutes,
            "timezone": "UTC",
            "agenda": agenda(m.reference),
            "settings": { "join_before_host": true, "waiting_room": true },
        });
        let path = format!("/users/{}/meetings", segment(m.host));
        let (_, value) = self
            .call(Method::POST, &path, "/users/{user}/meetings", Some(&body))
            .await?;
        let body: MeetingBody = serde_json::from_value(value)
            .map_err(|_| ZoomError::Uncertain("the create answer was unreadable".into()))?;
        Ok(meeting(body))
    }

    /// The meeting a create for `reference` made, if Zoom has it: how a create whose answer was
    /// lost is settled. The reference is unique to one appointment, and the agenda holds it alone.
    pub(crate) async fn find_meeting(&self, host: &str, reference: &str) -> Result<Option<Meeting>, ZoomError> {
        let wanted = agenda(reference);
        let mut token = String::new();
        // Bounded: a host has at most a few hundred upcoming meetings.
        for _ in 0..20 {
            let mut path = format!("/users/{}/meetings?type=upcoming&page_size=300", segment(host));
            if !token.is_empty() {
                path.push_str(&format!("&next_page_token={}", segment(&token)));
            }
            let (_, value) = self
                .call(Method::GET, &path, "/users/{user}/meetings", None)
                .await
                .map_err(|e| match e {
                    ZoomError::Uncertain(why) => ZoomError::Unavailable(why),
                    other => other,
                })?;
            let page: MeetingList = serde_json::from_value(value)
                .map_err(|_| ZoomError::Unavailable("the meeting list was unreadable".into()))?;
            if let Some(found) = page.meetings.into_iter().find(|m| m.agenda == wanted) {
                // The list leaves out the passcode: read the meeting itself.
                return self.get_meeting(found.id).await;
            }
            if page.next_page_token.is_empty() {
                return Ok(None);
            }
            token = page.next_page_token;
        }
        Ok(None)
    }

    pub(crate) async fn get_meeting(&self, id: i64) -> Result<Option<Meeting>, ZoomError> {
        match self
            .call(Method::GET, &format!("/meetings/{id}"), "/meetings/{id}", None)
            .await
        {
            Ok((_, value)) => {
                let body: MeetingBody = serde_json::from_value(value)
                    .map_err(|_| ZoomError::Unavailable("the meeting was unreadable".into()))?;
                Ok(Some(meeting(body)))
            }
            Err(ZoomError::Refused {
                code: MEETING_NOT_FOUND,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Moves a meeting; the same move twice is the same meeting. `Ok(false)` when it is gone.
    pub(crate) async fn move_meeting(
        &self,
        id: i64,
        start: DateTime<Utc>,
        duration_minutes: i64,
    ) -> Result<bool, ZoomError> {
        let body = json!({ "start_time": zoom_time(start), "duration": duration_minutes, "timezone": "UTC" });
        match self
            .call(Method::PATCH, &format!("/meetings/{id}"), "/meetings/{id}", Some(&body))
            .await
        {
            Ok(_) => Ok(true),
            Err(ZoomError::Refused {
                code: MEETING_NOT_FOUND,
                ..
            }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes a meeting; one already gone counts as deleted.
    pub(crate) async fn delete_meeting(&self, id: i64) -> Result<(), ZoomError> {
        let path = format!("/meetings/{id}?cancel_meeting_reminder=true");
        match self.call(Method::DELETE, &path, "/meetings/{id}", None).await {
            Ok(_)
            | Err(ZoomError::Refused {
                code: MEETING_NOT_FOUND,
                ..
            }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn meeting(body: MeetingBody) -> Meeting {
    Meeting {
        id: body.id,
        join_url: body.join_url,
        password: body.password,
    }
}

/// The agenda carries our reference (an appointment id, no PHI) so the meeting can be found again.
fn agenda(reference: &str) -> String {
    format!("YourEra telehealth visit. Ref: {reference}")
}

/// Zoom's GMT form, `yyyy-MM-ddTHH:mm:ssZ`.
fn zoom_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A path segment, percent-encoded.
fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'@' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// reqwest's errors name the URL, which can carry a host's email: keep only the kind.
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the answer broke off"
    } else {
        "the request failed"
    };
    kind.to_owned()
}
