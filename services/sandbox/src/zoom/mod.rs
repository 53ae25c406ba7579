//! Zoom under `/zoom`, following external-apis.md §1: Server-to-Server OAuth at
//! `/zoom/oauth/token` (Zoom's token host `https://zoom.us`, so a client's OAuth base is
//! `http://<sandbox>/zoom`; see [`oauth`]) and the Meetings API v2 at `/zoom/v2` (for
//! `https://api.zoom.us/v2`; see [`meetings`]) over the account's seeded users. Zoom's error
//! bodies ([`errors`]), its create body rules ([`fields`]), the meeting object ([`meeting`]),
//! listing and paging ([`paging`]), and its per-host daily and per-second rate limits
//! ([`limits`]). Every answer under `/zoom` carries an `x-zm-trackingid`. Creates are not
//! idempotent, as Zoom's are not: a retried create makes a second meeting. Test controls live
//! under `/_sandbox/zoom` ([`control`]).

use std::{
    collections::BTreeMap,
    sync::{Mutex, MutexGuard},
};

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde_json::Value;

use crate::{state::ZoomUser, Sandbox, SandboxConfig};

mod control;
mod errors;
mod fields;
mod limits;
mod meeting;
mod meetings;
mod oauth;
mod paging;

pub(crate) use control::router as control_router;
use errors::ZoomResult;
use meeting::Meeting;

/// Everything Zoom remembers; reset puts it back to the configured users and nothing else.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) tokens: oauth::Tokens,
    /// By meeting number.
    pub(crate) meetings: BTreeMap<i64, Meeting>,
    /// The configured users, then any added at run time.
    pub(crate) users: Vec<ZoomUser>,
    pub(crate) limits: limits::Limits,
    pub(crate) pages: paging::PageTokens,
}

impl State {
    fn seeded(config: &SandboxConfig) -> Self {
        Self {
            tokens: oauth::Tokens::default(),
            meetings: BTreeMap::new(),
            users: config.zoom_users.clone(),
            limits: limits::Limits::default(),
            pages: paging::PageTokens::default(),
        }
    }

    /// A user by id, or by email as Zoom also accepts (emails compare without case).
    pub(crate) fn user(&self, id_or_email: &str) -> Option<&ZoomUser> {
        self.users
            .iter()
            .find(|u| u.id == id_or_email || u.email.eq_ignore_ascii_case(id_or_email))
    }
}

/// Zoom's part of the sandbox handle.
#[derive(Debug)]
pub(crate) struct Handle {
    state: Mutex<State>,
}

impl Handle {
    pub(crate) fn new(config: &SandboxConfig) -> Self {
        Self {
            state: Mutex::new(State::seeded(config)),
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets every meeting, token, page token, rate-limit count and user added at run time, and
    /// puts the limits back to Zoom's figures.
    pub(crate) fn reset(&self, config: &SandboxConfig) {
        *self.state() = State::seeded(config);
    }
}

/// `/zoom`: the caller adds the not-simulated fallback for other paths, and [`track`].
pub(crate) fn router() -> Router<Sandbox> {
    Router::new()
        .route("/oauth/token", post(oauth::token))
        .route(
            "/v2/users/{user_id}/meetings",
            get(meetings::list).post(meetings::create),
        )
        .route(
            "/v2/meetings/{meeting_id}",
            get(meetings::get).patch(meetings::update).delete(meetings::delete),
        )
}

/// Adds a new `x-zm-trackingid` to a response that has none, as Zoom's gateway does to every
/// answer: for the fault layer's made-up responses.
pub(crate) fn stamp(response: &mut Response) {
    if response.headers().contains_key("x-zm-trackingid") {
        return;
    }
    let id = format!("v=2.0;clid=us06;rid=WEB_{}", uuid::Uuid::new_v4().simple());
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-zm-trackingid", v);
    }
}

/// [`stamp`] as a response mapper, layered over every `/zoom` route.
pub(crate) async fn track(mut response: Response) -> Response {
    stamp(&mut response);
    response
}

/// A JSON answer (or a bodiless one) with the content type Zoom's API sends.
fn reply(result: ZoomResult<(StatusCode, Option<Value>)>) -> Response {
    let mut response = match result {
        Ok((status, Some(body))) => (status, Json(body)).into_response(),
        Ok((status, None)) => return status.into_response(),
        Err(e) => e.into_response(),
    };
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    response
}
