//! FedEx's API Authorization (external-apis.md §5): `POST /fedex/oauth/token` with the form body
//! `grant_type=client_credentials&client_id={API key}&client_secret={secret key}`, answered
//! `{"access_token", "token_type": "bearer", "expires_in": 3599, "scope": "CXS"}`. There is no
//! refresh token; a token works for its hour and several can be in use at once. Errors use
//! FedEx's envelope ([`super::errors`]).
//!
//! FedEx documents two more grant types, `csp_credentials` and `client_pc_credentials`, which also
//! carry a `child_key` and `child_secret`. The sandbox's project has no child credentials, so a
//! request with either is refused as a wrong credential (sandbox assumption), after the same
//! missing-parameter check.

use std::collections::HashMap;

use axum::{
    body::Bytes,
    extract::State,
    response::{IntoResponse, Response},
};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use http::{header, HeaderMap, StatusCode};
use rand::RngCore;
use serde_json::{json, Value};

use super::errors::{json_response, FedexError, FedexResult};
use crate::{urlencoded, Sandbox};

/// FedEx documents 60 minutes and answers `expires_in: 3599`; the token stops at that second.
pub(crate) const LIFETIME_SECS: i64 = 3599;
/// The scope FedEx grants a project's token (community-observed).
pub(crate) const SCOPE: &str = "CXS";

/// Issued tokens and when each stops working. Expired ones are kept so a caller is told "expired"
/// rather than "invalid".
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    expires: HashMap<String, DateTime<Utc>>,
}

impl Tokens {
    fn issue(&mut self, client_id: &str, now: DateTime<Utc>) -> String {
        let token = new_token(client_id, now);
        self.expires
            .insert(token.clone(), now + Duration::seconds(LIFETIME_SECS));
        token
    }

    pub(crate) fn check(&self, token: &str, now: DateTime<Utc>) -> FedexResult<()> {
        match self.expires.get(token) {
            Some(exp) if now < *exp => Ok(()),
            Some(_) => Err(FedexError::expired_token()),
            None => Err(FedexError::invalid_token()),
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

/// A JWT-shaped token, as FedEx's are (RS256, about a thousand characters): clients treat it as
/// opaque, but one that looks the part keeps length and charset assumptions honest. The
/// signature is random; nothing verifies it.
fn new_token(client_id: &str, now: DateTime<Utc>) -> String {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let header = json!({ "alg": "RS256", "typ": "JWT" });
    let payload = json!({
        "scope": [SCOPE],
        "Payload": { "clientIdentity": { "clientKey": client_id }, "apimode": "Sandbox" },
        "exp": now.timestamp() + LIFETIME_SECS,
        "jti": uuid::Uuid::new_v4().to_string(),
        "client_id": client_id,
    });
    let mut signature = [0u8; 256];
    rand::thread_rng().fill_bytes(&mut signature);
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes()),
        b64(&signature)
    )
}

/// `POST /fedex/oauth/token`.
pub(crate) async fn token(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    let form = urlencoded::pairs(&String::from_utf8_lossy(&body));
    // FedEx answers "missing or duplicate parameters" for either.
    let param = |key: &str| match urlencoded::all(&form, key).as_slice() {
        [one] if !one.is_empty() => Some(*one),
        _ => None,
    };
    let (Some(grant_type), Some(id), Some(secret)) = (param("grant_type"), param("client_id"), param("client_secret"))
    else {
        return FedexError::missing_parameters().into_response();
    };
    let child = matches!(grant_type, "csp_credentials" | "client_pc_credentials");
    if grant_type != "client_credentials" && !child {
        return FedexError::unsupported_grant_type().into_response();
    }
    if child && (param("child_key").is_none() || param("child_secret").is_none()) {
        return FedexError::missing_parameters().into_response();
    }

    let config = sandbox.config();
    // Both compared, always: no early exit tells a caller which half was wrong.
    let id_ok = crate::secret::matches(id, &config.fedex_client_id);
    let secret_ok = crate::secret::matches(secret, &config.fedex_client_secret);
    if !(id_ok & secret_ok) || child {
        return FedexError::bad_client().into_response();
    }

    let access_token = sandbox.fedex().state().tokens.issue(id, Utc::now());
    sandbox.record_effect("fedex", "token.issued", None, Some("client_credentials"));
    json_response(
        StatusCode::OK,
        json!({
            "access_token": access_token,
            "token_type": "bearer",
            "expires_in": LIFETIME_SECS,
            "scope": SCOPE,
        }),
    )
}

/// The bearer check every Track API request makes first.
pub(crate) fn authorize(sandbox: &Sandbox, headers: &HeaderMap) -> FedexResult<()> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or_else(FedexError::invalid_token)?;
    sandbox.fedex().state().tokens.check(token, Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_expire_after_their_hour_or_on_demand() {
        let mut tokens = Tokens::default();
        let now = Utc::now();
        let a = tokens.issue("client", now);
        let b = tokens.issue("client", now);
        assert_ne!(a, b);
        assert_eq!(a.split('.').count(), 3);
        assert!(tokens.check(&a, now + Duration::seconds(3598)).is_ok());
        assert!(tokens.check(&b, now).is_ok(), "several tokens are valid at once");
        assert_eq!(
            tokens.check(&a, now + Duration::seconds(3599)),
            Err(FedexError::expired_token())
        );
        tokens.expire_all(now);
        assert_eq!(tokens.check(&b, now), Err(FedexError::expired_token()));
        assert_eq!(tokens.check("forged", now), Err(FedexError::invalid_token()));
        assert_eq!(tokens.describe(now), json!({ "issued": 2, "valid": 0 }));
    }
}
