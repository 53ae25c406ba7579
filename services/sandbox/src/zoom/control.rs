//! `/_sandbox/zoom`: test controls.
//!
//! - `POST /expire-tokens`: every token issued so far is expired now (the next call with one gets
//!   401 code 124 "Access token is expired."); `GET /tokens`: `{"issued", "valid"}`.
//! - `GET|PUT /limits` `{"creates_per_host_per_day": N, "medium_per_second": N}`: an absent field
//!   is left as it is; 0 refuses every such request. Reset restores Zoom's 100 and 20.
//! - `GET /meetings`: every meeting not deleted, oldest first, as get answers it.
//! - `GET|POST /users` `{"email", "id"?, "timezone"?}`: the account's users; a new one gets a
//!   Zoom-style id when none is given. Reset forgets users added here.

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use base64::Engine;
use chrono::Utc;
use rand::RngCore;
use serde_json::{json, Value};

use super::limits::Settings;
use crate::{state::ZoomUser, webhook::problem, Sandbox};

pub(crate) fn router() -> Router<Sandbox> {
    Router::new()
        .route(
            "/expire-tokens",
            post(|State(sandbox): State<Sandbox>| async move {
                sandbox.zoom().state().tokens.expire_all(Utc::now());
                StatusCode::NO_CONTENT
            }),
        )
        .route(
            "/tokens",
            get(|State(sandbox): State<Sandbox>| async move {
                Json(sandbox.zoom().state().tokens.describe(Utc::now()))
            }),
        )
        .route("/limits", get(get_limits).put(put_limits))
        .route("/meetings", get(list_meetings))
        .route("/users", get(list_users).post(add_user))
}

async fn get_limits(State(sandbox): State<Sandbox>) -> Json<Settings> {
    Json(sandbox.zoom().state().limits.settings)
}

async fn put_limits(State(sandbox): State<Sandbox>, Json(body): Json<Value>) -> Response {
    let figure = |key: &str| match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| format!("{key} must be a non-negative integer")),
    };
    let (daily, per_second) = match (figure("creates_per_host_per_day"), figure("medium_per_second")) {
        (Ok(d), Ok(s)) => (d, s),
        (Err(why), _) | (_, Err(why)) => return problem(StatusCode::BAD_REQUEST, why),
    };
    let mut state = sandbox.zoom().state();
    if let Some(n) = daily {
        state.limits.settings.creates_per_host_per_day = n;
    }
    if let Some(n) = per_second {
        state.limits.settings.medium_per_second = n;
    }
    Json(state.limits.settings).into_response()
}

async fn list_meetings(State(sandbox): State<Sandbox>) -> Json<Value> {
    let now = Utc::now();
    let account = &sandbox.config().zoom_account_id;
    let state = sandbox.zoom().state();
    let mut meetings: Vec<_> = state.meetings.values().collect();
    meetings.sort_by_key(|m| (m.created_at, m.id));
    let meetings: Vec<Value> = meetings.into_iter().map(|m| m.json(account, now)).collect();
    Json(json!({ "meetings": meetings }))
}

async fn list_users(State(sandbox): State<Sandbox>) -> Json<Value> {
    Json(json!({ "users": sandbox.zoom().state().users }))
}

/// `POST /users {"email", "id"?, "timezone"?}`: 201 with the user; 409 if the id or email is taken.
async fn add_user(State(sandbox): State<Sandbox>, Json(body): Json<Value>) -> Response {
    let text = |key: &str| {
        body.get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let Some(email) = text("email").filter(|e| e.contains('@') && !e.contains(char::is_whitespace)) else {
        return problem(StatusCode::BAD_REQUEST, "give email: the user's address");
    };
    let id = text("id").map_or_else(new_user_id, str::to_owned);
    let timezone = text("timezone").unwrap_or(crate::state::DEFAULT_ZOOM_TIMEZONE);
    let mut state = sandbox.zoom().state();
    if state.user(&id).is_some() || state.user(email).is_some() {
        return problem(StatusCode::CONFLICT, "a user with this id or email exists");
    }
    let user = ZoomUser {
        id,
        email: email.to_owned(),
        timezone: timezone.to_owned(),
    };
    state.users.push(user.clone());
    (StatusCode::CREATED, Json(user)).into_response()
}

/// 22 characters of URL-safe base64, the shape of Zoom's user ids.
fn new_user_id() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
