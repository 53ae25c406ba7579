//! Passwordless logins: an admin's one-time code or magic link, a patient's one-time code, and the
//! admin allowlist they check. Codes and links are made, sent and checked by notifications; the edge
//! decides who may have one, throttles sends, and mints the session.
//!
//! Every send answers the same whether or not the email belongs to anyone, and sends are throttled
//! per email for known and unknown emails alike, so the routes do not reveal who is an admin or a
//! patient.

use axum::{
    body::Bytes,
    extract::{
        rejection::{BytesRejection, QueryRejection},
        Path, Query, State,
    },
    http::{header, HeaderMap, StatusCode},
    response::{Html, IntoResponse, Response},
    routing::{delete, get, post},
    Router,
};
use era_kit::auth::Caller;
use era_proto::notifications::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::SessionToken;
use crate::{
    auth::AdminSecret,
    error::{ApiError, ErrorBody},
    routes::{grpc, ApiJson},
    AppState,
};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/otp/send", post(admin_otp_send))
        .route("/api/auth/otp/verify", post(admin_otp_verify))
        .route("/api/auth/magic-link", post(magic_link_send).get(magic_link_page))
        .route("/api/auth/magic-link/consume", post(magic_link_consume))
        .route("/api/auth/session", post(session_handoff))
        .route("/api/patient/auth/send-code", post(patient_code_send))
        .route("/api/patient/auth/verify", post(patient_code_verify))
        .route("/api/admin/admin-users", get(list_admins).post(add_admin))
        .route("/api/admin/admin-users/{email}", delete(remove_admin))
}

/// The edge calls notifications for logins as itself.
fn edge() -> Caller {
    Caller::service("era-edge/logins")
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EmailRequest {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CodeRequest {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// Six digits.
    #[schema(pattern = "^[0-9]{6}$")]
    pub code: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendAccepted {
    /// Always true: the answer does not say whether the email belongs to anyone.
    pub accepted: bool,
    /// How long a code or link lives.
    pub expires_in_seconds: i64,
}

/// An email as accounts know it: trimmed, lowercased, plausible.
fn email_of(raw: &str) -> Result<String, ApiError> {
    let email = raw.trim().to_lowercase();
    let plausible = email.len() <= 254
        && email
            .rsplit_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.') && !domain.ends_with('.'))
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if !plausible {
        return Err(ApiError::field("email", "is not an email address"));
    }
    Ok(email)
}

fn accepted(seconds: i64) -> (StatusCode, ApiJson<SendAccepted>) {
    (
        StatusCode::ACCEPTED,
        ApiJson(SendAccepted {
            accepted: true,
            expires_in_seconds: seconds,
        }),
    )
}

/// Sign-in sends under way at once. Past it a send is dropped (and logged) rather than queued:
/// a flood of requests must not become a flood of tasks, each searching Canvas.
const SENDS_IN_FLIGHT: usize = 64;
static SENDS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(SENDS_IN_FLIGHT);

/// Asks notifications for a code or link after the answer has gone: the caller learns nothing
/// from how long it takes or whether it fails (which only happens for real accounts). A failure is
/// logged for operators; the person asks again.
fn in_background(
    what: &'static str,
    send: impl std::future::Future<Output = Result<(), tonic::Status>> + Send + 'static,
) {
    let Ok(permit) = SENDS.try_acquire() else {
        tracing::warn!(what, "too many sign-in sends under way; this one is dropped");
        return;
    };
    tokio::spawn(async move {
        if let Err(status) = send.await {
            tracing::warn!(what, code = ?status.code(), reason = ?era_kit::error::reason_of(&status), "a sign-in send failed");
        }
        drop(permit);
    });
}

/// A check's failure: a wrong, expired or used code or link is 401 with its reason; anything else
/// keeps the usual mapping.
fn check_failed(status: tonic::Status) -> ApiError {
    if status.code() == tonic::Code::Unauthenticated {
        return match era_kit::error::reason_of(&status).as_deref() {
            Some("INVALID_LINK") => ApiError::unauthorized(
                "invalid_link",
                "the link is unknown, expired or already used; ask for a new one",
            ),
            _ => ApiError::unauthorized(
                "invalid_code",
                "the code is wrong, expired or already used; ask for a new one",
            ),
        };
    }
    status.into()
}

/// Mints the admin session for an allowlisted email (checked again: it may have been removed since
/// the code was sent); otherwise answers as a bad code or link would.
async fn admin_session(
    state: &AppState,
    email: &str,
    how: &str,
    refused: tonic::Status,
) -> Result<ApiJson<SessionToken>, ApiError> {
    if !state.admins.is_admin(email).await? {
        return Err(check_failed(refused));
    }
    let issued = state.admin_tokens.issue(email);
    tracing::info!(subject = %issued.claims.sub, how, "admin session issued");
    Ok(ApiJson(SessionToken {
        token: issued.token.clone(),
        token_type: "Bearer".into(),
        expires_at: issued.expires_at().to_rfc3339(),
        subject: issued.claims.sub,
    }))
}

/// Sends an admin a six-digit sign-in code (10 minutes, single use).
#[utoipa::path(
    post, path = "/api/auth/otp/send", tag = "auth",
    request_body = EmailRequest,
    responses(
        (status = 202, description = "the same answer whether or not the email is an admin's", body = SendAccepted),
        (status = 400, body = ErrorBody),
        (status = 429, description = "`rate_limited`: 5 sends per email per 15 minutes", body = ErrorBody),
    )
)]
pub async fn admin_otp_send(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<EmailRequest>,
) -> Result<(StatusCode, ApiJson<SendAccepted>), ApiError> {
    let email = email_of(&body.email)?;
    state.admins.throttle("admin_otp", &email).await?;
    if state.admins.is_admin(&email).await? {
        let req = grpc(&state, &edge(), pb::SendAdminOtpRequest { email });
        let mut client = state.clients.notifications.clone();
        in_background(
            "an admin code",
            async move { client.send_admin_otp(req).await.map(drop) },
        );
    }
    Ok(accepted(600))
}

/// Checks an admin's code: a 24 h admin JWT. At most 5 wrong tries per code.
#[utoipa::path(
    post, path = "/api/auth/otp/verify", tag = "auth",
    request_body = CodeRequest,
    responses(
        (status = 200, body = SessionToken),
        (status = 400, body = ErrorBody),
        (status = 401, description = "`invalid_code`: wrong, expired, used, or too many wrong tries", body = ErrorBody),
    )
)]
pub async fn admin_otp_verify(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CodeRequest>,
) -> Result<ApiJson<SessionToken>, ApiError> {
    let email = email_of(&body.email)?;
    let req = pb::VerifyAdminOtpRequest { email, code: body.code };
    let admin = state
        .clients
        .notifications
        .clone()
        .verify_admin_otp(grpc(&state, &edge(), req))
        .await
        .map_err(check_failed)?
        .into_inner()
        .admin
        .unwrap_or_default();
    let refused = era_kit::error::with_reason(tonic::Code::Unauthenticated, "INVALID_CODE", "not an admin");
    admin_session(&state, &admin.email, "one-time code", refused).await
}

/// Sends an admin a sign-in link (15 minutes, single use).
#[utoipa::path(
    post, path = "/api/auth/magic-link", tag = "auth",
    request_body = EmailRequest,
    responses(
        (status = 202, description = "the same answer whether or not the email is an admin's", body = SendAccepted),
        (status = 400, body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
    )
)]
pub async fn magic_link_send(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<EmailRequest>,
) -> Result<(StatusCode, ApiJson<SendAccepted>), ApiError> {
    let email = email_of(&body.email)?;
    state.admins.throttle("magic_link", &email).await?;
    if state.admins.is_admin(&email).await? {
        let req = grpc(&state, &edge(), pb::SendMagicLinkRequest { email });
        let mut client = state.clients.notifications.clone();
        in_background(
            "a magic link",
            async move { client.send_magic_link(req).await.map(drop) },
        );
    }
    Ok(accepted(900))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LinkQuery {
    pub token: Option<String>,
}

/// What a magic link opens. A usable link gets a page asking to confirm, which does not use the link
/// up (mail scanners open links); its button POSTs to `/api/auth/magic-link/consume`. A used, expired
/// or unknown link gets a page saying so, before anything is clicked.
#[utoipa::path(
    get, path = "/api/auth/magic-link", tag = "auth",
    params(LinkQuery),
    responses(
        (status = 200, description = "an HTML page asking to confirm", content_type = "text/html"),
        (status = 404, description = "an HTML page: not a sign-in link", content_type = "text/html"),
        (status = 410, description = "an HTML page: the link was used or has expired", content_type = "text/html"),
        (status = 503, description = "an HTML page: sign-in is unavailable, or no admin portal is configured \
            (an overloaded edge answers with the error body)",
            content((String = "text/html"), (ErrorBody = "application/json"))),
    )
)]
pub async fn magic_link_page(
    State(state): State<AppState>,
    query: Result<Query<LinkQuery>, QueryRejection>,
) -> Response {
    // A query that cannot be read (a repeated `token`) holds no link: the page says so, in HTML.
    let token = query.ok().and_then(|Query(q)| q.token);
    // Only a token's own characters reach the page, so nothing in it can be markup.
    let token: String = token
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(200)
        .collect();
    if state.config.admin_portal_url.is_none() {
        return no_portal();
    }
    let req = pb::CheckMagicLinkRequest { token: token.clone() };
    let checked = state
        .clients
        .notifications
        .clone()
        .check_magic_link(grpc(&state, &edge(), req))
        .await;
    let link = match checked {
        Ok(r) => pb::MagicLinkState::try_from(r.into_inner().state).unwrap_or(pb::MagicLinkState::Unknown),
        Err(e) => {
            tracing::warn!(code = ?e.code(), "a magic link could not be checked");
            return unavailable();
        }
    };
    match link {
        pb::MagicLinkState::Usable => page(
            StatusCode::OK,
            "Sign in to YourEra",
            &format!(
                "<p>Continue to sign in as an admin. The link works once.</p>\
                 <form method=\"post\" action=\"/api/auth/magic-link/consume\">\
                 <input type=\"hidden\" name=\"token\" value=\"{token}\"><button type=\"submit\">Sign in</button></form>"
            ),
        ),
        pb::MagicLinkState::Used => page(
            StatusCode::GONE,
            "This sign-in link was already used",
            "<p>Each link signs in once. Ask for a new link on the sign-in page.</p>",
        ),
        pb::MagicLinkState::Expired => page(
            StatusCode::GONE,
            "This sign-in link has expired",
            "<p>Links work for 15 minutes. Ask for a new link on the sign-in page.</p>",
        ),
        pb::MagicLinkState::Unknown | pb::MagicLinkState::Unspecified => page(
            StatusCode::NOT_FOUND,
            "This is not a sign-in link",
            "<p>Check that the whole link was opened, or ask for a new one on the sign-in page.</p>",
        ),
    }
}

/// A page a person sees on the way to signing in: self-contained, never cached, framed or referred
/// from. `body` is fixed markup (the only value ever put in is a token's own characters).
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <meta name=\"viewport\" content=\"width=device-width\"></head>\
         <body style=\"font-family:sans-serif;max-width:32rem;margin:4rem auto;line-height:1.5\">\
         <h1>{title}</h1>{body}</body></html>"
    );
    (status, page_headers(), Html(html)).into_response()
}

fn page_headers() -> [(header::HeaderName, &'static str); 4] {
    [
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    ]
}

fn no_portal() -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Sign-in by link is not set up",
        "<p>No admin portal is configured to sign in to (<code>ADMIN_PORTAL_URL</code>). Your link \
         has not been used; it works once an operator sets one.</p>",
    )
}

fn unavailable() -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Sign-in is unavailable",
        "<p>Please try again in a minute. Your link has not been used.</p>",
    )
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsumeRequest {
    pub token: String,
}

/// Uses a magic link once. The confirm page's form post is sent on to the admin portal
/// (`ADMIN_PORTAL_URL`) with a one-time code in the URL's fragment, `#handoff=<code>`, which the
/// portal exchanges at `POST /api/auth/session` within a minute: the session token is never in a
/// URL. A JSON post (API clients) gets the 24 h admin JWT itself.
#[utoipa::path(
    post, path = "/api/auth/magic-link/consume", tag = "auth",
    request_body(content = ConsumeRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "a JSON post: the session", body = SessionToken),
        (status = 303, description = "a form post: on to `ADMIN_PORTAL_URL#handoff=<code>`"),
        (status = 400, description = "`token` is missing: a JSON post gets the error body, a form post too", body = ErrorBody),
        (status = 401, description = "`invalid_link`: unknown, expired or used (a JSON post); a form post gets an HTML page saying so",
            content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 503, description = "a form post with no `ADMIN_PORTAL_URL`, or sign-in unavailable: an HTML page (the link is not used); \
            a JSON post, or an overloaded edge: the error body",
            content((ErrorBody = "application/json"), (String = "text/html"))),
    )
)]
pub async fn magic_link_consume(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body?;
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let portal = state.config.admin_portal_url.clone();
    if !json && portal.is_none() {
        return Ok(no_portal());
    }
    let parsed: Option<ConsumeRequest> = if json {
        serde_json::from_slice(&body).ok()
    } else {
        serde_urlencoded::from_bytes(&body).ok()
    };
    let token = parsed
        .map(|r| r.token)
        .ok_or_else(|| ApiError::field("token", "send the link's token, as a form field or JSON"))?;
    let req = pb::ConsumeMagicLinkRequest { token };
    let consumed = state
        .clients
        .notifications
        .clone()
        .consume_magic_link(grpc(&state, &edge(), req))
        .await;
    let refused = || era_kit::error::with_reason(tonic::Code::Unauthenticated, "INVALID_LINK", "not an admin");
    let email = match consumed {
        Ok(r) => r.into_inner().admin.unwrap_or_default().email,
        Err(e) if json => return Err(check_failed(e)),
        Err(e) if e.code() == tonic::Code::Unauthenticated => {
            return Ok(page(
                StatusCode::UNAUTHORIZED,
                "This sign-in link can no longer be used",
                "<p>It was already used or has expired. Ask for a new link on the sign-in page.</p>",
            ))
        }
        Err(e) => {
            tracing::warn!(code = ?e.code(), "a magic link could not be used");
            return Ok(unavailable());
        }
    };
    let Some(portal) = portal.filter(|_| !json) else {
        return admin_session(&state, &email, "magic link", refused())
            .await
            .map(IntoResponse::into_response);
    };
    if !state.admins.is_admin(&email).await? {
        return Ok(page(
            StatusCode::UNAUTHORIZED,
            "This email may not sign in as an admin",
            "<p>Ask an operator to add it to the admin list.</p>",
        ));
    }
    let code = state.handoffs.create(&email).await?;
    tracing::info!(subject = %email, "admin session handed to the portal");
    let mut response = (StatusCode::SEE_OTHER, page_headers()).into_response();
    if let Ok(location) = header::HeaderValue::from_str(&format!("{portal}#handoff={code}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HandoffRequest {
    /// The `handoff` value from the admin portal's URL fragment.
    #[schema(pattern = "^[0-9A-Fa-f]{1,128}$")]
    pub code: String,
}

/// The admin portal's side of a magic-link sign-in: exchanges the one-time code from its URL
/// fragment (`#handoff=<code>`, valid one minute, once) for the 24 h admin JWT.
#[utoipa::path(
    post, path = "/api/auth/session", tag = "auth",
    request_body = HandoffRequest,
    responses(
        (status = 200, body = SessionToken),
        (status = 400, body = ErrorBody),
        (status = 401, description = "`invalid_handoff`: unknown, expired or already exchanged", body = ErrorBody),
        (status = 429, description = "`rate_limited`, `too_many_failed_sign_ins`", body = ErrorBody),
    )
)]
pub async fn session_handoff(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<HandoffRequest>,
) -> Result<ApiJson<SessionToken>, ApiError> {
    let code = body.code.trim();
    if code.is_empty() || code.len() > 128 || !code.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::field(
            "code",
            "must be the handoff code from the portal's URL",
        ));
    }
    let invalid = || {
        ApiError::unauthorized(
            "invalid_handoff",
            "the code is unknown, expired or already exchanged; sign in again",
        )
    };
    let subject = state.handoffs.redeem(code).await?.ok_or_else(invalid)?;
    let refused = era_kit::error::with_reason(tonic::Code::Unauthenticated, "INVALID_LINK", "not an admin");
    admin_session(&state, &subject, "magic link handoff", refused).await
}

/// Sends a patient a six-digit sign-in code, when the email is a patient's.
#[utoipa::path(
    post, path = "/api/patient/auth/send-code", tag = "auth",
    request_body = EmailRequest,
    responses(
        (status = 202, description = "the same answer whether or not the email is a patient's", body = SendAccepted),
        (status = 400, body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
    )
)]
pub async fn patient_code_send(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<EmailRequest>,
) -> Result<(StatusCode, ApiJson<SendAccepted>), ApiError> {
    let email = email_of(&body.email)?;
    state.admins.throttle("patient_otp", &email).await?;
    let req = grpc(&state, &edge(), pb::SendPatientOtpRequest { email });
    let mut client = state.clients.notifications.clone();
    in_background(
        "a patient code",
        async move { client.send_patient_otp(req).await.map(drop) },
    );
    Ok(accepted(600))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatientSession {
    pub token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// RFC 3339, 4 h after issue.
    pub expires_at: String,
    pub canvas_patient_id: String,
}

/// Checks a patient's code: a 4 h patient JWT for that Canvas patient.
#[utoipa::path(
    post, path = "/api/patient/auth/verify", tag = "auth",
    request_body = CodeRequest,
    responses(
        (status = 200, body = PatientSession),
        (status = 400, body = ErrorBody),
        (status = 401, description = "`invalid_code`", body = ErrorBody),
    )
)]
pub async fn patient_code_verify(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CodeRequest>,
) -> Result<ApiJson<PatientSession>, ApiError> {
    let email = email_of(&body.email)?;
    let req = pb::VerifyPatientOtpRequest { email, code: body.code };
    let patient = state
        .clients
        .notifications
        .clone()
        .verify_patient_otp(grpc(&state, &edge(), req))
        .await
        .map_err(check_failed)?
        .into_inner()
        .canvas_patient_id;
    let issued = state.patient_tokens.issue(&patient);
    tracing::info!(patient = %patient, "patient session issued");
    Ok(ApiJson(PatientSession {
        token: issued.token.clone(),
        token_type: "Bearer".into(),
        expires_at: issued.expires_at().to_rfc3339(),
        canvas_patient_id: patient,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminUserView {
    pub email: String,
    pub added_by: String,
    pub added_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminUsers {
    pub items: Vec<AdminUserView>,
}

/// Who may sign in as an admin.
#[utoipa::path(
    get, path = "/api/admin/admin-users", tag = "auth",
    security(("admin_secret" = [])),
    responses((status = 200, body = AdminUsers), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn list_admins(State(state): State<AppState>, _: AdminSecret) -> Result<ApiJson<AdminUsers>, ApiError> {
    let items = state
        .admins
        .list()
        .await?
        .into_iter()
        .map(|a| AdminUserView {
            email: a.email,
            added_by: a.added_by,
            added_at: a.added_at.to_rfc3339(),
        })
        .collect();
    Ok(ApiJson(AdminUsers { items }))
}

/// Lets an email sign in as an admin.
#[utoipa::path(
    post, path = "/api/admin/admin-users", tag = "auth",
    security(("admin_secret" = [])),
    request_body = EmailRequest,
    responses(
        (status = 201, description = "added"),
        (status = 200, description = "already listed"),
        (status = 400, body = ErrorBody),
        (status = 403, description = "only `ADMIN_SECRET` manages the list", body = ErrorBody),
    )
)]
pub async fn add_admin(
    State(state): State<AppState>,
    _: AdminSecret,
    ApiJson(body): ApiJson<EmailRequest>,
) -> Result<StatusCode, ApiError> {
    let email = email_of(&body.email)?;
    let added = state.admins.add(&email, era_kit::auth::ADMIN_SECRET_SUBJECT).await?;
    tracing::info!(admin = %email, added, "admin allowlist updated");
    Ok(if added { StatusCode::CREATED } else { StatusCode::OK })
}

/// Stops an email signing in as an admin and ends the sessions it holds.
#[utoipa::path(
    delete, path = "/api/admin/admin-users/{email}", tag = "auth",
    security(("admin_secret" = [])),
    params(("email" = String, Path, format = Email, max_length = 254)),
    responses((status = 204, description = "removed"), (status = 404, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn remove_admin(
    State(state): State<AppState>,
    _: AdminSecret,
    Path(email): Path<String>,
) -> Result<StatusCode, ApiError> {
    let email = email_of(&email)?;
    if !state.admins.remove(&email).await? {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "that email is not on the list",
        ));
    }
    // Their sessions end now, not at expiry.
    state.revocations.revoke_subject(&email).await?;
    tracing::info!(admin = %email, "admin removed from the allowlist and their sessions revoked");
    Ok(StatusCode::NO_CONTENT)
}
