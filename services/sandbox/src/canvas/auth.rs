//! Canvas's OAuth2 client-credentials token endpoint and the bearer check on every FHIR call.
//! Error bodies follow django-oauth-toolkit (canvas.md §1: Canvas does not document them).

use std::collections::HashMap;

use axum::{
    extract::{rejection::FormRejection, State},
    response::{IntoResponse, Response},
    Form, Json,
};
use chrono::{DateTime, Duration, Utc};
use http::{header::AUTHORIZATION, HeaderMap, StatusCode};
use rand::{distributions::Alphanumeric, Rng};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::outcome::{FhirError, FhirResult};
use crate::Sandbox;

/// Canvas tokens last ten hours.
const LIFETIME_SECS: i64 = 36_000;

/// Issued tokens and when each stops working.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tokens {
    expires: HashMap<String, DateTime<Utc>>,
    issued: u64,
}

impl Tokens {
    fn issue(&mut self, now: DateTime<Utc>) -> String {
        let token: String = rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(40)
            .map(char::from)
            .collect();
        self.expires
            .insert(token.clone(), now + Duration::seconds(LIFETIME_SECS));
        self.issued += 1;
        token
    }

    pub(crate) fn is_valid(&self, token: &str, now: DateTime<Utc>) -> bool {
        self.expires.get(token).is_some_and(|exp| now < *exp)
    }

    /// Makes every token issued so far expired, as if ten hours had passed.
    pub(crate) fn expire_all(&mut self, now: DateTime<Utc>) {
        for exp in self.expires.values_mut() {
            *exp = now;
        }
    }

    pub(crate) fn issued(&self) -> u64 {
        self.issued
    }
}

/// `POST /canvas/auth/token/`.
pub(crate) async fn token(
    State(sandbox): State<Sandbox>,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let oauth_error = |status: StatusCode, error: &str| (status, Json(json!({ "error": error }))).into_response();
    let Ok(Form(form)) = form else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    let field = |name: &str| form.get(name).map(String::as_str).filter(|v| !v.is_empty());
    let (Some(grant_type), Some(client_id), Some(client_secret)) =
        (field("grant_type"), field("client_id"), field("client_secret"))
    else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    if grant_type != "client_credentials" {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let config = sandbox.config();
    // Both compared, always, in constant time: no early exit tells a caller which one was wrong.
    let id_ok = constant_time_eq(client_id, &config.canvas_client_id);
    let secret_ok = constant_time_eq(client_secret, &config.canvas_client_secret);
    if !(id_ok & secret_ok) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let access_token = sandbox.canvas().tokens.issue(Utc::now());
    Json(json!({
        "access_token": access_token,
        "expires_in": LIFETIME_SECS,
        "token_type": "Bearer",
        "scope": field("scope").unwrap_or("system/*.*"),
    }))
    .into_response()
}

/// Hashing first makes the comparison independent of where (and whether) the lengths differ.
fn constant_time_eq(given: &str, expected: &str) -> bool {
    let (a, b) = (Sha256::digest(given.as_bytes()), Sha256::digest(expected.as_bytes()));
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The bearer check every FHIR route makes first.
pub(crate) fn authorize(sandbox: &Sandbox, headers: &HeaderMap) -> FhirResult<()> {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .ok_or_else(FhirError::unauthenticated)?;
    if sandbox.canvas().tokens.is_valid(token, Utc::now()) {
        Ok(())
    } else {
        Err(FhirError::unauthenticated())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_expire_after_ten_hours_or_on_demand() {
        let mut tokens = Tokens::default();
        let now = Utc::now();
        let t = tokens.issue(now);
        assert!(t.len() >= 30);
        assert!(tokens.is_valid(&t, now + Duration::hours(9)));
        assert!(!tokens.is_valid(&t, now + Duration::hours(10)));
        tokens.expire_all(now);
        assert!(!tokens.is_valid(&t, now));
        assert!(!tokens.is_valid("forged", now));
        assert_eq!(tokens.issued(), 1);
    }

    #[test]
    fn secrets_compare_equal_only_when_equal() {
        assert!(constant_time_eq("s3cret", "s3cret"));
        assert!(!constant_time_eq("s3cret", "s3cre"));
        assert!(!constant_time_eq("", "x"));
    }
}
