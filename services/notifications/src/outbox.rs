//! Recording notifications: checked, sealed and written with one outbox message per channel before
//! any vendor hears of them, once per dedupe key; and the admin side of the outbox (list, one
//! message with its attempts, cancel, replay a dead letter).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use era_kit::{error::FieldViolation, sealing::Sealed};
use era_proto::{common::v1::Actor, notifications::v1 as pb};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    app::App,
    error::{Error, Result},
    store::{MessageRow, NewNotification, NotificationRow},
    templates::{self, Channel, Kind},
};

/// What a notification's sealed payload holds.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct Payload {
    pub(crate) variables: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) email: String,
    #[serde(default)]
    pub(crate) phone: String,
    #[serde(default)]
    pub(crate) name: String,
}

/// The clear columns bound into a notification's seal.
fn context(kind: Kind, patient: &str, dedupe_key: &str) -> Vec<u8> {
    format!("{}|{patient}|{dedupe_key}", kind.code()).into_bytes()
}

pub(crate) fn open(app: &App, n: &NotificationRow) -> Result<Payload> {
    let plain = app
        .keys
        .open(n.id, &context(n.kind, &n.patient, &n.dedupe_key), &n.sealed)?;
    serde_json::from_slice(&plain).map_err(|_| Error::Integrity)
}

/// Letters, digits and `_ - . :`: ids end up in URLs and keys.
fn check_id(bad: &mut Vec<FieldViolation>, field: &str, id: &str) {
    let ok = id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
    if !ok {
        bad.push(FieldViolation::new(
            field,
            "must be an id: letters, digits, '_', '-', '.', ':'",
        ));
    }
}

/// A notification to record, as the RPC and the login flows give it.
#[derive(Debug, Default)]
pub(crate) struct Request {
    pub(crate) kind: Option<Kind>,
    pub(crate) patient: String,
    pub(crate) payload: Payload,
    pub(crate) reference: String,
    pub(crate) dedupe_key: String,
    pub(crate) channels: Vec<Channel>,
    pub(crate) send_at: Option<DateTime<Utc>>,
    pub(crate) by: Actor,
    pub(crate) on_behalf_of: Option<String>,
}

/// Checks a SendNotification request, naming every bad field.
pub(crate) fn request_of(
    app: &App,
    req: pb::SendNotificationRequest,
    caller: &era_kit::auth::Caller,
) -> Result<Request> {
    let mut bad = Vec::new();
    let kind = Kind::from_pb(req.notification_type);
    if kind.is_none() {
        bad.push(FieldViolation::new(
            "notification_type",
            "is required: one of the notification types",
        ));
    }
    check_id(&mut bad, "canvas_patient_id", &req.canvas_patient_id);
    let mut channels = Vec::new();
    for (i, c) in req.channels.iter().enumerate() {
        match Channel::from_pb(*c) {
            Some(c) if !channels.contains(&c) => channels.push(c),
            Some(_) => {}
            None => bad.push(FieldViolation::new(
                format!("channels[{i}]"),
                "must be email, sms or portal",
            )),
        }
    }
    let recipient = req.recipient.unwrap_or_default();
    let email = recipient.email.trim().to_owned();
    let phone = recipient.phone.trim().to_owned();
    if !email.is_empty() && !templates::is_email(&email) {
        bad.push(FieldViolation::new("recipient.email", "is not an email address"));
    }
    if !phone.is_empty() && !templates::is_e164(&phone) {
        bad.push(FieldViolation::new(
            "recipient.phone",
            "must be an E.164 number, e.g. +15555550100",
        ));
    }
    if recipient.name.chars().count() > 200 {
        bad.push(FieldViolation::new("recipient.name", "must be at most 200 characters"));
    }
    if req.variables.len() > 50 {
        bad.push(FieldViolation::new("variables", "must be at most 50 entries"));
    }
    for (k, v) in &req.variables {
        if k.is_empty() || k.len() > 40 || !k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            bad.push(FieldViolation::new("variables", "names must be 1-40 of a-z and '_'"));
        } else if v.chars().count() > 2000 {
            bad.push(FieldViolation::new(
                format!("variables.{k}"),
                "must be at most 2000 characters",
            ));
        }
    }
    check_id(&mut bad, "reference", &req.reference);
    if !req.dedupe_key.is_empty() && (req.dedupe_key.len() > 200 || req.dedupe_key.chars().any(char::is_control)) {
        bad.push(FieldViolation::new(
            "dedupe_key",
            "must be at most 200 printable characters",
        ));
    }
    let send_at = match &req.send_at {
        None => None,
        Some(t) => match era_kit::time::from_timestamp(t) {
            Some(t) if t <= Utc::now() + chrono::Duration::days(366) => Some(t),
            _ => {
                bad.push(FieldViolation::new("send_at", "must be a time within the next year"));
                None
            }
        },
    };
    let variables: BTreeMap<String, String> = req.variables.into_iter().collect();
    if let Some(kind) = kind {
        if channels.is_empty() {
            channels = app.channels.get(&kind).cloned().unwrap_or_default();
        }
        for v in templates::missing(kind, &variables) {
            bad.push(FieldViolation::new(
                format!("variables.{v}"),
                format!("is required for {}", kind.code()),
            ));
        }
        let patient = !req.canvas_patient_id.is_empty();
        for c in &channels {
            match c {
                Channel::Email if !patient && email.is_empty() => bad.push(FieldViolation::new(
                    "recipient.email",
                    "is required for the email channel when no patient is named",
                )),
                Channel::Sms if !patient && phone.is_empty() => bad.push(FieldViolation::new(
                    "recipient.phone",
                    "is required for the sms channel when no patient is named",
                )),
                Channel::Portal if !patient => bad.push(FieldViolation::new(
                    "canvas_patient_id",
                    "is required for the portal channel",
                )),
                Channel::Portal if kind.is_secret() => bad.push(FieldViolation::new(
                    "channels",
                    "codes and links are never kept in the portal",
                )),
                _ => {}
            }
        }
    }
    if kind.is_some_and(Kind::is_secret) {
        bad.push(FieldViolation::new(
            "notification_type",
            "sign-in codes and links are sent by the login flow only",
        ));
    }
    // Without a reference the derived key would stand for every event of the type for the patient.
    if req.dedupe_key.is_empty() && req.reference.is_empty() && kind.is_some_and(|k| k != Kind::Welcome) {
        bad.push(FieldViolation::new(
            "reference",
            "is required when no dedupe_key is given: it says which event this is",
        ));
    }
    let (Some(kind), true) = (kind, bad.is_empty()) else {
        return Err(Error::InvalidArgument(bad));
    };
    let actor = req
        .actor
        .filter(|a| caller.role == era_kit::auth::Role::Service && !a.subject.is_empty());
    Ok(Request {
        kind: Some(kind),
        patient: req.canvas_patient_id,
        payload: Payload {
            variables,
            email,
            phone,
            name: recipient.name,
        },
        reference: req.reference,
        // Callers' keys have a space of their own, apart from derived and login keys.
        dedupe_key: if req.dedupe_key.is_empty() {
            String::new()
        } else {
            format!("key:{}", req.dedupe_key)
        },
        channels,
        send_at,
        by: Actor {
            subject: caller.subject.clone(),
            role: role_of(caller).into(),
        },
        on_behalf_of: actor.map(|a| a.subject.chars().take(200).collect()),
    })
}

fn role_of(caller: &era_kit::auth::Caller) -> &'static str {
    match caller.role {
        era_kit::auth::Role::Admin => "admin",
        era_kit::auth::Role::Patient => "patient",
        era_kit::auth::Role::Service => "service",
    }
}

/// Records the notification (once per dedupe key) and wakes the worker.
pub(crate) async fn record(app: &App, r: Request) -> Result<pb::SendNotificationResponse> {
    let kind = r.kind.ok_or_else(|| Error::field("notification_type", "is required"))?;
    // Without a key, the event for this patient (or address) and reference goes out once.
    let dedupe_key = if r.dedupe_key.is_empty() {
        let who = if r.patient.is_empty() {
            app.keys
                .blind_index("recipient", &format!("{}|{}", r.payload.email, r.payload.phone))
        } else {
            r.patient.clone()
        };
        format!("{}:{who}:{}", kind.code(), r.reference)
    } else {
        r.dedupe_key.clone()
    };
    let id = Uuid::new_v4();
    let plain = serde_json::to_vec(&r.payload).map_err(|e| Error::Internal(e.into()))?;
    let sealed: Sealed = app
        .keys
        .seal(id, &context(kind, &r.patient, &dedupe_key), &plain)
        .map_err(Error::Internal)?;
    let first = app.schedule.first().copied().unwrap_or_default();
    let send_at =
        r.send_at.unwrap_or_else(Utc::now).max(Utc::now()) + chrono::Duration::from_std(first).unwrap_or_default();
    let (id, messages, existing) = app
        .store
        .record(NewNotification {
            id,
            kind,
            patient: &r.patient,
            reference: &r.reference,
            dedupe_key: &dedupe_key,
            sealed: &sealed,
            send_at,
            channels: &r.channels,
            by_subject: &r.by.subject,
            by_role: &r.by.role,
            on_behalf_of: r.on_behalf_of.as_deref(),
        })
        .await?;
    if !existing {
        app.wake.notify_one();
    }
    Ok(pb::SendNotificationResponse {
        notification_id: id.to_string(),
        messages: messages.iter().map(message_pb).collect(),
        existing,
    })
}

pub(crate) fn status_pb(status: &str) -> pb::MessageStatus {
    use pb::MessageStatus as S;
    match status {
        "pending" => S::Pending,
        "sending" => S::Sending,
        "sent" => S::Sent,
        "dead_lettered" => S::DeadLettered,
        "cancelled" => S::Cancelled,
        "skipped" => S::Skipped,
        _ => S::Unspecified,
    }
}

pub(crate) fn status_code(s: pb::MessageStatus) -> Option<&'static str> {
    use pb::MessageStatus as S;
    Some(match s {
        S::Pending => "pending",
        S::Sending => "sending",
        S::Sent => "sent",
        S::DeadLettered => "dead_lettered",
        S::Cancelled => "cancelled",
        S::Skipped => "skipped",
        S::Unspecified => return None,
    })
}

pub(crate) fn message_pb(m: &MessageRow) -> pb::OutboxMessage {
    use era_kit::time::timestamp as ts;
    pb::OutboxMessage {
        id: m.id.to_string(),
        notification_id: m.notification_id.to_string(),
        notification_type: m.kind.to_pb() as i32,
        channel: m.channel.to_pb() as i32,
        status: status_pb(&m.status) as i32,
        canvas_patient_id: m.patient.clone(),
        masked_to: m.masked_to.clone(),
        dedupe_key: m.dedupe_key.clone(),
        attempt_count: m.attempt_count,
        vendor_message_id: m.vendor_message_id.clone(),
        last_error: m.last_error.clone(),
        send_at: Some(ts(m.send_at)),
        next_attempt_at: Some(ts(m.next_attempt_at)),
        sent_at: m.sent_at.map(ts),
        created_at: Some(ts(m.created_at)),
        updated_at: Some(ts(m.updated_at)),
    }
}

pub(crate) fn parse_id(field: &str, id: &str) -> Result<Uuid> {
    id.parse().map_err(|_| Error::field(field, "must be an id (UUID)"))
}

pub(crate) async fn cancel(app: &App, req: &pb::CancelNotificationRequest) -> Result<pb::CancelNotificationResponse> {
    let id = match (req.notification_id.is_empty(), req.dedupe_key.is_empty()) {
        (false, _) => parse_id("notification_id", &req.notification_id)?,
        (true, false) => {
            // The key as the caller gave it, or as the outbox shows it.
            let found = match app
                .store
                .notification_by_key(&format!("key:{}", req.dedupe_key))
                .await?
            {
                Some(id) => Some(id),
                None => app.store.notification_by_key(&req.dedupe_key).await?,
            };
            found.ok_or_else(|| Error::not_found("notification", "with that dedupe key"))?
        }
        (true, true) => {
            return Err(Error::field(
                "notification_id",
                "give a notification id or a dedupe key",
            ))
        }
    };
    if app.store.notification(id).await?.is_none() {
        return Err(Error::not_found("notification", id.to_string()));
    }
    app.store.cancel(id).await?;
    let messages = app.store.messages_of(id).await?;
    Ok(pb::CancelNotificationResponse {
        messages: messages.iter().map(message_pb).collect(),
    })
}

pub(crate) async fn replay(app: &App, req: &pb::ReplayDeadLetterRequest) -> Result<pb::ReplayDeadLetterResponse> {
    let id = parse_id("id", &req.id)?;
    let Some((m, _)) = app.store.message(id).await? else {
        return Err(Error::not_found("outbox message", id.to_string()));
    };
    if m.kind.is_secret() {
        return Err(Error::Precondition(
            "NOT_REPLAYABLE",
            "a sign-in code or link is not sent again; the person asks for a new one".into(),
        ));
    }
    if !app.store.replay(id).await? {
        return Err(Error::Precondition(
            "NOT_DEAD_LETTERED",
            "only a dead-lettered message can be replayed".into(),
        ));
    }
    app.wake.notify_one();
    let (m, _) = app
        .store
        .message(id)
        .await?
        .ok_or_else(|| Error::not_found("outbox message", id.to_string()))?;
    Ok(pb::ReplayDeadLetterResponse {
        message: Some(message_pb(&m)),
    })
}

pub(crate) async fn get(app: &App, req: &pb::GetOutboxMessageRequest) -> Result<pb::GetOutboxMessageResponse> {
    let id = parse_id("id", &req.id)?;
    let (m, attempts) = app
        .store
        .message(id)
        .await?
        .ok_or_else(|| Error::not_found("outbox message", id.to_string()))?;
    Ok(pb::GetOutboxMessageResponse {
        message: Some(message_pb(&m)),
        attempts: attempts
            .into_iter()
            .map(|a| pb::DeliveryAttempt {
                number: a.number,
                attempted_at: Some(era_kit::time::timestamp(a.attempted_at)),
                outcome: a.outcome,
                http_status: a.http_status,
                error: a.error,
            })
            .collect(),
    })
}

pub(crate) async fn list(app: &App, req: &pb::ListOutboxMessagesRequest) -> Result<pb::ListOutboxMessagesResponse> {
    let mut bad = Vec::new();
    check_id(&mut bad, "canvas_patient_id", &req.canvas_patient_id);
    let page = req.page.clone().unwrap_or_default();
    let before = era_kit::time::page_cursor(&page.page_token).map_err(|v| Error::InvalidArgument(vec![v]))?;
    if !bad.is_empty() {
        return Err(Error::InvalidArgument(bad));
    }
    let status = pb::MessageStatus::try_from(req.status).ok().and_then(status_code);
    let filter = crate::store::MessageFilter {
        status,
        channel: Channel::from_pb(req.channel),
        kind: Kind::from_pb(req.notification_type),
        patient: (!req.canvas_patient_id.is_empty()).then_some(req.canvas_patient_id.as_str()),
    };
    let size = era_kit::time::page_size(page.page_size);
    let mut rows = app.store.list_messages(&filter, before, size + 1).await?;
    let next = if rows.len() as i64 > size {
        rows.truncate(size as usize);
        rows.last().map(|m| (m.created_at, m.id))
    } else {
        None
    };
    Ok(pb::ListOutboxMessagesResponse {
        messages: rows.iter().map(message_pb).collect(),
        page: Some(era_kit::time::next_page(next)),
    })
}
