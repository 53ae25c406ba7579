//! The account's furniture: inboxes, channels, channel accounts (filter `channelId`, `inboxId`,
//! both repeatable) and actors. Lists are paged like threads and carry `total`.

use axum::{
    extract::{OriginalUri, Path, State as AxumState},
    http::HeaderMap,
    Json,
};
use chrono::Utc;
use serde_json::{json, Value};

use super::{
    authorize,
    errors::{HubError, HubResult},
    model::iso,
    numeric_id, origin, paging,
};
use crate::{urlencoded, Sandbox};

const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 500;

/// Pages `items` (already filtered, keyed by numeric id) and adds `total`.
fn listed(headers: &HeaderMap, uri: &http::Uri, items: Vec<(u64, Value)>) -> HubResult<Json<Value>> {
    let pairs = urlencoded::pairs(uri.query().unwrap_or(""));
    let limit = paging::limit(&pairs, DEFAULT_LIMIT, MAX_LIMIT)?;
    let after = paging::after(&pairs)?;
    let total = items.len();
    let keyed = items.into_iter().map(|(id, v)| (format!("{id:020}"), v)).collect();
    let page = paging::page(keyed, false, after.as_deref(), limit);
    let mut body = paging::envelope(page.items, page.next, &origin(headers), uri.path(), &pairs);
    body["total"] = total.into();
    Ok(Json(body))
}

fn ids(pairs: &[(String, String)], name: &str) -> HubResult<Vec<u64>> {
    urlencoded::all(pairs, name)
        .into_iter()
        .map(|raw| {
            raw.parse()
                .map_err(|_| HubError::invalid_field(name, format!("{name} must be an integer, got '{raw}'")))
        })
        .collect()
}

pub(crate) async fn inboxes(
    AxumState(sandbox): AxumState<Sandbox>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> HubResult<Json<Value>> {
    authorize(&sandbox, &headers)?;
    let items = sandbox.hubspot().inboxes.iter().map(|i| (i.id, i.json())).collect();
    listed(&headers, &uri, items)
}

pub(crate) async fn inbox(
    AxumState(sandbox): AxumState<Sandbox>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> HubResult<Json<Value>> {
    authorize(&sandbox, &headers)?;
    let id = numeric_id("Inbox", &raw)?;
    let state = sandbox.hubspot();
    let inbox = state.inboxes.iter().find(|i| i.id == id);
    inbox
        .map(|i| Json(i.json()))
        .ok_or_else(|| HubError::not_found("Inbox", &raw))
}

pub(crate) async fn channels(
    AxumState(sandbox): AxumState<Sandbox>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> HubResult<Json<Value>> {
    authorize(&sandbox, &headers)?;
    let items = sandbox.hubspot().channels.iter().map(|c| (c.id, c.json())).collect();
    listed(&headers, &uri, items)
}

pub(crate) async fn channel(
    AxumState(sandbox): AxumState<Sandbox>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> HubResult<Json<Value>> {
    authorize(&sandbox, &headers)?;
    let id = numeric_id("Channel", &raw)?;
    let state = sandbox.hubspot();
    let channel = state.channels.iter().find(|c| c.id == id);
    channel
        .map(|c| Json(c.json()))
        .ok_or_else(|| HubError::not_found("Channel", &raw))
}

pub(crate) async fn channel_accounts(
    AxumState(sandbox): AxumState<Sandbox>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> HubResult<Json<Value>> {
    authorize(&sandbox, &headers)?;
    let pairs = urlencoded::pairs(uri.query().unwrap_or(""));
    let (channels, inboxes) = (ids(&pairs, "channelId")?, ids(&pairs, "inboxId")?);
    let items = sandbox
        .hubspot()
        .accounts
        .iter()
        .filter(|a| channels.is_empty() || channels.contains(&a.channel_id))
        .filter(|a| inboxes.is_empty() || inboxes.contains(&a.inbox_id))
        .map(|a| (a.id, a.json()))
        .collect();
    listed(&headers, &uri, items)
}

pub(crate) async fn channel_account(
    AxumState(sandbox): AxumState<Sandbox>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> HubResult<Json<Value>> {
    authorize(&sandbox, &headers)?;
    let id = numeric_id("Channel account", &raw)?;
    let state = sandbox.hubspot();
    let account = state.account(id);
    account
        .map(|a| Json(a.json()))
        .ok_or_else(|| HubError::not_found("Channel account", &raw))
}

pub(crate) async fn actor(
    AxumState(sandbox): AxumState<Sandbox>,
    headers: HeaderMap,
    Path(actor_id): Path<String>,
) -> HubResult<Json<Value>> {
    authorize(&sandbox, &headers)?;
    let state = sandbox.hubspot();
    let actor = state.actor(&actor_id);
    actor
        .map(|a| Json(a.json()))
        .ok_or_else(|| HubError::not_found("Actor", &actor_id))
}

/// `POST /actors/batch/read {"inputs": [actorId, ...]}`: the known actors; unknown ids are
/// reported in `errors` (with status 207, as HubSpot's batch reads do).
pub(crate) async fn actors_batch(
    AxumState(sandbox): AxumState<Sandbox>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> HubResult<(http::StatusCode, Json<Value>)> {
    authorize(&sandbox, &headers)?;
    let started = iso(Utc::now());
    let body: Value =
        serde_json::from_slice(&body).map_err(|e| HubError::validation(format!("Invalid input JSON: {e}")))?;
    let Some(inputs) = body.get("inputs").and_then(Value::as_array) else {
        return Err(HubError::missing(&["inputs"]));
    };
    let state = sandbox.hubspot();
    let mut results = Vec::new();
    let mut unknown = Vec::new();
    for input in inputs {
        let id = input.as_str().unwrap_or_default();
        match state.actor(id) {
            Some(a) => results.push(a.json()),
            None => unknown.push(id.to_owned()),
        }
    }
    let mut out = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": started,
        "completedAt": iso(Utc::now()),
    });
    if unknown.is_empty() {
        return Ok((http::StatusCode::OK, Json(out)));
    }
    out["numErrors"] = unknown.len().into();
    out["errors"] = json!([{
        "status": "error",
        "category": "OBJECT_NOT_FOUND",
        "message": "Could not find actors",
        "context": { "ids": unknown },
    }]);
    Ok((http::StatusCode::MULTI_STATUS, Json(out)))
}
