//! The Meetings API v2 routes: create and list under a user, get, update and delete by meeting
//! number. Each request is authenticated first; create and list (Zoom's Medium label) then count
//! against the account's per-second budget, and a create against its host's daily one, before the
//! body is read, as a gateway limits requests whatever they carry.

use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use chrono::{SubsecRound, Utc};
use serde_json::{json, Value};

use super::{
    errors::{FieldError, ZoomError, ZoomResult},
    fields::{self, Changes},
    meeting::{self, Meeting, StartTime, INSTANT, RECURRING_FIXED_TIME, SCHEDULED},
    oauth::authorize,
    paging::{ListType, PageRequest, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE},
    reply, State as ZoomState,
};
use crate::{state::ZoomUser, urlencoded, Sandbox};

/// Minutes a meeting lasts when a create gives no duration.
const DEFAULT_DURATION: u32 = 60;

type Answer = ZoomResult<(StatusCode, Option<Value>)>;

/// The host a path names, by user id or email. This is an account-level app, so `me` names nobody
/// (Zoom resolves it only for user-level apps) and gets the unknown user's 1001.
fn host(state: &ZoomState, user_id: &str) -> ZoomResult<ZoomUser> {
    state
        .user(user_id)
        .cloned()
        .ok_or_else(|| ZoomError::user_not_found(user_id))
}

/// A meeting number from the path; anything else is a meeting that does not exist.
fn meeting_id(raw: &str) -> ZoomResult<i64> {
    raw.parse::<i64>().map_err(|_| ZoomError::meeting_not_found(raw))
}

/// Types 2 and 8 happen at a time, so they need one (unless the one given was already refused).
fn start_time_check(kind: u8, start: Option<StartTime>, errors: &mut Vec<FieldError>) {
    let named = errors.iter().any(|e| e.field == "start_time");
    if (kind == SCHEDULED || kind == RECURRING_FIXED_TIME) && start.is_none() && !named {
        errors.push(FieldError::new(
            "start_time",
            "start_time is required for a scheduled meeting (type 2 or 8).",
        ));
    }
}

/// Changes and settings copied onto a meeting; the passcode's derived forms follow it.
fn apply(m: &mut Meeting, c: Changes) {
    if let Some(topic) = c.topic {
        m.topic = topic;
    }
    if let Some(kind) = c.kind {
        m.kind = kind;
    }
    if let Some(start) = c.start_time {
        m.start_time = Some(start);
    }
    if let Some(duration) = c.duration {
        m.duration = duration;
    }
    if let Some(tz) = c.timezone {
        m.timezone = tz;
    }
    if let Some(agenda) = c.agenda {
        m.agenda = agenda;
    }
    if let Some(password) = c.password {
        m.set_password(password);
    }
    m.settings.extend(c.settings);
}

/// What the ledger may say about a meeting: who hosts it and when, never its topic or agenda.
fn effect_detail(m: &Meeting) -> String {
    match m.start_time {
        Some(start) => format!("host {}, start {}", m.host_id, start.render()),
        None => format!("host {}", m.host_id),
    }
}

/// `POST /v2/users/{userId}/meetings`: 201 with the meeting.
pub(crate) async fn create(
    State(sandbox): State<Sandbox>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    reply(create_meeting(&sandbox, &user_id, &headers, &body))
}

fn create_meeting(sandbox: &Sandbox, user_id: &str, headers: &HeaderMap, body: &[u8]) -> Answer {
    authorize(sandbox, headers)?;
    let now = Utc::now().trunc_subsecs(0);
    let mut state = sandbox.zoom().state();
    if !state.limits.take_medium(now) {
        return Err(ZoomError::per_second_limit());
    }
    let host = host(&state, user_id)?;
    if !state.limits.take_create(&host.id, now) {
        return Err(ZoomError::daily_create_limit(
            state.limits.settings.creates_per_host_per_day,
        ));
    }
    let (changes, mut errors) = fields::parse(body)?;
    if changes.topic.is_none() && !errors.iter().any(|e| e.field == "topic") {
        errors.push(FieldError::new("topic", "Topic is required."));
    }
    let kind = changes.kind.unwrap_or(SCHEDULED);
    start_time_check(kind, changes.start_time, &mut errors);
    if !errors.is_empty() {
        return Err(ZoomError::validation(errors));
    }

    let id = meeting::new_meeting_id(|id| state.meetings.contains_key(&id));
    let mut m = Meeting {
        id,
        uuid: meeting::new_uuid(),
        host_id: host.id.clone(),
        host_email: host.email.clone(),
        topic: String::new(),
        kind,
        // An instant meeting starts when it is made, whatever the body says.
        start_time: (kind == INSTANT).then_some(StartTime::Gmt(now)),
        duration: DEFAULT_DURATION,
        timezone: host.timezone.clone(),
        agenda: String::new(),
        created_at: now,
        password: String::new(),
        h323_password: String::new(),
        pstn_password: String::new(),
        encrypted_password: String::new(),
        settings: meeting::default_settings(),
    };
    m.set_password(meeting::generated_password());
    let instant = kind == INSTANT;
    apply(
        &mut m,
        Changes {
            start_time: if instant { None } else { changes.start_time },
            ..changes
        },
    );
    let rendered = m.json(&sandbox.config().zoom_account_id, now);
    let detail = effect_detail(&m);
    state.meetings.insert(id, m);
    drop(state);
    sandbox.record_effect("zoom", "meeting.created", Some(&id.to_string()), Some(&detail));
    Ok((StatusCode::CREATED, Some(rendered)))
}

/// `GET /v2/meetings/{meetingId}`: 200 with the meeting and a fresh `start_url`.
pub(crate) async fn get(State(sandbox): State<Sandbox>, Path(raw_id): Path<String>, headers: HeaderMap) -> Response {
    let result = authorize(&sandbox, &headers).and_then(|()| {
        let id = meeting_id(&raw_id)?;
        let state = sandbox.zoom().state();
        let m = state
            .meetings
            .get(&id)
            .ok_or_else(|| ZoomError::meeting_not_found(&raw_id))?;
        Ok((
            StatusCode::OK,
            Some(m.json(&sandbox.config().zoom_account_id, Utc::now())),
        ))
    });
    reply(result)
}

/// `PATCH /v2/meetings/{meetingId}`: any part of the create body; 204 with no body.
pub(crate) async fn update(
    State(sandbox): State<Sandbox>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    reply(update_meeting(&sandbox, &raw_id, &headers, &body))
}

fn update_meeting(sandbox: &Sandbox, raw_id: &str, headers: &HeaderMap, body: &[u8]) -> Answer {
    authorize(sandbox, headers)?;
    // The body is bound (and its fields checked) before the meeting is looked up.
    let (changes, errors) = fields::parse(body)?;
    if !errors.is_empty() {
        return Err(ZoomError::validation(errors));
    }
    let id = meeting_id(raw_id)?;
    let mut state = sandbox.zoom().state();
    let mut m = state
        .meetings
        .get(&id)
        .cloned()
        .ok_or_else(|| ZoomError::meeting_not_found(raw_id))?;
    apply(&mut m, changes);
    let mut errors = Vec::new();
    start_time_check(m.kind, m.start_time, &mut errors);
    if !errors.is_empty() {
        return Err(ZoomError::validation(errors));
    }
    let detail = effect_detail(&m);
    state.meetings.insert(id, m);
    drop(state);
    sandbox.record_effect("zoom", "meeting.updated", Some(&id.to_string()), Some(&detail));
    Ok((StatusCode::NO_CONTENT, None))
}

/// `DELETE /v2/meetings/{meetingId}[?occurrence_id=&schedule_for_reminder=&cancel_meeting_reminder=]`:
/// 204. The reminder flags are checked and otherwise ignored: the sandbox emails nobody.
pub(crate) async fn delete(
    State(sandbox): State<Sandbox>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let result = authorize(&sandbox, &headers).and_then(|()| {
        let pairs = urlencoded::pairs(query.as_deref().unwrap_or(""));
        let errors: Vec<FieldError> = ["schedule_for_reminder", "cancel_meeting_reminder"]
            .into_iter()
            .filter(|key| urlencoded::first(&pairs, key).is_some_and(|v| v != "true" && v != "false"))
            .map(|key| FieldError::new(key, "Invalid field: true or false."))
            .collect();
        if !errors.is_empty() {
            return Err(ZoomError::validation(errors));
        }
        let id = meeting_id(&raw_id)?;
        let removed = sandbox
            .zoom()
            .state()
            .meetings
            .remove(&id)
            .ok_or_else(|| ZoomError::meeting_not_found(&raw_id))?;
        sandbox.record_effect(
            "zoom",
            "meeting.deleted",
            Some(&id.to_string()),
            Some(&effect_detail(&removed)),
        );
        Ok((StatusCode::NO_CONTENT, None))
    });
    reply(result)
}

/// `GET /v2/users/{userId}/meetings[?type=&page_size=&next_page_token=]`.
pub(crate) async fn list(
    State(sandbox): State<Sandbox>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    reply(list_meetings(
        &sandbox,
        &user_id,
        &headers,
        query.as_deref().unwrap_or(""),
    ))
}

fn list_meetings(sandbox: &Sandbox, user_id: &str, headers: &HeaderMap, query: &str) -> Answer {
    authorize(sandbox, headers)?;
    let now = Utc::now();
    let mut state = sandbox.zoom().state();
    if !state.limits.take_medium(now) {
        return Err(ZoomError::per_second_limit());
    }
    let host = host(&state, user_id)?;
    let pairs = urlencoded::pairs(query);
    let param = |key: &str| urlencoded::first(&pairs, key).filter(|v| !v.is_empty());
    let mut errors = Vec::new();
    let list = match param("type").map(ListType::parse) {
        None => ListType::Scheduled,
        Some(Some(list)) => list,
        Some(None) => {
            errors.push(FieldError::new(
                "type",
                "Invalid field: scheduled, upcoming, upcoming_meetings, live or previous_meetings.",
            ));
            ListType::Scheduled
        }
    };
    // Zoom caps a page at 300 rather than refusing a larger size.
    let page_size = match param("page_size").map(str::parse::<usize>) {
        None => None,
        Some(Ok(n)) if n > 0 => Some(n.min(MAX_PAGE_SIZE)),
        Some(_) => {
            errors.push(FieldError::new("page_size", "Invalid field: a number from 1 to 300."));
            None
        }
    };
    if !errors.is_empty() {
        return Err(ZoomError::validation(errors));
    }
    let request = match param("next_page_token") {
        Some(token) => PageRequest::Next {
            token: token.to_owned(),
            page_size,
        },
        None => PageRequest::First {
            list,
            page_size: page_size.unwrap_or(DEFAULT_PAGE_SIZE),
        },
    };
    let ZoomState { meetings, pages, .. } = &mut *state;
    let page = pages
        .page(meetings.values(), &host.id, request, now)
        .ok_or_else(|| ZoomError::field("next_page_token", "The next page token is invalid or expired."))?;
    let entries: Vec<Value> = page.meetings.iter().map(|m| m.summary()).collect();
    Ok((
        StatusCode::OK,
        Some(json!({
            "page_size": page.page_size,
            "total_records": page.total_records,
            "next_page_token": page.next_page_token,
            "meetings": entries,
        })),
    ))
}
