//! Server-to-Server OAuth (external-apis.md §1): `POST /zoom/oauth/token` with
//! `grant_type=account_credentials&account_id=...` as a form body or, as community code sends
//! them, query parameters, and the app's client as HTTP Basic. No refresh token; every token
//! issued stays valid for its hour, so several can be in use at once.

use std::collections::HashMap;

use axum::{
    body::Bytes,
    extract::{RawQuery, State},
    response::{IntoResponse, Response},
    Json,
};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use http::{header, HeaderMap, StatusCode};
use rand::RngCore;
use serde_json::{json, Value};

use super::errors::{ZoomError, ZoomResult};
use crate::{urlencoded, Sandbox};

/// Zoom documents an hour and answers `expires_in: 3599`; the token stops at that second.
pub(crate) const LIFETIME_SECS: i64 = 3599;
/// What an app with the meeting and user admin scopes is granted.
pub(crate) const SCOPE: &str = "meeting:read:admin meeting:write:admin user:read:admin";

/// Issued tokens and when each stops working. Expired ones are kept so a caller is told "expired"
/// rather than "invalid", as Zoom tells them apart.
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    expires: HashMap<String, DateTime<Utc>>,
}

impl Tokens {
    fn issue(&mut self, account_id: &str, client_id: &str, now: DateTime<Utc>) -> String {
        let token = new_token(account_id, client_id, now);
        self.expires
            .insert(token.clone(), now + Duration::seconds(LIFETIME_SECS));
        token
    }

    pub(crate) fn check(&self, token: &str, now: DateTime<Utc>) -> ZoomResult<()> {
        match self.expires.get(token) {
            Some(exp) if now < *exp => Ok(()),
            Some(_) => Err(ZoomError::expired_token()),
            None => Err(ZoomError::invalid_token()),
        }
    }

    /// Makes every token issued so far expired, as if the hour had passed.
    pub(crate) fn expire_all(&mut self, now: DateTime<Utc>) {
        for exp in self.expires.values_mut() {
            *exp = now;
        }
    }

    pub(crate) fn describe(&self, now: DateTime<Utc>) -> Value {
        let valid = self.expires.values().filter(|exp| now < **exp).count();
        json!({ "issued": self.expires.len(), "valid": valid })
    }
}

/// A JWT-shaped token like Zoom's: clients treat it as opaque, but one that looks the part keeps
/// length and charset assumptions honest. The signature is random; nothing verifies it.
fn new_token(account_id: &str, client_id: &str, now: DateTime<Utc>) -> String {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let header = json!({ "sv": "0.0.1", "alg": "HS512", "v": "2.0", "kid": uuid::Uuid::new_v4().simple().to_string() });
    let payload = json!({
        "aud": "https://oauth.zoom.us",
        "iss": format!("zm:cid:{client_id}"),
        "aid": account_id,
        "grant_type": "account_credentials",
        "iat": now.timestamp(),
        "exp": now.timestamp() + LIFETIME_SECS,
        "jti": uuid::Uuid::new_v4().to_string(),
    });
    let mut signature = [0u8; 64];
    rand::thread_rng().fill_bytes(&mut signature);
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes()),
        b64(&signature)
    )
}

fn oauth_error(reason: &str, error: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "reason": reason, "error": error })),
    )
        .into_response()
}

/// `POST /zoom/oauth/token`.
pub(crate) async fn token(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let form = urlencoded::pairs(&String::from_utf8_lossy(&body));
    let query = urlencoded::pairs(query.as_deref().unwrap_or(""));
    // The form body wins; the query string is the fallback community clients rely on.
    let param = |key: &str| {
        urlencoded::first(&form, key)
            .or_else(|| urlencoded::first(&query, key))
            .filter(|v| !v.is_empty())
    };

    let config = sandbox.config();
    let (id, secret) = basic_credentials(&headers).unwrap_or_default();
    // Both compared, always: no early exit tells a caller which half was wrong.
    let id_ok = crate::secret::matches(&id, &config.zoom_client_id);
    let secret_ok = crate::secret::matches(&secret, &config.zoom_client_secret);
    if !(id_ok & secret_ok) {
        return oauth_error("Invalid client_id or client_secret", "invalid_client");
    }
    if param("grant_type") != Some("account_credentials") {
        return oauth_error("unsupported grant type", "unsupported_grant_type");
    }
    match param("account_id") {
        None => return oauth_error("Missing required parameter: account_id", "invalid_request"),
        Some(account) if account != config.zoom_account_id => {
            return oauth_error("Invalid account_id", "invalid_request")
        }
        Some(_) => {}
    }

    let access_token = sandbox
        .zoom()
        .state()
        .tokens
        .issue(&config.zoom_account_id, &config.zoom_client_id, Utc::now());
    Json(json!({
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": LIFETIME_SECS,
        "scope": SCOPE,
        "api_url": "https://api.zoom.us",
    }))
    .into_response()
}

/// `client_id:client_secret` from `Authorization: Basic ...`.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let decoded = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, b64)| base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// The bearer check every API route makes first.
pub(crate) fn authorize(sandbox: &Sandbox, headers: &HeaderMap) -> ZoomResult<()> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or_else(ZoomError::invalid_token)?;
    sandbox.zoom().state().tokens.check(token, Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_expire_after_their_hour_or_on_demand() {
        let mut tokens = Tokens::default();
        let now = Utc::now();
        let a = tokens.issue("acct", "client", now);
        let b = tokens.issue("acct", "client", now);
        assert_ne!(a, b);
        assert_eq!(a.split('.').count(), 3);
        assert!(tokens.check(&a, now + Duration::seconds(3598)).is_ok());
        assert!(tokens.check(&b, now).is_ok(), "several tokens are valid at once");
        assert_eq!(
            tokens.check(&a, now + Duration::seconds(3599)),
            Err(ZoomError::expired_token())
        );
        tokens.expire_all(now);
        assert_eq!(tokens.check(&b, now), Err(ZoomError::expired_token()));
        assert_eq!(tokens.check("forged", now), Err(ZoomError::invalid_token()));
    }
}
