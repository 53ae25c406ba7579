//! The edge's three ways in (ARCHITECTURE.md "Auth"): `ADMIN_SECRET`, admin JWTs (with jti
//! revocation) and the Canvas plugin's HMAC signature; plus patient JWTs on patient routes. Each is
//! an extractor, so a handler states in its signature who may call it.

mod admins;
mod handoff;
pub mod hmac;
pub mod jwt;
mod revocation;

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
    http::{request::Parts, HeaderMap},
};
use chrono::Utc;
use era_kit::auth::{bearer, constant_time_eq, Caller, ADMIN_SECRET_SUBJECT};
use secrecy::ExposeSecret;

pub use self::{
    admins::Admins,
    handoff::{Handoffs, HANDOFF_TTL_SECS},
    revocation::Revocations,
};
use crate::{error::ApiError, AppState};

impl AppState {
    /// Who an admin route's bearer token belongs to.
    pub fn authenticate_admin(&self, token: &str) -> Result<Caller, ApiError> {
        if constant_time_eq(token.as_bytes(), self.admin_secret.expose_secret().as_bytes()) {
            return Ok(Caller::admin(ADMIN_SECRET_SUBJECT));
        }
        // The secret's identity is reserved: no session may act (and be audited) as it.
        if let Some(claims) = self
            .admin_tokens
            .verify(token)
            .filter(|c| c.sub != ADMIN_SECRET_SUBJECT)
        {
            if self.revocations.is_revoked(&claims) {
                return Err(ApiError::unauthorized(
                    "token_revoked",
                    "this session has been logged out",
                ));
            }
            return Ok(Caller::admin(claims.sub));
        }
        if self.patient_tokens.verify(token).is_some() {
            return Err(ApiError::forbidden("patient tokens cannot reach admin routes"));
        }
        Err(ApiError::unauthorized(
            "invalid_token",
            "the token is invalid or expired",
        ))
    }

    /// Who a patient route's bearer token belongs to: `ADMIN_SECRET` (any patient) or a patient JWT.
    pub fn authenticate_patient(&self, token: &str) -> Result<Caller, ApiError> {
        if constant_time_eq(token.as_bytes(), self.admin_secret.expose_secret().as_bytes()) {
            return Ok(Caller::admin(ADMIN_SECRET_SUBJECT));
        }
        if let Some(claims) = self.patient_tokens.verify(token) {
            return Ok(Caller::patient(claims.sub));
        }
        if self.admin_tokens.verify(token).is_some() {
            return Err(ApiError::forbidden(
                "admin session tokens cannot reach patient routes; use the admin API",
            ));
        }
        Err(ApiError::unauthorized(
            "invalid_token",
            "the token is invalid or expired",
        ))
    }
}

fn token(parts: &Parts) -> Result<&str, ApiError> {
    bearer(&parts.headers)
        .ok_or_else(|| ApiError::unauthorized("missing_credentials", "send Authorization: Bearer <token>"))
}

/// `require_admin`: `ADMIN_SECRET` or an unrevoked admin JWT.
#[derive(Clone, Debug)]
pub struct Admin(pub Caller);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Self(state.authenticate_admin(token(parts)?)?))
    }
}

/// A patient route's caller; the handler still checks the patient id with [`Patient::require`].
#[derive(Clone, Debug)]
pub struct Patient(pub Caller);

impl Patient {
    /// Patients read only their own data; `ADMIN_SECRET` reads any.
    pub fn require(&self, canvas_patient_id: &str) -> Result<(), ApiError> {
        self.0
            .require_patient_access(canvas_patient_id)
            .map_err(|_| ApiError::forbidden("a patient may only read their own records"))
    }
}

impl FromRequestParts<AppState> for Patient {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Self(state.authenticate_patient(token(parts)?)?))
    }
}

/// Whoever may save a card for a patient: the browser that submitted the patient's intake (its
/// intake token) or the patient signed in to the portal (a patient JWT). The patient comes from the
/// token, never from the body. `jti` keys the card set-up, so one token sets up one SetupIntent.
#[derive(Clone, Debug)]
pub struct CardHolder {
    pub caller: Caller,
    pub jti: String,
    /// True for an intake token (anyone who submitted a form), false for a signed-in patient.
    pub intake: bool,
}

impl FromRequestParts<AppState> for CardHolder {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = token(parts)?;
        let claims = match state.intake_tokens.verify(token) {
            Some(c) => Some((c, true)),
            None => state.patient_tokens.verify(token).map(|c| (c, false)),
        };
        if let Some((claims, intake)) = claims {
            return Ok(Self {
                caller: Caller::patient(claims.sub),
                jti: claims.jti,
                intake,
            });
        }
        if constant_time_eq(token.as_bytes(), state.admin_secret.expose_secret().as_bytes())
            || state.admin_tokens.verify(token).is_some()
        {
            return Err(ApiError::forbidden(
                "cards are saved by the patient; admins use the payments service",
            ));
        }
        Err(ApiError::unauthorized(
            "invalid_token",
            "send the intake token from the intake submission, or a patient token",
        ))
    }
}

/// `ADMIN_SECRET` itself: the one credential that manages who may sign in as an admin.
#[derive(Clone, Debug)]
pub struct AdminSecret;

impl FromRequestParts<AppState> for AdminSecret {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = token(parts)?;
        if constant_time_eq(token.as_bytes(), state.admin_secret.expose_secret().as_bytes()) {
            return Ok(Self);
        }
        // Authenticate first so sessions and patients get their usual answers, then refuse.
        state.authenticate_admin(token)?;
        Err(ApiError::forbidden(
            "who may sign in as an admin, and their sessions, are managed with ADMIN_SECRET only",
        ))
    }
}

/// An admin session token (not `ADMIN_SECRET`): what logout revokes.
#[derive(Clone, Debug)]
pub struct AdminSession(pub jwt::Claims);

impl FromRequestParts<AppState> for AdminSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = token(parts)?;
        // Authenticate first so revoked, forged and patient tokens get their usual answers.
        state.authenticate_admin(token)?;
        state.admin_tokens.verify(token).map(Self).ok_or_else(|| {
            ApiError::field(
                "authorization",
                "ADMIN_SECRET is not a session; there is nothing to log out",
            )
        })
    }
}

/// A request signed by the Canvas plugin: the verified raw body. Accepted once; an identical
/// request inside the window is a replay and refused.
#[derive(Clone, Debug)]
pub struct CanvasSigned(pub Bytes);

impl FromRequest<AppState> for CanvasSigned {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let headers = req.headers().clone();
        let body = Bytes::from_request(req, state).await?;
        verify_canvas_signature(state, &headers, &body).await?;
        Ok(Self(body))
    }
}

/// Checks the Canvas plugin's signature of `body`, once: an identical request inside the window is a
/// replay and refused (the replay store is shared by every edge replica).
pub async fn verify_canvas_signature(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (timestamp, signature) = match (header(hmac::TIMESTAMP_HEADER), header(hmac::SIGNATURE_HEADER)) {
        (Some(t), Some(s)) => (t, s),
        _ => return Err(signature_error(hmac::SignatureError::Missing)),
    };
    hmac::verify(&state.hmac_secret, &timestamp, &signature, body, Utc::now()).map_err(signature_error)?;
    let expires_at = hmac::parse_timestamp(&timestamp).map_err(signature_error)? + hmac::TOLERANCE_SECS;
    if !state
        .revocations
        .remember_signature(&signature.trim().to_ascii_lowercase(), expires_at)
        .await?
    {
        return Err(ApiError::unauthorized(
            "replayed_request",
            "this signed request was already accepted",
        ));
    }
    Ok(())
}

fn signature_error(e: hmac::SignatureError) -> ApiError {
    ApiError::unauthorized(e.code(), e.to_string())
}
