//! `/threads/{threadId}/messages[/{messageId}]`: a thread's history (newest first unless
//! `sort=createdAt`, as the spec says) and posting to it. A `MESSAGE` needs `type`, `text`,
//! `senderActorId` (an agent, `A-...`), `channelId`, `channelAccountId` (an account of that
//! channel), `recipients` (each with delivery identifiers) and `attachments`; a `COMMENT` needs
//! `type`, `text` and `attachments`. Missing fields are named in a `VALIDATION_ERROR`.

use axum::{
    body::Bytes,
    extract::{OriginalUri, Path, State as AxumState},
    http::{HeaderMap, StatusCode},
    Json,
};
use serde_json::{Map, Value};

use super::{
    authorize,
    errors::{HubError, HubResult},
    model::{ActorKind, Identifier, INTEGRATION_ACTOR},
    numeric_id, origin, paging, Comment, Reply, Stamp,
};
use crate::{
    inbox::{Channel, Delivery},
    urlencoded, Sandbox,
};

const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 500;

/// The thread's id, if it exists and is not archived.
fn open_thread(sandbox: &Sandbox, raw_id: &str) -> HubResult<u64> {
    let id = numeric_id("Thread", raw_id)?;
    match sandbox.hubspot().thread(id) {
        Some(t) if !t.archived => Ok(id),
        _ => Err(HubError::not_found("Thread", raw_id)),
    }
}

/// `GET /threads/{threadId}/messages`.
pub(crate) async fn list(
    AxumState(sandbox): AxumState<Sandbox>,
    headers: HeaderMap,
    Path(raw_id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> HubResult<Json<Value>> {
    authorize(&sandbox, &headers)?;
    let id = open_thread(&sandbox, &raw_id)?;
    let pairs = urlencoded::pairs(uri.query().unwrap_or(""));
    let limit = paging::limit(&pairs, DEFAULT_LIMIT, MAX_LIMIT)?;
    let after = paging::after(&pairs)?;
    let descending = match urlencoded::first(&pairs, "sort").unwrap_or("-createdAt") {
        "" | "-createdAt" => true,
        "createdAt" => false,
        other => {
            return Err(HubError::invalid_field(
                "sort",
                format!("sort must be createdAt or -createdAt, got '{other}'"),
            ))
        }
    };
    let state = sandbox.hubspot();
    let thread = state.thread(id).ok_or_else(|| HubError::not_found("Thread", &raw_id))?;
    let items: Vec<(String, Value)> = thread
        .messages
        .iter()
        .map(|m| {
            let key = format!("{:020}-{:020}", m.created_at.timestamp_millis(), m.seq);
            (key, m.json(id))
        })
        .collect();
    let page = paging::page(items, descending, after.as_deref(), limit);
    Ok(Json(paging::envelope(
        page.items,
        page.next,
        &origin(&headers),
        uri.path(),
        &pairs,
    )))
}

/// `GET /threads/{threadId}/messages/{messageId}`.
pub(crate) async fn get(
    AxumState(sandbox): AxumState<Sandbox>,
    headers: HeaderMap,
    Path((raw_id, message_id)): Path<(String, String)>,
) -> HubResult<Json<Value>> {
    authorize(&sandbox, &headers)?;
    let id = open_thread(&sandbox, &raw_id)?;
    let state = sandbox.hubspot();
    state
        .thread(id)
        .and_then(|t| t.messages.iter().find(|m| m.id == message_id))
        .map(|m| Json(m.json(id)))
        .ok_or_else(|| HubError::not_found("Message", &message_id))
}

/// `POST /threads/{threadId}/messages`: 201 with the new message.
pub(crate) async fn create(
    AxumState(sandbox): AxumState<Sandbox>,
    headers: HeaderMap,
    Path(raw_id): Path<String>,
    body: Bytes,
) -> HubResult<(StatusCode, Json<Value>)> {
    authorize(&sandbox, &headers)?;
    let id = open_thread(&sandbox, &raw_id)?;
    let body: Value =
        serde_json::from_slice(&body).map_err(|e| HubError::validation(format!("Invalid input JSON: {e}")))?;
    let Some(egg) = body.as_object() else {
        return Err(HubError::validation("Invalid input JSON: expected an object"));
    };
    let message = match egg.get("type").and_then(Value::as_str) {
        None => return Err(HubError::missing(&["type"])),
        Some("MESSAGE") => send(&sandbox, id, egg)?,
        Some("COMMENT") => comment(&sandbox, id, egg)?,
        Some(other) => {
            return Err(HubError::invalid_field(
                "type",
                format!("type must be MESSAGE or COMMENT, got '{other}'"),
            ))
        }
    };
    Ok((StatusCode::CREATED, Json(message)))
}

/// Names the required fields `egg` lacks (absent or null).
fn require(egg: &Map<String, Value>, fields: &[&'static str]) -> HubResult<()> {
    let missing: Vec<&str> = fields
        .iter()
        .copied()
        .filter(|f| egg.get(*f).is_none_or(Value::is_null))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(HubError::missing(&missing))
    }
}

fn text(egg: &Map<String, Value>) -> HubResult<String> {
    match egg.get("text").and_then(Value::as_str) {
        Some(t) if !t.trim().is_empty() => Ok(t.to_owned()),
        _ => Err(HubError::invalid_field("text", "text must be a non-empty string")),
    }
}

fn optional_string(egg: &Map<String, Value>, name: &str) -> HubResult<Option<String>> {
    match egg.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(HubError::invalid_field(name, format!("{name} must be a string"))),
    }
}

/// Ids arrive as strings (the spec) or numbers (Jackson reads either).
fn id_field(egg: &Map<String, Value>, name: &str) -> HubResult<u64> {
    match egg.get(name) {
        Some(Value::String(s)) => s.parse().ok(),
        Some(Value::Number(n)) => n.as_u64(),
        _ => None,
    }
    .ok_or_else(|| HubError::invalid_field(name, format!("{name} must be a numeric id")))
}

fn attachments(egg: &Map<String, Value>) -> HubResult<Vec<Value>> {
    egg.get("attachments")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| HubError::invalid_field("attachments", "attachments must be an array (it may be empty)"))
}

/// Each recipient egg as HubSpot echoes it: one `deliveryIdentifier` (the first given), plus
/// `actorId`, `name` and `recipientField` when present.
fn recipients(egg: &Map<String, Value>) -> HubResult<(Vec<Value>, Vec<Identifier>)> {
    let Some(items) = egg
        .get("recipients")
        .and_then(Value::as_array)
        .filter(|r| !r.is_empty())
    else {
        return Err(HubError::invalid_field(
            "recipients",
            "recipients must be a non-empty array of {deliveryIdentifiers: [{type, value}]}",
        ));
    };
    let mut rendered = Vec::new();
    let mut identifiers = Vec::new();
    for (i, r) in items.iter().enumerate() {
        let field = format!("recipients[{i}].deliveryIdentifiers");
        let given: Vec<&Value> = match (r.get("deliveryIdentifiers"), r.get("deliveryIdentifier")) {
            (Some(Value::Array(list)), _) => list.iter().collect(),
            (_, Some(one @ Value::Object(_))) => vec![one],
            _ => Vec::new(),
        };
        if given.is_empty() {
            return Err(HubError::invalid_field(&field, format!("{field} is required")));
        }
        let mut parsed = Vec::new();
        for d in given {
            let kind = d.get("type").and_then(Value::as_str).unwrap_or("");
            let value = d.get("value").and_then(Value::as_str).unwrap_or("").trim();
            if !Identifier::KINDS.contains(&kind) || value.is_empty() {
                return Err(HubError::invalid_field(
                    &field,
                    format!(
                        "each delivery identifier needs a type ({}) and a value",
                        Identifier::KINDS.join(", ")
                    ),
                ));
            }
            parsed.push(Identifier {
                kind: kind.to_owned(),
                value: value.to_owned(),
            });
        }
        let mut v = Map::new();
        for key in ["actorId", "name", "recipientField"] {
            if let Some(s) = r.get(key).and_then(Value::as_str) {
                v.insert(key.into(), s.into());
            }
        }
        v.insert("deliveryIdentifier".into(), parsed[0].json());
        rendered.push(Value::Object(v));
        identifiers.extend(parsed);
    }
    Ok((rendered, identifiers))
}

fn send(sandbox: &Sandbox, thread_id: u64, egg: &Map<String, Value>) -> HubResult<Value> {
    require(
        egg,
        &[
            "type",
            "text",
            "senderActorId",
            "channelId",
            "channelAccountId",
            "recipients",
            "attachments",
        ],
    )?;
    let text = text(egg)?;
    let agent = optional_string(egg, "senderActorId")?.unwrap_or_default();
    let channel_id = id_field(egg, "channelId")?;
    let account_id = id_field(egg, "channelAccountId")?;
    let (recipients, identifiers) = recipients(egg)?;
    let attachments = attachments(egg)?;
    let rich_text = optional_string(egg, "richText")?;
    let subject = optional_string(egg, "subject")?;

    let mut state = sandbox.hubspot();
    if !state.actor(&agent).is_some_and(|a| a.kind == ActorKind::Agent) {
        return Err(HubError::invalid_field(
            "senderActorId",
            format!("senderActorId '{agent}' is not an agent of this account (A-<userId>)"),
        ));
    }
    let account = state
        .account(account_id)
        .filter(|a| a.channel_id == channel_id)
        .cloned()
        .ok_or_else(|| {
            HubError::invalid_field(
                "channelAccountId",
                format!("channel account {account_id} does not exist on channel {channel_id}"),
            )
        })?;
    let stamp = Stamp::now();
    let (message_id, sent_at) = (stamp.id.clone(), stamp.at);
    let reply = Reply {
        agent,
        account_id,
        recipients,
        text: text.clone(),
        rich_text: rich_text.clone(),
        subject: subject.clone(),
        attachments,
        via_api: true,
    };
    let rendered = state
        .reply(thread_id, reply, stamp)
        .ok_or_else(|| HubError::not_found("Thread", &thread_id.to_string()))?;
    drop(state);

    let from = account
        .identifier
        .as_ref()
        .map_or(account.name.clone(), |i| i.value.clone());
    sandbox.inbox().push(identifiers.into_iter().map(|i| Delivery {
        id: message_id.clone(),
        channel: Channel::Hubspot,
        to: i.value,
        from: Some(from.clone()),
        subject: subject.clone(),
        text: Some(text.clone()),
        html: rich_text.clone(),
        template_id: None,
        template_data: None,
        sent_at,
    }));
    sandbox.record_effect(
        "hubspot",
        "conversation.message.sent",
        Some(&message_id),
        Some(&format!("thread {thread_id}")),
    );
    Ok(rendered)
}

fn comment(sandbox: &Sandbox, thread_id: u64, egg: &Map<String, Value>) -> HubResult<Value> {
    require(egg, &["type", "text", "attachments"])?;
    let comment = Comment {
        by: INTEGRATION_ACTOR.to_owned(),
        text: text(egg)?,
        rich_text: optional_string(egg, "richText")?,
        attachments: attachments(egg)?,
        via_api: true,
    };
    let stamp = Stamp::now();
    let message_id = stamp.id.clone();
    let rendered = sandbox
        .hubspot()
        .comment(thread_id, comment, stamp)
        .ok_or_else(|| HubError::not_found("Thread", &thread_id.to_string()))?;
    sandbox.record_effect(
        "hubspot",
        "conversation.comment.created",
        Some(&message_id),
        Some(&format!("thread {thread_id}")),
    );
    Ok(rendered)
}
