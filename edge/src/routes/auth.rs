//! Logins and logout.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::{delete, post},
    Router,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    auth::{AdminSecret, AdminSession, CanvasSigned},
    error::{ApiError, ErrorBody},
    routes::ApiJson,
    AppState,
};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/canvas", post(canvas_login))
        .route("/api/auth/logout", post(logout))
        .route("/api/admin/plugin-sessions/{staff_id}", delete(end_plugin_sessions))
}

/// The admin subject a Canvas staff member's plugin sessions carry.
fn plugin_subject(staff_id: &str) -> Result<String, ApiError> {
    let id = staff_id.trim();
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(ApiError::field("staffId", "must be 1-64 letters, digits, '-' or '_'"));
    }
    Ok(format!("canvas-staff:{id}"))
}

/// The staff member the Canvas plugin vouches for.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanvasLogin {
    /// Canvas staff id (letters, digits, `-`, `_`; at most 64).
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub staff_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionToken {
    pub token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// RFC 3339, 24 h after issue.
    pub expires_at: String,
    /// The admin identity the token carries.
    pub subject: String,
}

/// Canvas plugin login: an HMAC-signed request naming a staff member gets a 24 h admin JWT.
#[utoipa::path(
    post, path = "/api/auth/canvas", tag = "auth",
    request_body = CanvasLogin,
    params(
        ("X-Timestamp" = String, Header, description = "Unix seconds or RFC 3339; within ±300 s"),
        ("X-Signature" = String, Header, description = "hex HMAC-SHA256(secret, timestamp + \".\" + raw body)"),
    ),
    responses(
        (status = 200, body = SessionToken),
        (status = 400, body = ErrorBody),
        (status = 401, description = "missing, stale, wrong or replayed signature", body = ErrorBody),
    )
)]
pub async fn canvas_login(
    State(state): State<AppState>,
    CanvasSigned(body): CanvasSigned,
) -> Result<ApiJson<SessionToken>, ApiError> {
    let login: CanvasLogin = serde_json::from_slice(&body)
        .map_err(|_| ApiError::field("staffId", "send a JSON body {\"staffId\": \"...\"} and nothing else"))?;
    let issued = state.admin_tokens.issue(&plugin_subject(&login.staff_id)?);
    tracing::info!(subject = %issued.claims.sub, "admin session issued through the Canvas plugin");
    Ok(ApiJson(SessionToken {
        token: issued.token.clone(),
        token_type: "Bearer".into(),
        expires_at: issued.expires_at().to_rfc3339(),
        subject: issued.claims.sub,
    }))
}

/// Revokes the admin session token sent with the request.
#[utoipa::path(
    post, path = "/api/auth/logout", tag = "auth",
    security(("admin_jwt" = [])),
    responses(
        (status = 204, description = "revoked; the token is refused from now on"),
        (status = 400, description = "ADMIN_SECRET is not a session", body = ErrorBody),
        (status = 401, body = ErrorBody),
    )
)]
pub async fn logout(State(state): State<AppState>, AdminSession(claims): AdminSession) -> Result<StatusCode, ApiError> {
    // Kept past `exp` for the leeway, during which verification would still accept the token.
    let until = claims.exp + crate::auth::jwt::LEEWAY_SECS as i64;
    let expires_at = chrono::DateTime::from_timestamp(until, 0).unwrap_or_else(chrono::Utc::now);
    state.revocations.revoke(&claims.jti, &claims.sub, expires_at).await?;
    tracing::info!(subject = %claims.sub, "admin session revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// Ends every session the Canvas plugin has issued for a staff member so far (someone who left, a
/// token that leaked), as removing an admin from the allowlist ends theirs. The plugin may vouch for
/// them again afterwards: who may use it is Canvas's to decide.
#[utoipa::path(
    delete, path = "/api/admin/plugin-sessions/{staffId}", tag = "auth",
    security(("admin_secret" = [])),
    params(("staffId" = String, Path, description = "the Canvas staff id the sessions were issued for", pattern = "^[A-Za-z0-9_-]{1,64}$")),
    responses(
        (status = 204, description = "every session issued for them until now is refused from now on"),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "only `ADMIN_SECRET` ends sessions", body = ErrorBody),
    )
)]
pub async fn end_plugin_sessions(
    State(state): State<AppState>,
    _: AdminSecret,
    Path(staff_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let subject = plugin_subject(&staff_id)?;
    state.revocations.revoke_subject(&subject).await?;
    tracing::info!(%subject, "Canvas plugin sessions ended");
    Ok(StatusCode::NO_CONTENT)
}
