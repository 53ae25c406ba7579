//! The HubSpot conversation inbox for admins: threads (paged with HubSpot's cursor), a thread's
//! messages, and a reply on the thread's channel or an internal comment, posted once per
//! idempotency key. Message texts pass through; they are never stored here or logged.

use chrono::{DateTime, Utc};
use era_kit::error::FieldViolation;
use era_proto::notifications::v1 as pb;
use serde_json::Value;

use crate::{
    app::App,
    error::{Error, Result},
    store::NewReply,
    vendors::HubError,
};

const DEFAULT_PAGE: i32 = 20;
const MAX_PAGE: i32 = 100;
const MAX_TEXT: usize = 65_536;

impl From<HubError> for Error {
    fn from(e: HubError) -> Self {
        match e {
            HubError::NotFound => Error::not_found("conversation", "in HubSpot"),
            HubError::Unavailable(why) | HubError::Uncertain(why) => Error::Unavailable("HUBSPOT_UNAVAILABLE", why),
            HubError::Refused(_, why) => Error::Internal(anyhow::anyhow!(why)),
        }
    }
}

/// HubSpot thread ids are numbers sent as strings.
fn thread_id(field: &str, id: &str) -> Result<String> {
    if id.is_empty() || id.len() > 20 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::field(field, "must be a HubSpot thread id (digits)"));
    }
    Ok(id.to_owned())
}

fn limit(page: Option<&era_proto::common::v1::PageRequest>) -> String {
    let size = page.map_or(0, |p| p.page_size);
    (if size <= 0 { DEFAULT_PAGE } else { size.min(MAX_PAGE) }).to_string()
}

/// The cursor a page token carries (HubSpot's `after`, passed through).
fn cursor(page: Option<&era_proto::common::v1::PageRequest>) -> Result<Option<String>> {
    let token = page.map(|p| p.page_token.as_str()).unwrap_or_default();
    if token.is_empty() {
        return Ok(None);
    }
    if token.len() > 200
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'='))
    {
        return Err(Error::field("page.page_token", "is not a token this list issued"));
    }
    Ok(Some(token.to_owned()))
}

/// A page read with a cursor: HubSpot refusing it with a 400 means the cursor is not one it issued
/// (a made-up or stale token), which is the caller's to fix, not an error of ours.
async fn page(app: &App, path: &str, query: &[(&str, String)]) -> Result<Value> {
    let with_cursor = query.iter().any(|(k, _)| *k == "after");
    match app.hubspot.get(path, query).await {
        Err(HubError::Refused(400, _)) if with_cursor => {
            Err(Error::field("page.page_token", "is not a token this list issued"))
        }
        answer => Ok(answer?),
    }
}

fn next_token(body: &Value) -> String {
    body["paging"]["next"]["after"].as_str().unwrap_or_default().to_owned()
}

fn time(v: &Value) -> Option<prost_types::Timestamp> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| era_kit::time::timestamp(t.with_timezone(&Utc)))
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn conversation(t: &Value) -> pb::Conversation {
    pb::Conversation {
        id: text(&t["id"]),
        status: match t["status"].as_str() {
            Some("OPEN") => pb::ConversationStatus::Open,
            Some("CLOSED") => pb::ConversationStatus::Closed,
            _ => pb::ConversationStatus::Unspecified,
        } as i32,
        inbox_id: text(&t["inboxId"]),
        contact_id: text(&t["associatedContactId"]),
        assigned_to: text(&t["assignedTo"]),
        original_channel_id: text(&t["originalChannelId"]),
        original_channel_account_id: text(&t["originalChannelAccountId"]),
        archived: t["archived"].as_bool().unwrap_or_default(),
        latest_message_at: time(&t["latestMessageTimestamp"]),
        created_at: time(&t["createdAt"]),
        closed_at: time(&t["closedAt"]),
    }
}

fn message(m: &Value) -> pb::ConversationMessage {
    use pb::{ConversationMessageDirection as D, ConversationMessageKind as K};
    let sender = &m["senders"][0];
    pb::ConversationMessage {
        id: text(&m["id"]),
        conversation_id: text(&m["conversationsThreadId"]),
        kind: match m["type"].as_str() {
            Some("MESSAGE") => K::Message,
            Some("COMMENT") => K::Comment,
            _ => K::Event,
        } as i32,
        direction: match m["direction"].as_str() {
            Some("INCOMING") => D::Incoming,
            Some("OUTGOING") => D::Outgoing,
            _ => D::Unspecified,
        } as i32,
        text: text(&m["text"]),
        rich_text: text(&m["richText"]),
        subject: text(&m["subject"]),
        sender_actor_id: text(&sender["actorId"]),
        sender_name: text(&sender["name"]),
        channel_id: text(&m["channelId"]),
        status: text(&m["status"]["statusType"]),
        created_at: time(&m["createdAt"]),
    }
}

pub(crate) async fn list(app: &App, req: &pb::ListConversationsRequest) -> Result<pb::ListConversationsResponse> {
    let mut query = vec![("limit", limit(req.page.as_ref()))];
    if let Some(after) = cursor(req.page.as_ref())? {
        query.push(("after", after));
    }
    match pb::ConversationStatus::try_from(req.status).unwrap_or_default() {
        pb::ConversationStatus::Open => query.push(("threadStatus", "OPEN".into())),
        pb::ConversationStatus::Closed => query.push(("threadStatus", "CLOSED".into())),
        pb::ConversationStatus::Unspecified => {}
    }
    if !req.inbox_id.is_empty() {
        query.push(("inboxId", thread_id("inbox_id", &req.inbox_id)?));
    }
    let body = page(app, "/threads", &query).await?;
    Ok(pb::ListConversationsResponse {
        conversations: body["results"]
            .as_array()
            .into_iter()
            .flatten()
            .map(conversation)
            .collect(),
        page: Some(era_proto::common::v1::PageResponse {
            next_page_token: next_token(&body),
        }),
    })
}

pub(crate) async fn get(app: &App, req: &pb::GetConversationRequest) -> Result<pb::GetConversationResponse> {
    let id = thread_id("id", &req.id)?;
    let body = app.hubspot.get(&format!("/threads/{id}"), &[]).await?;
    Ok(pb::GetConversationResponse {
        conversation: Some(conversation(&body)),
    })
}

pub(crate) async fn messages(
    app: &App,
    req: &pb::ListConversationMessagesRequest,
) -> Result<pb::ListConversationMessagesResponse> {
    let id = thread_id("conversation_id", &req.conversation_id)?;
    let mut query = vec![("limit", limit(req.page.as_ref())), ("sort", "createdAt".to_owned())];
    if let Some(after) = cursor(req.page.as_ref())? {
        query.push(("after", after));
    }
    let body = page(app, &format!("/threads/{id}/messages"), &query).await?;
    Ok(pb::ListConversationMessagesResponse {
        messages: body["results"].as_array().into_iter().flatten().map(message).collect(),
        page: Some(era_proto::common::v1::PageResponse {
            next_page_token: next_token(&body),
        }),
    })
}

/// The keyed hash that recognises a repeat of the same reply.
fn request_mac(app: &App, req: &pb::ReplyToConversationRequest) -> String {
    app.keys.blind_index(
        "conversation-reply",
        &format!(
            "{}|{}|{}|{}",
            req.conversation_id,
            req.internal_comment,
            req.text.len(),
            // Hex first: the blind index folds case, and a reply differing only in case is another.
            app.keys
                .blind_index("reply-text", &hex(&format!("{}\u{0}{}", req.text, req.rich_text)))
        ),
    )
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The newest messages on a thread, newest first.
async fn recent(app: &App, id: &str) -> Result<Vec<Value>> {
    let body = app
        .hubspot
        .get(
            &format!("/threads/{id}/messages"),
            &[("limit", "50".into()), ("sort", "-createdAt".into())],
        )
        .await?;
    Ok(body["results"].as_array().cloned().unwrap_or_default())
}

pub(crate) async fn reply(
    app: &App,
    caller: &era_kit::auth::Caller,
    req: &pb::ReplyToConversationRequest,
) -> Result<pb::ReplyToConversationResponse> {
    let mut bad = Vec::new();
    let id = thread_id("conversation_id", &req.conversation_id);
    if let Err(Error::InvalidArgument(v)) = &id {
        bad.extend(v.iter().cloned());
    }
    if req.text.trim().is_empty() {
        bad.push(FieldViolation::new("text", "is required"));
    } else if req.text.len() > MAX_TEXT || req.rich_text.len() > MAX_TEXT {
        bad.push(FieldViolation::new("text", "must be at most 64 KiB"));
    }
    let key = req.idempotency_key.trim();
    if key.is_empty() || key.len() > 200 || key.chars().any(char::is_control) {
        bad.push(FieldViolation::new(
            "idempotency_key",
            "is required: at most 200 printable characters",
        ));
    }
    let (Ok(id), true) = (id, bad.is_empty()) else {
        return Err(Error::InvalidArgument(bad));
    };
    let mac = request_mac(app, req);
    let mut lock = app.locks.lock(&format!("reply:{key}")).await.map_err(lock_error)?;
    let existing = app.store.reply(key).await?;
    if let Some(r) = &existing {
        if r.request_mac != mac {
            return Err(Error::Precondition(
                "IDEMPOTENCY_KEY_REUSED",
                "this idempotency key was used for another reply".into(),
            ));
        }
        if let Some(message_id) = &r.hubspot_message_id {
            let m = app
                .hubspot
                .get(&format!("/threads/{id}/messages/{message_id}"), &[])
                .await?;
            return Ok(pb::ReplyToConversationResponse {
                message: Some(message(&m)),
                existing: true,
            });
        }
    }
    // An earlier attempt may have posted: look on the thread before anything else (the thread may
    // have closed since), and before posting again.
    if let Some(since) = existing.as_ref().and_then(|r| r.uncertain_since) {
        let since = since - chrono::Duration::minutes(1);
        let kind = if req.internal_comment { "COMMENT" } else { "MESSAGE" };
        let mut found = None;
        for m in recent(app, &id).await? {
            let same = m["type"].as_str() == Some(kind)
                && m["text"].as_str() == Some(req.text.as_str())
                && (req.internal_comment || m["senders"][0]["actorId"].as_str() == Some(app.hubspot.sender.as_str()))
                && m["createdAt"]
                    .as_str()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .is_some_and(|t| t.with_timezone(&Utc) >= since);
            // Another key's reply with the same words is not this one.
            if same && !app.store.message_recorded(&text(&m["id"])).await? {
                found = Some(m);
                break;
            }
        }
        if let Some(m) = found {
            app.store.reply_posted(key, &text(&m["id"])).await?;
            return Ok(pb::ReplyToConversationResponse {
                message: Some(message(&m)),
                existing: true,
            });
        }
    }
    let thread = app.hubspot.get(&format!("/threads/{id}"), &[]).await?;
    if !req.internal_comment && thread["status"].as_str() == Some("CLOSED") {
        return Err(Error::Precondition(
            "CONVERSATION_CLOSED",
            "the conversation is closed; reopen it in HubSpot or add an internal comment".into(),
        ));
    }
    let on_behalf_of = req
        .actor
        .as_ref()
        .filter(|a| caller.role == era_kit::auth::Role::Service && !a.subject.is_empty())
        .map(|a| a.subject.chars().take(200).collect::<String>());
    if existing.is_none() {
        app.store
            .insert_reply(NewReply {
                key,
                conversation_id: &id,
                request_mac: &mac,
                internal_comment: req.internal_comment,
                by: &caller.subject,
                on_behalf_of: on_behalf_of.as_deref(),
            })
            .await?;
    }
    let egg = if req.internal_comment {
        let mut c = serde_json::json!({ "type": "COMMENT", "text": req.text, "attachments": [] });
        if !req.rich_text.is_empty() {
            c["richText"] = req.rich_text.clone().into();
        }
        c
    } else {
        // On the thread's own channel, to whoever last wrote in.
        let latest = recent(app, &id)
            .await?
            .into_iter()
            .find(|m| m["type"].as_str() == Some("MESSAGE") && m["direction"].as_str() == Some("INCOMING"))
            .ok_or_else(|| {
                Error::Precondition(
                    "NO_CONTACT_MESSAGE",
                    "the contact has not written on this conversation; add an internal comment instead".into(),
                )
            })?;
        let sender = &latest["senders"][0];
        let mut recipient = serde_json::json!({ "deliveryIdentifiers": [sender["deliveryIdentifier"].clone()] });
        if let Some(actor) = sender["actorId"].as_str() {
            recipient["actorId"] = actor.into();
        }
        let mut m = serde_json::json!({
            "type": "MESSAGE",
            "text": req.text,
            "senderActorId": app.hubspot.sender,
            "channelId": thread["originalChannelId"],
            "channelAccountId": thread["originalChannelAccountId"],
            "recipients": [recipient],
            "attachments": [],
        });
        if !req.rich_text.is_empty() {
            m["richText"] = req.rich_text.clone().into();
        }
        if let Some(subject) = latest["subject"].as_str() {
            m["subject"] = format!("Re: {}", subject.trim_start_matches("Re: ")).into();
        }
        m
    };
    lock.check().await.map_err(lock_error)?;
    app.store.reply_uncertain(key).await?;
    match app.hubspot.post(&format!("/threads/{id}/messages"), &egg).await {
        Ok(posted) => {
            app.store.reply_posted(key, &text(&posted["id"])).await?;
            tracing::info!(conversation = %id, comment = req.internal_comment, "reply posted to HubSpot");
            Ok(pb::ReplyToConversationResponse {
                message: Some(message(&posted)),
                existing: false,
            })
        }
        // Certainly not posted: the next attempt need not look first.
        Err(e @ (HubError::Unavailable(_) | HubError::Refused(..) | HubError::NotFound)) => {
            app.store.reply_not_posted(key).await?;
            Err(e.into())
        }
        Err(e @ HubError::Uncertain(_)) => Err(e.into()),
    }
}

fn lock_error(e: era_kit::keylock::LockError) -> Error {
    match e {
        era_kit::keylock::LockError::Db(e) => Error::Db(e),
        other => Error::Aborted(other.reason(), other.to_string()),
    }
}
