//! The conversations objects and how HubSpot renders them (external-apis.md §4 and the v3
//! spec): every id a string, times ISO-8601 with milliseconds, optional fields left out.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

pub(crate) fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// HubSpot's channel ids.
pub(crate) const CHAT_CHANNEL: u64 = 1000;
pub(crate) const EMAIL_CHANNEL: u64 = 1002;
/// The app the sandbox's token belongs to: API writes are attributed to it.
pub(crate) const INTEGRATION_APP_ID: u64 = 9_100_900;
pub(crate) const INTEGRATION_ACTOR: &str = "I-9100900";
/// HubSpot itself, for changes nobody made by hand (a contact's reply reopening a thread).
pub(crate) const SYSTEM_ACTOR: &str = "S-hubspot";

#[derive(Clone, Debug)]
pub(crate) struct Inbox {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) created_at: DateTime<Utc>,
}

impl Inbox {
    pub(crate) fn json(&self) -> Value {
        json!({
            "id": self.id.to_string(),
            "name": self.name,
            "type": "INBOX",
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.created_at),
            "archived": false,
        })
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Channel {
    pub(crate) id: u64,
    pub(crate) name: &'static str,
}

impl Channel {
    pub(crate) fn json(&self) -> Value {
        json!({ "id": self.id.to_string(), "name": self.name })
    }
}

/// `{type, value}`: `HS_EMAIL_ADDRESS`, `HS_PHONE_NUMBER`, `CHANNEL_SPECIFIC_OPAQUE_ID`, `HS_SHORT_CODE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Identifier {
    pub(crate) kind: String,
    pub(crate) value: String,
}

impl Identifier {
    pub(crate) const KINDS: &'static [&'static str] = &[
        "HS_EMAIL_ADDRESS",
        "HS_PHONE_NUMBER",
        "CHANNEL_SPECIFIC_OPAQUE_ID",
        "HS_SHORT_CODE",
    ];

    pub(crate) fn email(address: &str) -> Self {
        Self {
            kind: "HS_EMAIL_ADDRESS".into(),
            value: address.into(),
        }
    }

    pub(crate) fn json(&self) -> Value {
        json!({ "type": self.kind, "value": self.value })
    }
}

#[derive(Clone, Debug)]
pub(crate) struct ChannelAccount {
    pub(crate) id: u64,
    pub(crate) channel_id: u64,
    pub(crate) inbox_id: u64,
    pub(crate) name: String,
    /// The address messages on this account come from (email accounts).
    pub(crate) identifier: Option<Identifier>,
    pub(crate) created_at: DateTime<Utc>,
}

impl ChannelAccount {
    pub(crate) fn json(&self) -> Value {
        let mut v = json!({
            "id": self.id.to_string(),
            "channelId": self.channel_id.to_string(),
            "inboxId": self.inbox_id.to_string(),
            "name": self.name,
            "active": true,
            "authorized": true,
            "archived": false,
            "createdAt": iso(self.created_at),
        });
        if let Some(i) = &self.identifier {
            v["deliveryIdentifier"] = i.json();
        }
        v
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ActorKind {
    Agent,
    Visitor,
    Email,
    Integrator,
    System,
}

/// Someone (or something) that writes in a thread: `A-` agents, `V-` chat visitors, `E-` email
/// senders, `I-` integrations, `S-` HubSpot.
#[derive(Clone, Debug)]
pub(crate) struct Actor {
    pub(crate) id: String,
    pub(crate) kind: ActorKind,
    pub(crate) name: Option<String>,
    pub(crate) email: Option<String>,
}

impl Actor {
    pub(crate) fn json(&self) -> Value {
        let kind = match self.kind {
            ActorKind::Agent => "AGENT",
            ActorKind::Visitor => "VISITOR",
            ActorKind::Email => "EMAIL",
            ActorKind::Integrator => "INTEGRATOR",
            ActorKind::System => "SYSTEM",
        };
        let mut v = json!({ "id": self.id, "type": kind });
        if let Some(name) = &self.name {
            v["name"] = name.clone().into();
        }
        if let Some(email) = &self.email {
            v["email"] = email.clone().into();
        }
        v
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Open,
    Closed,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Open => "OPEN",
            Status::Closed => "CLOSED",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "OPEN" => Some(Status::Open),
            "CLOSED" => Some(Status::Closed),
            _ => None,
        }
    }
}

/// The contact on the other side of a thread, as its messages name them.
#[derive(Clone, Debug)]
pub(crate) struct Participant {
    pub(crate) actor_id: String,
    pub(crate) name: String,
    pub(crate) identifier: Identifier,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Incoming,
    Outgoing,
}

/// A `MESSAGE`: something said to or by the contact on a channel.
#[derive(Clone, Debug)]
pub(crate) struct Said {
    pub(crate) direction: Direction,
    pub(crate) text: String,
    pub(crate) rich_text: Option<String>,
    pub(crate) subject: Option<String>,
    pub(crate) senders: Vec<Value>,
    pub(crate) recipients: Vec<Value>,
    pub(crate) channel_id: u64,
    pub(crate) channel_account_id: u64,
    pub(crate) in_reply_to: Option<String>,
    pub(crate) attachments: Vec<Value>,
}

#[derive(Clone, Debug)]
pub(crate) enum Body {
    Message(Said),
    /// An internal note; the contact never sees it.
    Comment {
        text: String,
        rich_text: Option<String>,
        attachments: Vec<Value>,
    },
    StatusChange(Status),
}

/// One entry of a thread's history.
#[derive(Clone, Debug)]
pub(crate) struct Message {
    pub(crate) id: String,
    /// Orders entries created in the same millisecond.
    pub(crate) seq: u64,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) created_by: String,
    /// Written through the API (an integration) rather than in HubSpot's own inbox.
    pub(crate) via_api: bool,
    pub(crate) body: Body,
}

impl Message {
    pub(crate) fn said(&self) -> Option<&Said> {
        match &self.body {
            Body::Message(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn json(&self, thread_id: u64) -> Value {
        let client = if self.via_api {
            json!({ "clientType": "INTEGRATION", "integrationAppId": INTEGRATION_APP_ID })
        } else {
            json!({ "clientType": "HUBSPOT" })
        };
        let mut v = Map::new();
        let mut put = |k: &str, value: Value| {
            v.insert(k.to_owned(), value);
        };
        put("id", self.id.clone().into());
        put("conversationsThreadId", thread_id.to_string().into());
        put("createdAt", iso(self.created_at).into());
        put("updatedAt", iso(self.created_at).into());
        put("createdBy", self.created_by.clone().into());
        put("client", client);
        put("archived", false.into());
        match &self.body {
            Body::Message(s) => {
                put("type", "MESSAGE".into());
                put("senders", s.senders.clone().into());
                put("recipients", s.recipients.clone().into());
                put("text", s.text.clone().into());
                if let Some(rich) = &s.rich_text {
                    put("richText", rich.clone().into());
                }
                if let Some(subject) = &s.subject {
                    put("subject", subject.clone().into());
                }
                put("attachments", s.attachments.clone().into());
                put("truncationStatus", "NOT_TRUNCATED".into());
                if let Some(id) = &s.in_reply_to {
                    put("inReplyToId", id.clone().into());
                }
                let status = match s.direction {
                    Direction::Incoming => "RECEIVED",
                    Direction::Outgoing => "SENT",
                };
                put("status", json!({ "statusType": status }));
                let direction = match s.direction {
                    Direction::Incoming => "INCOMING",
                    Direction::Outgoing => "OUTGOING",
                };
                put("direction", direction.into());
                put("channelId", s.channel_id.to_string().into());
                put("channelAccountId", s.channel_account_id.to_string().into());
            }
            Body::Comment {
                text,
                rich_text,
                attachments,
            } => {
                put("type", "COMMENT".into());
                put("senders", json!([{ "actorId": self.created_by }]));
                put("recipients", json!([]));
                put("text", text.clone().into());
                let rich = rich_text
                    .clone()
                    .unwrap_or_else(|| format!("<p>{}</p>", crate::inbox::escape(text)));
                put("richText", rich.into());
                put("attachments", attachments.clone().into());
            }
            Body::StatusChange(status) => {
                put("type", "THREAD_STATUS_CHANGE".into());
                put("senders", json!([{ "actorId": self.created_by }]));
                put("recipients", json!([]));
                put("newStatus", status.as_str().into());
            }
        }
        Value::Object(v)
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Thread {
    pub(crate) id: u64,
    pub(crate) inbox_id: u64,
    pub(crate) contact_id: String,
    pub(crate) contact: Participant,
    pub(crate) channel_id: u64,
    pub(crate) channel_account_id: u64,
    pub(crate) status: Status,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) closed_at: Option<DateTime<Utc>>,
    pub(crate) assigned_to: Option<String>,
    pub(crate) archived: bool,
    /// Oldest first.
    pub(crate) messages: Vec<Message>,
}

impl Thread {
    fn latest(&self, direction: Option<Direction>) -> Option<DateTime<Utc>> {
        self.messages
            .iter()
            .filter(|m| m.said().is_some_and(|s| direction.is_none_or(|d| s.direction == d)))
            .map(|m| m.created_at)
            .max()
    }

    /// When the contact or an agent last said something (the thread's start if nobody has).
    pub(crate) fn latest_message_at(&self) -> DateTime<Utc> {
        self.latest(None).unwrap_or(self.created_at)
    }

    /// The latest thing the contact said, which a reply answers.
    pub(crate) fn latest_incoming_id(&self) -> Option<String> {
        self.messages
            .iter()
            .rev()
            .find(|m| m.said().is_some_and(|s| s.direction == Direction::Incoming))
            .map(|m| m.id.clone())
    }

    pub(crate) fn json(&self) -> Value {
        let mut v = json!({
            "id": self.id.to_string(),
            "status": self.status.as_str(),
            "inboxId": self.inbox_id.to_string(),
            "associatedContactId": self.contact_id,
            "originalChannelId": self.channel_id.to_string(),
            "originalChannelAccountId": self.channel_account_id.to_string(),
            "createdAt": iso(self.created_at),
            "latestMessageTimestamp": iso(self.latest_message_at()),
            "spam": false,
            "archived": self.archived,
        });
        if let Some(t) = self.closed_at {
            v["closedAt"] = iso(t).into();
        }
        if let Some(t) = self.latest(Some(Direction::Outgoing)) {
            v["latestMessageSentTimestamp"] = iso(t).into();
        }
        if let Some(t) = self.latest(Some(Direction::Incoming)) {
            v["latestMessageReceivedTimestamp"] = iso(t).into();
        }
        if let Some(a) = &self.assigned_to {
            v["assignedTo"] = a.clone().into();
        }
        v
    }

    /// Sets the status, noting the change in the history; `false` if it was already so.
    pub(crate) fn set_status(&mut self, status: Status, by: &str, id: String, seq: u64, at: DateTime<Utc>) -> bool {
        if self.status == status {
            return false;
        }
        self.status = status;
        self.closed_at = (status == Status::Closed).then_some(at);
        self.messages.push(Message {
            id,
            seq,
            created_at: at,
            created_by: by.to_owned(),
            via_api: by == INTEGRATION_ACTOR,
            body: Body::StatusChange(status),
        });
        true
    }
}

/// A sender or recipient entry: `{actorId?, name?, deliveryIdentifier?, senderField|recipientField?}`.
pub(crate) fn party(
    actor_id: Option<&str>,
    name: Option<&str>,
    identifier: Option<&Identifier>,
    field: Option<(&str, &str)>,
) -> Value {
    let mut v = Map::new();
    if let Some(a) = actor_id {
        v.insert("actorId".into(), a.into());
    }
    if let Some(n) = name {
        v.insert("name".into(), n.into());
    }
    if let Some(i) = identifier {
        v.insert("deliveryIdentifier".into(), i.json());
    }
    if let Some((key, value)) = field {
        v.insert(key.into(), value.into());
    }
    Value::Object(v)
}
