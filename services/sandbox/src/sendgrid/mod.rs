//! SendGrid: v3 Mail Send under `/sendgrid` (so sendgrid-python's `host` is
//! `http://<sandbox>/sendgrid`; the client appends `/v3`), following external-apis.md §2. Bearer
//! API-key auth, the mail/send body checked field by field ([`mail`]), SendGrid's error arrays
//! ([`errors`]), rate-limit headers on every response with a 429 a test can switch on
//! ([`rate_limit`]), and the Email Activity lookup (`GET /v3/messages?query=...`, [`activity`]) that
//! resolves a send whose answer was lost. Accepted mail lands in the sandbox inbox
//! (`/_sandbox/inbox`); nothing is delivered anywhere.

use std::sync::{Mutex, MutexGuard};

use axum::{
    body::Bytes,
    extract::{DefaultBodyLimit, RawQuery, State as AxumState},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde_json::{json, Value};

use crate::{
    inbox::{Channel, Delivery},
    urlencoded, Sandbox,
};

mod activity;
mod errors;
mod mail;
mod rate_limit;

use activity::Sent;
use errors::{FieldError, SendGridError};
use mail::Mail;
use rate_limit::{RateLimit, Verdict};

/// SendGrid accepts requests up to 30 MB (attachments are base64 in the JSON body).
const MAX_BODY_BYTES: usize = 30 * 1024 * 1024;

/// SendGrid's part of the sandbox handle: what was sent, and the rate-limit window.
#[derive(Debug, Default)]
pub(crate) struct Handle {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// One entry per recipient, oldest first.
    sent: Vec<Sent>,
    rate: RateLimit,
}

impl Handle {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets every mail and any simulated rate limit.
    pub(crate) fn reset(&self) {
        *self.state() = State::default();
    }
}

/// `/sendgrid`: the caller adds the not-simulated fallback for other paths.
pub(crate) fn router() -> Router<Sandbox> {
    Router::new()
        .route("/v3/mail/send", post(send))
        .route("/v3/messages", get(messages))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// `/_sandbox/sendgrid`: `GET|PUT /rate-limit`.
pub(crate) fn control_router() -> Router<Sandbox> {
    Router::new().route("/rate-limit", get(get_rate_limit).put(put_rate_limit))
}

/// Adds the rate-limit headers to a response the fault layer made up for a `/sendgrid` route.
pub(crate) fn stamp(sandbox: &Sandbox, response: &mut Response) {
    let headers = sandbox.sendgrid().state().rate.peek(Utc::now().timestamp());
    add_rate_headers(response, headers);
}

fn add_rate_headers(response: &mut Response, rl: rate_limit::Headers) {
    let h = response.headers_mut();
    h.insert("x-ratelimit-limit", HeaderValue::from(rl.limit));
    h.insert("x-ratelimit-remaining", HeaderValue::from(rl.remaining));
    h.insert("x-ratelimit-reset", HeaderValue::from(rl.reset));
}

fn failure(e: &SendGridError, rl: rate_limit::Headers) -> Response {
    let mut response = (e.status, Json(e.body())).into_response();
    add_rate_headers(&mut response, rl);
    if let Some(after) = e.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(after));
    }
    response
}

fn authorized(sandbox: &Sandbox, headers: &HeaderMap) -> bool {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim());
    presented.is_some_and(|key| !key.is_empty() && crate::secret::matches(key, &sandbox.config().sendgrid_api_key))
}

/// Authenticates and counts the request against the rate limit; a 401 or 429 (with the
/// headers to send it with) if it may not proceed.
fn admit(
    sandbox: &Sandbox,
    headers: &HeaderMap,
    now: i64,
) -> Result<rate_limit::Headers, (SendGridError, rate_limit::Headers)> {
    let handle = sandbox.sendgrid();
    if !authorized(sandbox, headers) {
        let rl = handle.state().rate.peek(now);
        return Err((SendGridError::unauthorized(), rl));
    }
    let verdict = handle.state().rate.take(now);
    match verdict {
        Verdict::Allowed(rl) => Ok(rl),
        Verdict::Limited(rl, after) => Err((SendGridError::too_many_requests(after), rl)),
    }
}

/// `POST /v3/mail/send`: 202 with an empty body and `X-Message-Id`.
async fn send(AxumState(sandbox): AxumState<Sandbox>, headers: HeaderMap, body: Bytes) -> Response {
    let now = Utc::now();
    let rl = match admit(&sandbox, &headers, now.timestamp()) {
        Ok(rl) => rl,
        Err((e, rl)) => return failure(&e, rl),
    };
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        return failure(&SendGridError::bad_request(), rl);
    };
    let mail = match mail::validate(&value) {
        Ok(mail) => mail,
        Err(errors) => return failure(&SendGridError::invalid(errors), rl),
    };
    if mail.sandbox_mode {
        // SendGrid's own sandbox mode: validated, acknowledged with 200, never sent.
        let mut response = StatusCode::OK.into_response();
        add_rate_headers(&mut response, rl);
        return response;
    }

    let message_id = new_message_id();
    let (sent, deliveries) = copies(&mail, &message_id, now);
    let recipients = sent.len();
    sandbox.sendgrid().state().sent.extend(sent);
    sandbox.inbox().push(deliveries);
    // Only the count: recipient addresses stay out of the ledger.
    sandbox.record_effect(
        "sendgrid",
        "mail.sent",
        Some(&message_id),
        Some(&format!("{recipients} recipient(s)")),
    );

    let mut response = StatusCode::ACCEPTED.into_response();
    add_rate_headers(&mut response, rl);
    if let Ok(v) = HeaderValue::from_str(&message_id) {
        response.headers_mut().insert("x-message-id", v);
    }
    response
}

/// 22 characters of URL-safe base64, the shape of SendGrid's ids.
fn new_message_id() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Each recipient's copy: what the Activity API reports and what the inbox shows. Legacy
/// `substitutions` are applied to the subject and bodies as SendGrid would.
fn copies(mail: &Mail, message_id: &str, now: DateTime<Utc>) -> (Vec<Sent>, Vec<Delivery>) {
    let from = mail.from.as_ref().map(|a| a.email.clone()).unwrap_or_default();
    let mut sent = Vec::new();
    let mut deliveries = Vec::new();
    for p in &mail.personalizations {
        let substitute = |s: &Option<String>| {
            s.as_ref().map(|s| {
                p.substitutions
                    .iter()
                    .fold(s.clone(), |acc, (key, value)| acc.replace(key, value))
            })
        };
        // A personalization's subject overrides the request's.
        let subject = substitute(if p.subject.is_some() { &p.subject } else { &mail.subject });
        let text = substitute(&mail.text);
        let html = substitute(&mail.html);
        let mut custom_args = mail.custom_args.clone();
        custom_args.extend(p.custom_args.clone());
        for recipient in p.recipients() {
            let msg_id = format!("{message_id}.{}", sent.len());
            sent.push(Sent {
                msg_id: msg_id.clone(),
                from_email: from.clone(),
                to_email: recipient.email.clone(),
                subject: subject.clone(),
                custom_args: custom_args.clone(),
                at: now,
            });
            deliveries.push(Delivery {
                id: msg_id,
                channel: Channel::Email,
                to: recipient.email.clone(),
                from: Some(from.clone()),
                subject: subject.clone(),
                text: text.clone(),
                html: html.clone(),
                template_id: mail.template_id.clone(),
                template_data: p.dynamic_template_data.clone(),
                sent_at: now,
            });
        }
    }
    (sent, deliveries)
}

/// `GET /v3/messages?query=...&limit=N`: `{"messages": [...]}`, newest first.
async fn messages(AxumState(sandbox): AxumState<Sandbox>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let now = Utc::now();
    let rl = match admit(&sandbox, &headers, now.timestamp()) {
        Ok(rl) => rl,
        Err((e, rl)) => return failure(&e, rl),
    };
    let pairs = urlencoded::pairs(query.as_deref().unwrap_or(""));
    let invalid =
        |field: &str, message: String| failure(&SendGridError::invalid(vec![FieldError::new(field, message)]), rl);
    let limit = match urlencoded::first(&pairs, "limit").map(str::parse::<usize>) {
        None => 10,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        Some(_) => return invalid("limit", "limit must be an integer between 1 and 1000".into()),
    };
    let clauses = match activity::parse(urlencoded::first(&pairs, "query").unwrap_or("")) {
        Ok(c) => c,
        Err(e) => return invalid("query", format!("invalid query: {e}")),
    };
    let found: Vec<Value> = sandbox
        .sendgrid()
        .state()
        .sent
        .iter()
        .rev()
        .filter(|s| activity::matches(&clauses, s))
        .take(limit)
        .map(Sent::json)
        .collect();
    let mut response = Json(json!({ "messages": found })).into_response();
    add_rate_headers(&mut response, rl);
    response
}

async fn get_rate_limit(AxumState(sandbox): AxumState<Sandbox>) -> Json<Value> {
    Json(sandbox.sendgrid().state().rate.describe(Utc::now().timestamp()))
}

/// `PUT /_sandbox/sendgrid/rate-limit {"remaining": N | null, "reset_in": seconds?}`: after N
/// more requests, SendGrid answers 429 until the budget is cleared (`null`) or, with `reset_in`,
/// until that many seconds have passed.
async fn put_rate_limit(AxumState(sandbox): AxumState<Sandbox>, Json(body): Json<Value>) -> Response {
    let bad = |m: &str| (StatusCode::BAD_REQUEST, Json(json!({ "error": { "message": m } }))).into_response();
    let remaining = match body.get("remaining") {
        Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) => Some(n),
            None => return bad("remaining must be a non-negative integer or null"),
        },
        None => return bad("give remaining: a number of requests, or null to lift the limit"),
    };
    let reset_in = match body.get("reset_in") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64().filter(|s| (1..=86_400).contains(s)) {
            Some(s) => Some(s),
            None => return bad("reset_in must be a number of seconds between 1 and 86400"),
        },
    };
    let now = Utc::now().timestamp();
    let mut state = sandbox.sendgrid().state();
    state.rate.set(remaining, reset_in, now);
    Json(state.rate.describe(now)).into_response()
}
