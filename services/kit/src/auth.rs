//! Who is calling a service. The edge authenticates people and forwards each call with a short-lived
//! internal token naming the caller; jobs and operators may use `ADMIN_SECRET` directly. Services
//! read the resulting [`Caller`] from the request and still check object-level access themselves.

use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tonic::Status;

use crate::{cache::ExpiringCache, config::AuthConfig};

pub const INTERNAL_ISSUER: &str = "era-edge";
pub const INTERNAL_AUDIENCE: &str = "era-internal";
/// Internal tokens cover one call (and its fan-out), so they live a minute.
pub const INTERNAL_TOKEN_TTL_SECS: i64 = 60;
/// The subject recorded for calls made with `ADMIN_SECRET`.
pub const ADMIN_SECRET_SUBJECT: &str = "admin-secret";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Patient,
    Service,
}

/// The authenticated caller of an RPC, inserted into the request's extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub role: Role,
    /// Admin identity (email or staff id), the patient's Canvas id, or a service name. Never PHI
    /// beyond an admin's own login.
    pub subject: String,
    /// For patients, the only patient whose data they may read.
    pub patient_id: Option<String>,
}

impl Caller {
    pub fn admin(subject: impl Into<String>) -> Self {
        Self {
            role: Role::Admin,
            subject: subject.into(),
            patient_id: None,
        }
    }

    pub fn patient(canvas_patient_id: impl Into<String>) -> Self {
        let id = canvas_patient_id.into();
        Self {
            role: Role::Patient,
            subject: id.clone(),
            patient_id: Some(id),
        }
    }

    pub fn service(name: impl Into<String>) -> Self {
        Self {
            role: Role::Service,
            subject: name.into(),
            patient_id: None,
        }
    }

    /// The caller the auth layer attached; its absence is a wiring bug, reported as unauthenticated.
    pub fn of<T>(request: &tonic::Request<T>) -> Result<&Caller, Status> {
        request
            .extensions()
            .get::<Caller>()
            .ok_or_else(|| Status::unauthenticated("no caller identity"))
    }

    /// Admins and services act for the clinic; patients only for themselves.
    pub fn require_staff(&self) -> Result<(), Status> {
        match self.role {
            Role::Admin | Role::Service => Ok(()),
            Role::Patient => Err(Status::permission_denied("this call is for clinic staff only")),
        }
    }

    pub fn require_patient_access(&self, canvas_patient_id: &str) -> Result<(), Status> {
        match self.role {
            Role::Admin | Role::Service => Ok(()),
            Role::Patient if self.patient_id.as_deref() == Some(canvas_patient_id) => Ok(()),
            Role::Patient => Err(Status::permission_denied("a patient may only read their own records")),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct InternalClaims {
    iss: String,
    aud: String,
    sub: String,
    role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pid: Option<String>,
    iat: i64,
    exp: i64,
}

/// Role, subject and patient id: what a minted token says.
type CallerKey = (Role, String, Option<String>);

/// Mints and verifies the internal tokens (HS256, `aud=era-internal`). A caller's token is minted
/// once and reused for half its life, and a verified token is remembered until it expires: both
/// would otherwise cost a signature and JSON work on every call.
#[derive(Clone)]
pub struct InternalTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    minted: Arc<ExpiringCache<CallerKey, String>>,
    verified: Arc<ExpiringCache<String, Caller>>,
}

impl std::fmt::Debug for InternalTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InternalTokens { .. }")
    }
}

impl InternalTokens {
    pub fn new(secret: &SecretString) -> Self {
        let key = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[INTERNAL_ISSUER]);
        validation.set_audience(&[INTERNAL_AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            validation,
            minted: Arc::default(),
            verified: Arc::default(),
        }
    }

    pub fn mint(&self, caller: &Caller) -> String {
        let now = unix_now();
        let key = (caller.role, caller.subject.clone(), caller.patient_id.clone());
        if let Some(token) = self.minted.get(&key, now) {
            return token;
        }
        let token = self.sign(caller, now);
        // Reused while at least half of its minute remains, so a call never carries a nearly expired token.
        self.minted
            .insert(key, token.clone(), now + INTERNAL_TOKEN_TTL_SECS / 2);
        token
    }

    fn sign(&self, caller: &Caller, iat: i64) -> String {
        let claims = InternalClaims {
            iss: INTERNAL_ISSUER.into(),
            aud: INTERNAL_AUDIENCE.into(),
            sub: caller.subject.clone(),
            role: caller.role,
            pid: caller.patient_id.clone(),
            iat,
            exp: iat + INTERNAL_TOKEN_TTL_SECS,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing of plain claims cannot fail")
    }

    pub fn verify(&self, token: &str) -> Option<Caller> {
        let now = unix_now();
        if let Some(caller) = self.verified.get(token, now) {
            return Some(caller);
        }
        let claims = jsonwebtoken::decode::<InternalClaims>(token, &self.decoding, &self.validation)
            .ok()?
            .claims;
        if claims.role == Role::Patient && claims.pid.is_none() {
            return None;
        }
        let caller = Caller {
            role: claims.role,
            subject: claims.sub,
            patient_id: claims.pid,
        };
        self.verified.insert(token.to_owned(), caller.clone(), claims.exp);
        Some(caller)
    }
}

/// Checks the `authorization` header of an incoming call.
#[derive(Clone, Debug)]
pub struct Authenticator {
    admin_secret: SecretString,
    tokens: InternalTokens,
}

impl Authenticator {
    pub fn new(config: &AuthConfig) -> Self {
        Self {
            admin_secret: config.admin_secret.clone(),
            tokens: InternalTokens::new(&config.internal_token_secret),
        }
    }

    pub fn tokens(&self) -> &InternalTokens {
        &self.tokens
    }

    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, Status> {
        let token = bearer(headers).ok_or_else(|| {
            Status::unauthenticated("missing authorization: send `Bearer <internal token>` or `Bearer <ADMIN_SECRET>`")
        })?;
        if constant_time_eq(token.as_bytes(), self.admin_secret.expose_secret().as_bytes()) {
            return Ok(Caller::admin(ADMIN_SECRET_SUBJECT));
        }
        self.tokens
            .verify(token)
            .ok_or_else(|| Status::unauthenticated("invalid or expired credentials"))
    }
}

/// The token of an `authorization: Bearer <token>` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Equality that takes the same time wherever the inputs differ (length aside), for secrets and MACs.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AuthConfig {
        AuthConfig {
            admin_secret: SecretString::from("a".repeat(40)),
            internal_token_secret: SecretString::from("i".repeat(40)),
        }
    }

    fn headers(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        h
    }

    #[test]
    fn admin_secret_and_internal_tokens_authenticate_and_others_do_not() {
        let auth = Authenticator::new(&config());
        assert_eq!(
            auth.authenticate(&headers(&"a".repeat(40))).unwrap(),
            Caller::admin(ADMIN_SECRET_SUBJECT)
        );
        let patient = Caller::patient("pat-1");
        let token = auth.tokens().mint(&patient);
        assert_eq!(auth.authenticate(&headers(&token)).unwrap(), patient);
        assert!(auth.authenticate(&headers(&"a".repeat(39))).is_err());
        assert!(auth.authenticate(&HeaderMap::new()).is_err());
        let other = InternalTokens::new(&SecretString::from("x".repeat(40))).mint(&patient);
        assert!(auth.authenticate(&headers(&other)).is_err());
    }

    #[test]
    fn minted_tokens_are_reused_per_caller_and_verification_is_remembered_per_token() {
        let tokens = InternalTokens::new(&SecretString::from("i".repeat(40)));
        let a = tokens.mint(&Caller::patient("pat-1"));
        assert_eq!(tokens.mint(&Caller::patient("pat-1")), a);
        assert_ne!(tokens.mint(&Caller::patient("pat-2")), a);
        assert_eq!(tokens.verify(&a), Some(Caller::patient("pat-1")));
        assert_eq!(tokens.verify(&a), Some(Caller::patient("pat-1")));
        // Another key's verifier never sees this one's cache.
        let other = InternalTokens::new(&SecretString::from("x".repeat(40)));
        assert_eq!(other.verify(&a), None);
    }

    #[test]
    fn patients_reach_only_their_own_records() {
        let caller = Caller::patient("pat-1");
        assert!(caller.require_patient_access("pat-1").is_ok());
        assert!(caller.require_patient_access("pat-2").is_err());
        assert!(caller.require_staff().is_err());
        assert!(Caller::admin("x").require_patient_access("pat-2").is_ok());
    }
}
