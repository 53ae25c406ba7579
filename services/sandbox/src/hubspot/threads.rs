//! `/conversations/v3/conversations/threads[/{threadId}]`: list, get, update (status or restore),
//! archive. The list follows the spec's rules: sorted by `id` unless `sort=latestMessageTimestamp`
//! (which needs `latestMessageTimestampAfter`), descending (`-id`) only when filtering by
//! `associatedContactId`, which itself needs `threadStatus` and excludes `inboxId`.

use axum::{
    body::Bytes,
    extract::{OriginalUri, Path, State as AxumState},
    http::{HeaderMap, StatusCode},
    Json,
};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{
    authorize,
    errors::{HubError, HubResult},
    model::Status,
    model::INTEGRATION_ACTOR,
    numeric_id, origin, paging, Stamp,
};
use crate::{urlencoded, Sandbox};

const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 500;

fn parse_time(name: &str, raw: &str) -> HubResult<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.to_utc());
    }
    raw.parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(|| HubError::invalid_field(name, format!("{name} must be an ISO-8601 date-time, got '{raw}'")))
}

/// `GET /threads`.
pub(crate) async fn list(
    AxumState(sandbox): AxumState<Sandbox>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> HubResult<Json<Value>> {
    authorize(&sandbox, &headers)?;
    let pairs = urlencoded::pairs(uri.query().unwrap_or(""));
    let limit = paging::limit(&pairs, DEFAULT_LIMIT, MAX_LIMIT)?;
    let after = paging::after(&pairs)?;
    let status = urlencoded::first(&pairs, "threadStatus")
        .filter(|s| !s.is_empty())
        .map(|s| {
            Status::parse(s).ok_or_else(|| {
                HubError::invalid_field(
                    "threadStatus",
                    format!("threadStatus must be OPEN or CLOSED, got '{s}'"),
                )
            })
        })
        .transpose()?;
    let inbox_ids = urlencoded::all(&pairs, "inboxId")
        .into_iter()
        .map(|raw| {
            raw.parse::<u64>()
                .map_err(|_| HubError::invalid_field("inboxId", format!("inboxId must be an integer, got '{raw}'")))
        })
        .collect::<HubResult<Vec<u64>>>()?;
    let contact = urlencoded::first(&pairs, "associatedContactId").filter(|c| !c.is_empty());
    if contact.is_some() && !inbox_ids.is_empty() {
        return Err(HubError::validation(
            "associatedContactId cannot be used together with inboxId",
        ));
    }
    if contact.is_some() && status.is_none() {
        return Err(HubError::invalid_field(
            "threadStatus",
            "threadStatus is required when filtering by associatedContactId",
        ));
    }
    // No seeded thread is linked to a ticket.
    let by_ticket = urlencoded::first(&pairs, "associatedTicketId").is_some_and(|t| !t.is_empty());
    let active_after = urlencoded::first(&pairs, "latestMessageTimestampAfter")
        .filter(|t| !t.is_empty())
        .map(|raw| parse_time("latestMessageTimestampAfter", raw))
        .transpose()?;
    let archived = paging::boolean(&pairs, "archived", false)?;
    let (by_time, descending) = match urlencoded::first(&pairs, "sort").unwrap_or("id") {
        "" | "id" => (false, false),
        "-id" => (false, true),
        "latestMessageTimestamp" => (true, false),
        "-latestMessageTimestamp" => (true, true),
        other => {
            return Err(HubError::invalid_field(
                "sort",
                format!("sort must be id or latestMessageTimestamp, got '{other}'"),
            ))
        }
    };
    if by_time && active_after.is_none() {
        return Err(HubError::invalid_field(
            "latestMessageTimestampAfter",
            "latestMessageTimestampAfter is required when sorting by latestMessageTimestamp",
        ));
    }
    // "Otherwise, results are always returned in ascending order."
    let descending = descending && contact.is_some();

    let state = sandbox.hubspot();
    let matching: Vec<(String, Value)> = state
        .threads
        .iter()
        .filter(|t| t.archived == archived && !by_ticket)
        .filter(|t| status.is_none_or(|s| t.status == s))
        .filter(|t| inbox_ids.is_empty() || inbox_ids.contains(&t.inbox_id))
        .filter(|t| contact.is_none_or(|c| t.contact_id == c))
        .filter(|t| active_after.is_none_or(|after| t.latest_message_at() >= after))
        .map(|t| {
            let key = if by_time {
                format!("{:020}-{:020}", t.latest_message_at().timestamp_millis(), t.id)
            } else {
                format!("{:020}", t.id)
            };
            (key, t.json())
        })
        .collect();
    let page = paging::page(matching, descending, after.as_deref(), limit);
    Ok(Json(paging::envelope(
        page.items,
        page.next,
        &origin(&headers),
        uri.path(),
        &pairs,
    )))
}

/// The thread, found only among archived threads when `archived=true` and only among the others
/// otherwise.
fn visible(sandbox: &Sandbox, raw_id: &str, archived: bool) -> HubResult<u64> {
    let id = numeric_id("Thread", raw_id)?;
    match sandbox.hubspot().thread(id) {
        Some(t) if t.archived == archived => Ok(id),
        _ => Err(HubError::not_found("Thread", raw_id)),
    }
}

/// `GET /threads/{threadId}`.
pub(crate) async fn get(
    AxumState(sandbox): AxumState<Sandbox>,
    headers: HeaderMap,
    Path(raw_id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> HubResult<Json<Value>> {
    authorize(&sandbox, &headers)?;
    let pairs = urlencoded::pairs(uri.query().unwrap_or(""));
    let id = visible(&sandbox, &raw_id, paging::boolean(&pairs, "archived", false)?)?;
    let state = sandbox.hubspot();
    let thread = state.thread(id).ok_or_else(|| HubError::not_found("Thread", &raw_id))?;
    Ok(Json(thread.json()))
}

/// `PATCH /threads/{threadId}` `{"status": "OPEN"|"CLOSED"}` or, with `?archived=true`,
/// `{"archived": false}` to restore an archived thread.
pub(crate) async fn update(
    AxumState(sandbox): AxumState<Sandbox>,
    headers: HeaderMap,
    Path(raw_id): Path<String>,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
) -> HubResult<Json<Value>> {
    authorize(&sandbox, &headers)?;
    let pairs = urlencoded::pairs(uri.query().unwrap_or(""));
    let archived = paging::boolean(&pairs, "archived", false)?;
    let id = visible(&sandbox, &raw_id, archived)?;
    let body: Value =
        serde_json::from_slice(&body).map_err(|e| HubError::validation(format!("Invalid input JSON: {e}")))?;
    let status =
        match body.get("status") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(Status::parse(s).ok_or_else(|| {
                HubError::invalid_field("status", format!("status must be OPEN or CLOSED, got '{s}'"))
            })?),
            Some(_) => return Err(HubError::invalid_field("status", "status must be OPEN or CLOSED")),
        };
    let restore = match body.get("archived") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(HubError::invalid_field("archived", "archived must be a boolean")),
    };
    if status.is_none() && restore.is_none() {
        return Err(HubError::validation(
            "Give a status (OPEN or CLOSED), or archived: false to restore the thread",
        ));
    }
    if restore == Some(true) {
        return Err(HubError::invalid_field(
            "archived",
            "archived can only be set to false here; DELETE the thread to archive it",
        ));
    }
    let mut state = sandbox.hubspot();
    if archived {
        if status.is_some() {
            return Err(HubError::invalid_field(
                "status",
                "A thread's status can not be updated if the thread is archived",
            ));
        }
        if restore == Some(false) {
            if let Some(t) = state.threads.iter_mut().find(|t| t.id == id) {
                t.archived = false;
            }
        }
    }
    if let Some(status) = status {
        state.set_status(id, status, INTEGRATION_ACTOR, Stamp::now());
    }
    let thread = state.thread(id).ok_or_else(|| HubError::not_found("Thread", &raw_id))?;
    Ok(Json(thread.json()))
}

/// `DELETE /threads/{threadId}`: archives it (HubSpot deletes archived threads after 30 days;
/// the sandbox keeps them until reset).
pub(crate) async fn archive(
    AxumState(sandbox): AxumState<Sandbox>,
    headers: HeaderMap,
    Path(raw_id): Path<String>,
) -> HubResult<StatusCode> {
    authorize(&sandbox, &headers)?;
    let id = visible(&sandbox, &raw_id, false)?;
    if let Some(t) = sandbox.hubspot().threads.iter_mut().find(|t| t.id == id) {
        t.archived = true;
    }
    Ok(StatusCode::NO_CONTENT)
}
