//! HubSpot's Conversations inbox API (v3) under `/hubspot`, so a client's base URL is
//! `http://<sandbox>/hubspot`, following external-apis.md §4 and the official v3 spec: Bearer
//! private-app-token auth, threads (list with filters and cursor paging, get, status change,
//! archive), their messages (list, get, reply, internal comment), inboxes, channels, channel
//! accounts and actors, HubSpot's error body ([`errors`]), and a demo account ([`seed`]).
//!
//! Replying to a CLOSED thread is accepted and leaves the thread CLOSED: the v3 spec documents no
//! rule for it, and in HubSpot's inbox it is the contact's reply that reopens a conversation,
//! which the `/_sandbox/hubspot/threads/{id}/incoming` control simulates. Archived threads are
//! found only with `archived=true` and take no messages.

use axum::{
    http::{header, HeaderMap},
    routing::{get, post},
    Router,
};
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::Sandbox;

mod catalog;
mod control;
mod errors;
mod messages;
mod model;
mod paging;
pub mod seed;
mod threads;

use errors::{HubError, HubResult};
use model::{
    party, Actor, Body, Channel, ChannelAccount, Direction, Inbox, Message, Said, Status, Thread, EMAIL_CHANNEL,
    SYSTEM_ACTOR,
};

/// Everything HubSpot remembers; reset puts it back to [`seed`].
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) inboxes: Vec<Inbox>,
    pub(crate) channels: Vec<Channel>,
    pub(crate) accounts: Vec<ChannelAccount>,
    pub(crate) actors: Vec<Actor>,
    /// In id order.
    pub(crate) threads: Vec<Thread>,
    next_seq: u64,
}

/// When a history entry is written, and its id.
pub(crate) struct Stamp {
    pub(crate) id: String,
    pub(crate) at: DateTime<Utc>,
}

impl Stamp {
    /// A new entry now, with a random id of 32 hex digits like HubSpot's.
    pub(crate) fn now() -> Self {
        Self {
            id: uuid::Uuid::new_v4().simple().to_string(),
            at: Utc::now(),
        }
    }
}

/// An agent's message to the thread's contact.
pub(crate) struct Reply {
    pub(crate) agent: String,
    pub(crate) account_id: u64,
    pub(crate) recipients: Vec<Value>,
    pub(crate) text: String,
    pub(crate) rich_text: Option<String>,
    pub(crate) subject: Option<String>,
    pub(crate) attachments: Vec<Value>,
    pub(crate) via_api: bool,
}

/// An internal note on a thread.
pub(crate) struct Comment {
    pub(crate) by: String,
    pub(crate) text: String,
    pub(crate) rich_text: Option<String>,
    pub(crate) attachments: Vec<Value>,
    pub(crate) via_api: bool,
}

impl State {
    /// The demo account.
    pub(crate) fn seeded(now: DateTime<Utc>) -> Self {
        seed::state(now)
    }

    fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    pub(crate) fn thread(&self, id: u64) -> Option<&Thread> {
        self.threads.iter().find(|t| t.id == id)
    }

    fn thread_mut(&mut self, id: u64) -> Option<&mut Thread> {
        self.threads.iter_mut().find(|t| t.id == id)
    }

    pub(crate) fn account(&self, id: u64) -> Option<&ChannelAccount> {
        self.accounts.iter().find(|a| a.id == id)
    }

    pub(crate) fn actor(&self, id: &str) -> Option<&Actor> {
        self.actors.iter().find(|a| a.id == id)
    }

    /// Appends to a thread's history; the rendered entry, or `None` if there is no such thread.
    fn append(&mut self, thread_id: u64, created_by: &str, via_api: bool, body: Body, stamp: Stamp) -> Option<Value> {
        let seq = self.next_seq();
        let thread = self.thread_mut(thread_id)?;
        let message = Message {
            id: stamp.id,
            seq,
            created_at: stamp.at,
            created_by: created_by.to_owned(),
            via_api,
            body,
        };
        let rendered = message.json(thread_id);
        thread.messages.push(message);
        Some(rendered)
    }

    /// The thread's contact writes on the thread's channel; a CLOSED thread reopens.
    pub(crate) fn receive(
        &mut self,
        thread_id: u64,
        text: &str,
        subject: Option<String>,
        rich_text: Option<String>,
        stamp: Stamp,
    ) -> Option<Value> {
        let thread = self.thread(thread_id)?;
        let email = thread.channel_id == EMAIL_CHANNEL;
        let contact = thread.contact.clone();
        let (channel_id, account_id, closed) = (
            thread.channel_id,
            thread.channel_account_id,
            thread.status == Status::Closed,
        );
        let account_identifier = self.account(account_id).and_then(|a| a.identifier.clone());
        let senders = vec![party(
            Some(&contact.actor_id),
            Some(&contact.name),
            Some(&contact.identifier),
            email.then_some(("senderField", "FROM")),
        )];
        let recipients = match (&account_identifier, email) {
            (Some(i), true) => vec![party(None, None, Some(i), Some(("recipientField", "TO")))],
            _ => Vec::new(),
        };
        let said = Said {
            direction: Direction::Incoming,
            text: text.to_owned(),
            rich_text,
            subject: subject.filter(|_| email),
            senders,
            recipients,
            channel_id,
            channel_account_id: account_id,
            in_reply_to: None,
            attachments: Vec::new(),
        };
        let at = stamp.at;
        let rendered = self.append(thread_id, &contact.actor_id, false, Body::Message(said), stamp)?;
        if closed {
            self.set_status(thread_id, Status::Open, SYSTEM_ACTOR, Stamp { at, ..Stamp::now() });
        }
        Some(rendered)
    }

    /// Who an agent's reply goes to: the thread's contact, by the identifier they wrote from.
    pub(crate) fn reply_recipients(&self, thread_id: u64) -> Vec<Value> {
        self.thread(thread_id).map_or_else(Vec::new, |t| {
            let email = t.channel_id == EMAIL_CHANNEL;
            vec![party(
                Some(&t.contact.actor_id),
                Some(&t.contact.name),
                Some(&t.contact.identifier),
                email.then_some(("recipientField", "TO")),
            )]
        })
    }

    /// An agent's message on `reply.account_id`'s channel, answering the latest incoming one.
    pub(crate) fn reply(&mut self, thread_id: u64, reply: Reply, stamp: Stamp) -> Option<Value> {
        let account = self.account(reply.account_id)?.clone();
        let agent_name = self.actor(&reply.agent).and_then(|a| a.name.clone());
        let email = account.channel_id == EMAIL_CHANNEL;
        let in_reply_to = self.thread(thread_id)?.latest_incoming_id();
        let said = Said {
            direction: Direction::Outgoing,
            text: reply.text,
            rich_text: reply.rich_text,
            subject: reply.subject,
            senders: vec![party(
                Some(&reply.agent),
                agent_name.as_deref(),
                account.identifier.as_ref(),
                email.then_some(("senderField", "FROM")),
            )],
            recipients: reply.recipients,
            channel_id: account.channel_id,
            channel_account_id: account.id,
            in_reply_to,
            attachments: reply.attachments,
        };
        self.append(thread_id, &reply.agent, reply.via_api, Body::Message(said), stamp)
    }

    pub(crate) fn comment(&mut self, thread_id: u64, comment: Comment, stamp: Stamp) -> Option<Value> {
        let body = Body::Comment {
            text: comment.text,
            rich_text: comment.rich_text,
            attachments: comment.attachments,
        };
        self.append(thread_id, &comment.by, comment.via_api, body, stamp)
    }

    /// Opens or closes a thread, noting the change in its history; `false` if nothing changed.
    pub(crate) fn set_status(&mut self, thread_id: u64, status: Status, by: &str, stamp: Stamp) -> bool {
        let seq = self.next_seq();
        self.thread_mut(thread_id)
            .is_some_and(|t| t.set_status(status, by, stamp.id, seq, stamp.at))
    }
}

/// `/hubspot`: the caller adds the not-simulated fallback for other paths.
pub(crate) fn router() -> Router<Sandbox> {
    const BASE: &str = "/conversations/v3/conversations";
    Router::new()
        .route(&format!("{BASE}/threads"), get(threads::list))
        .route(
            &format!("{BASE}/threads/{{thread_id}}"),
            get(threads::get).patch(threads::update).delete(threads::archive),
        )
        .route(
            &format!("{BASE}/threads/{{thread_id}}/messages"),
            get(messages::list).post(messages::create),
        )
        .route(
            &format!("{BASE}/threads/{{thread_id}}/messages/{{message_id}}"),
            get(messages::get),
        )
        .route(&format!("{BASE}/inboxes"), get(catalog::inboxes))
        .route(&format!("{BASE}/inboxes/{{id}}"), get(catalog::inbox))
        .route(&format!("{BASE}/channels"), get(catalog::channels))
        .route(&format!("{BASE}/channels/{{id}}"), get(catalog::channel))
        .route(&format!("{BASE}/channel-accounts"), get(catalog::channel_accounts))
        .route(
            &format!("{BASE}/channel-accounts/{{id}}"),
            get(catalog::channel_account),
        )
        .route(&format!("{BASE}/actors/{{actor_id}}"), get(catalog::actor))
        .route(&format!("{BASE}/actors/batch/read"), post(catalog::actors_batch))
}

/// `/_sandbox/hubspot`: `POST /threads/{id}/incoming` makes the thread's contact write.
pub(crate) fn control_router() -> Router<Sandbox> {
    Router::new().route("/threads/{thread_id}/incoming", post(control::incoming))
}

/// 401 unless the request carries the configured private app token.
fn authorize(sandbox: &Sandbox, headers: &HeaderMap) -> HubResult<()> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match token {
        Some(t) if !t.is_empty() && crate::secret::matches(t, &sandbox.config().hubspot_token) => Ok(()),
        _ => Err(HubError::unauthenticated()),
    }
}

/// Path ids are int64 in the spec; anything else names no object.
fn numeric_id(what: &str, raw: &str) -> HubResult<u64> {
    raw.parse().map_err(|_| HubError::not_found(what, raw))
}

/// `http://<host>`, for paging links.
fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}
