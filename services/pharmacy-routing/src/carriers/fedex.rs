//! FedEx's OAuth and Track API (`/oauth/token`, `/track/v1/trackingnumbers`): a bearer token kept
//! until shortly before it expires, at most 30 numbers a call, a number FedEx does not know answered
//! inside a 200, 401 with `errors[]`, 429 when throttled.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use tokio::sync::Mutex;

/// The most numbers FedEx takes in one Track request.
pub const MAX_NUMBERS: usize = 30;

/// What went wrong with a Track call.
#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    #[error("FedEx throttled the call")]
    Throttled(Option<Duration>),
    #[error("FedEx could not be reached or failed: {0}")]
    Unavailable(String),
    #[error("FedEx refused our credentials or request: {0}")]
    Refused(String),
}

/// One scan, newest first as FedEx lists them.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Scan {
    pub at: Option<DateTime<Utc>>,
    /// FedEx's derived status code of the scan (`PU`, `IT`, `DL`, ...).
    pub code: String,
    pub description: String,
    /// "City, ST", never an address.
    pub location: String,
}

/// A number's tracking as FedEx answered it.
#[derive(Clone, Debug, PartialEq)]
pub struct Tracked {
    pub number: String,
    /// False when FedEx does not know the number (yet).
    pub found: bool,
    /// `latestStatusDetail.code`: `OC`, `PU`, `IT`, `OD`, `DL`, `DE`, ... (the derived code folds out
    /// for delivery into in transit, so the code is what tells them apart).
    pub code: String,
    pub description: String,
    pub estimated: Option<(DateTime<Utc>, DateTime<Utc>)>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub scans: Vec<Scan>,
}

pub struct Fedex {
    http: reqwest::Client,
    base: String,
    client_id: String,
    client_secret: SecretString,
    token: Mutex<Option<(String, Instant)>>,
}

impl std::fmt::Debug for Fedex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fedex")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Fedex {
    pub fn new(base: &str, client_id: &str, client_secret: SecretString, timeout: Duration) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a TLS-capable client builds"),
            base: base.trim_end_matches('/').to_owned(),
            client_id: client_id.to_owned(),
            client_secret,
            token: Mutex::new(None),
        }
    }

    /// The tracking of up to [`MAX_NUMBERS`] numbers, in one call (a token refused is renewed once).
    pub async fn track(&self, numbers: &[String]) -> Result<Vec<Tracked>, TrackError> {
        assert!(numbers.len() <= MAX_NUMBERS, "FedEx takes at most 30 numbers a call");
        for renewed in [false, true] {
            let token = self.token(renewed).await?;
            let body = json!({
                "includeDetailedScans": true,
                "trackingInfo": numbers
                    .iter()
                    .map(|n| json!({ "trackingNumberInfo": { "trackingNumber": n } }))
                    .collect::<Vec<_>>(),
            });
            let resp = self
                .http
                .post(format!("{}/track/v1/trackingnumbers", self.base))
                .bearer_auth(&token)
                .header("X-locale", "en_US")
                .json(&body)
                .send()
                .await
                .map_err(|e| TrackError::Unavailable(e.without_url().to_string()))?;
            match resp.status().as_u16() {
                200 => {
                    let v: Value = resp
                        .json()
                        .await
                        .map_err(|_| TrackError::Unavailable("an answer that is not JSON".into()))?;
                    return Ok(parse(&v));
                }
                401 if !renewed => *self.token.lock().await = None,
                429 => return Err(TrackError::Throttled(retry_after(&resp))),
                s if s >= 500 => return Err(TrackError::Unavailable(format!("HTTP {s}"))),
                s => return Err(TrackError::Refused(format!("HTTP {s}: {}", error_code(resp).await))),
            }
        }
        Err(TrackError::Refused("the renewed token was refused too".into()))
    }

    async fn token(&self, renew: bool) -> Result<String, TrackError> {
        let mut held = self.token.lock().await;
        if let (false, Some((token, until))) = (renew, held.as_ref()) {
            if Instant::now() < *until {
                return Ok(token.clone());
            }
        }
        let resp = self
            .http
            .post(format!("{}/oauth/token", self.base))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", self.client_id.as_str()),
                ("client_secret", self.client_secret.expose_secret()),
            ])
            .send()
            .await
            .map_err(|e| TrackError::Unavailable(e.without_url().to_string()))?;
        match resp.status().as_u16() {
            200 => {}
            429 => return Err(TrackError::Throttled(retry_after(&resp))),
            s if s >= 500 => return Err(TrackError::Unavailable(format!("token: HTTP {s}"))),
            s => {
                return Err(TrackError::Refused(format!(
                    "token: HTTP {s}: {}",
                    error_code(resp).await
                )))
            }
        }
        let v: Value = resp
            .json()
            .await
            .map_err(|_| TrackError::Unavailable("a token answer that is not JSON".into()))?;
        let token = v["access_token"]
            .as_str()
            .ok_or_else(|| TrackError::Refused("a token answer without access_token".into()))?
            .to_owned();
        // Renewed a minute early, so a call never carries a token that expires on the way.
        let lasts = v["expires_in"].as_u64().unwrap_or(3599).saturating_sub(60);
        *held = Some((token.clone(), Instant::now() + Duration::from_secs(lasts)));
        Ok(token)
    }
}

fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    resp.headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .map(Duration::from_secs)
}

/// The first `errors[].code` of a FedEx error answer (a code, never free text).
async fn error_code(resp: reqwest::Response) -> String {
    let v: Value = resp.json().await.unwrap_or_default();
    v["errors"][0]["code"].as_str().unwrap_or("no error code").to_owned()
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// The answer's `completeTrackResults`, one per number.
fn parse(v: &Value) -> Vec<Tracked> {
    let empty = Vec::new();
    v["output"]["completeTrackResults"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|complete| {
            let number = complete["trackingNumber"].as_str().unwrap_or_default().to_owned();
            let r = &complete["trackResults"][0];
            if !r["error"].is_null() {
                return Tracked {
                    number,
                    found: false,
                    code: String::new(),
                    description: String::new(),
                    estimated: None,
                    delivered_at: None,
                    scans: Vec::new(),
                };
            }
            let latest = &r["latestStatusDetail"];
            let dated = |kind: &str| {
                r["dateAndTimes"]
                    .as_array()
                    .and_then(|all| all.iter().find(|d| d["type"] == kind))
                    .and_then(|d| time(&d["dateTime"]))
            };
            let window = &r["estimatedDeliveryTimeWindow"]["window"];
            let estimated = match (time(&window["begins"]), time(&window["ends"])) {
                (Some(b), Some(e)) => Some((b, e)),
                (None, Some(e)) => Some((e, e)),
                _ => dated("ESTIMATED_DELIVERY").map(|t| (t, t)),
            };
            let place = |l: &Value| {
                let parts: Vec<&str> = [&l["city"], &l["stateOrProvinceCode"]]
                    .iter()
                    .filter_map(|p| p.as_str())
                    .filter(|p| !p.is_empty())
                    .collect();
                parts.join(", ")
            };
            Tracked {
                number,
                found: true,
                code: latest["code"].as_str().unwrap_or_default().to_owned(),
                description: latest["description"]
                    .as_str()
                    .or(latest["statusByLocale"].as_str())
                    .unwrap_or_default()
                    .to_owned(),
                estimated,
                delivered_at: dated("ACTUAL_DELIVERY"),
                scans: r["scanEvents"]
                    .as_array()
                    .unwrap_or(&empty)
                    .iter()
                    .map(|s| Scan {
                        at: time(&s["date"]),
                        code: s["derivedStatusCode"].as_str().unwrap_or_default().to_owned(),
                        description: s["eventDescription"].as_str().unwrap_or_default().to_owned(),
                        location: place(&s["scanLocation"]),
                    })
                    .collect(),
            }
        })
        .collect()
}

/// The link a patient follows to FedEx's own tracking page.
pub fn tracking_url(number: &str) -> String {
    format!("https://www.fedex.com/fedextrack/?trknbr={number}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_track_answer_reads_as_fedex_writes_it() {
        let v = json!({ "output": { "completeTrackResults": [
            { "trackingNumber": "794612345678", "trackResults": [{
                "latestStatusDetail": { "code": "OD", "derivedCode": "IT", "description": "On FedEx vehicle for delivery" },
                "dateAndTimes": [{ "type": "ACTUAL_PICKUP", "dateTime": "2026-12-07T10:00:00-05:00" }],
                "estimatedDeliveryTimeWindow": { "window": { "begins": "2026-12-08T08:00:00-05:00", "ends": "2026-12-08T10:30:00-05:00" } },
                "scanEvents": [
                    { "date": "2026-12-08T07:00:00-05:00", "derivedStatusCode": "IT", "eventDescription": "On FedEx vehicle for delivery",
                      "scanLocation": { "city": "NEWARK", "stateOrProvinceCode": "NJ", "streetLines": [""] } },
                    { "date": "2026-12-07T10:00:00-05:00", "derivedStatusCode": "PU", "eventDescription": "Picked up",
                      "scanLocation": { "city": "MEMPHIS", "stateOrProvinceCode": "TN" } }
                ]
            }]},
            { "trackingNumber": "000000000000", "trackResults": [{ "error": { "code": "TRACKING.TRACKINGNUMBER.NOTFOUND" } }] }
        ]}});
        let got = parse(&v);
        assert_eq!(got.len(), 2);
        assert!(got[0].found && !got[1].found);
        assert_eq!(got[0].code, "OD");
        assert_eq!(got[0].scans[0].location, "NEWARK, NJ");
        assert_eq!(got[0].scans[1].code, "PU");
        let (begins, ends) = got[0].estimated.unwrap();
        assert!(begins < ends);
        assert_eq!(got[0].delivered_at, None);
    }
}
