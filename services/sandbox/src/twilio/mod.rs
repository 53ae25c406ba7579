//! Twilio Programmable Messaging (the 2010-04-01 API) under `/twilio`, so a client's base URL is
//! `http://<sandbox>/twilio` (twilio-python: `client.api.base_url`), following external-apis.md §3:
//! HTTP Basic `AccountSid:AuthToken`, form-encoded creates, Twilio's error codes ([`errors`]), the
//! magic numbers of its test credentials ([`numbers`]), fetch and filtered, paged lists
//! ([`list`]), and signed status callbacks as each message goes `sent` then `delivered`
//! ([`callbacks`]). Sent messages land in the sandbox inbox (`/_sandbox/inbox`).

use std::{
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State as AxumState},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use base64::Engine;
use chrono::Utc;
use serde_json::Value;

use crate::{
    inbox::{Channel, Delivery},
    urlencoded, Sandbox,
};

mod callbacks;
mod errors;
mod list;
mod message;
mod numbers;

pub use callbacks::signature;
use errors::{TwilioError, TwilioResult};
use message::Message;

/// The API version in every path, `uri` and callback.
pub const API_VERSION: &str = "2010-04-01";

const MAX_BODY_CHARS: usize = 1600;
const MAX_MEDIA: usize = 10;
const MAX_CALLBACK_URL: usize = 4000;

/// Twilio's part of the sandbox handle: the messages sent, oldest first, and the client that
/// makes status callbacks.
#[derive(Debug)]
pub(crate) struct Handle {
    state: Mutex<State>,
    pub(crate) http: reqwest::Client,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) messages: Vec<Message>,
}

impl Default for Handle {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        }
    }
}

impl Handle {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets every message; callbacks still on their way stop.
    pub(crate) fn reset(&self) {
        *self.state() = State::default();
    }
}

/// `/twilio`: the caller adds the not-simulated fallback for other paths.
pub(crate) fn router() -> Router<Sandbox> {
    Router::new()
        .route(
            &format!("/{API_VERSION}/Accounts/{{account_sid}}/Messages.json"),
            get(list).post(create),
        )
        .route(
            &format!("/{API_VERSION}/Accounts/{{account_sid}}/Messages/{{message}}"),
            get(fetch),
        )
}

/// A JSON answer with the headers Twilio puts on every response.
fn reply(result: TwilioResult<(StatusCode, Value)>) -> Response {
    let mut response = match result {
        Ok((status, body)) => (status, Json(body)).into_response(),
        Err(e) => e.into_response(),
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("RQ{}", uuid::Uuid::new_v4().simple())) {
        h.insert("twilio-request-id", v);
    }
    response
}

/// Basic `AccountSid:AuthToken` for the configured account, which must also be the path's.
fn authenticate(sandbox: &Sandbox, headers: &HeaderMap, path_sid: &str) -> TwilioResult<()> {
    let config = sandbox.config();
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, b64)| base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok());
    let expected = format!("{}:{}", config.twilio_account_sid, config.twilio_auth_token);
    match presented {
        Some(p) if crate::secret::matches(&p, &expected) && path_sid == config.twilio_account_sid => Ok(()),
        _ => Err(TwilioError::authenticate()),
    }
}

/// `POST .../Messages.json`: 201 with the message, `queued` (or `accepted` through a Messaging
/// Service).
async fn create(
    AxumState(sandbox): AxumState<Sandbox>,
    Path(account_sid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    reply(create_message(&sandbox, &account_sid, &headers, &body))
}

fn create_message(
    sandbox: &Sandbox,
    account_sid: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> TwilioResult<(StatusCode, Value)> {
    authenticate(sandbox, headers, account_sid)?;
    let params = urlencoded::pairs(&String::from_utf8_lossy(body));
    let field = |key: &str| urlencoded::first(&params, key).map(str::trim).filter(|v| !v.is_empty());
    let to = field("To").ok_or_else(|| TwilioError::invalid(21604, "A 'To' phone number is required."))?;
    let from = field("From");
    let service = field("MessagingServiceSid");
    if from.is_none() && service.is_none() {
        return Err(TwilioError::invalid(21603, "A 'From' phone number is required."));
    }
    let text = urlencoded::first(&params, "Body").unwrap_or("");
    let media = urlencoded::all(&params, "MediaUrl");
    if text.is_empty() && media.is_empty() {
        return Err(TwilioError::invalid(21602, "Message body is required."));
    }
    if text.chars().count() > MAX_BODY_CHARS {
        return Err(TwilioError::invalid(
            21617,
            "The concatenated message body exceeds the 1600 character limit.",
        ));
    }
    if media.len() > MAX_MEDIA {
        return Err(TwilioError::invalid(
            21623,
            "Too many media URLs: at most 10 are allowed.",
        ));
    }
    let status_callback = field("StatusCallback").map(str::to_owned);
    if let Some(url) = &status_callback {
        if !valid_callback(url) {
            return Err(TwilioError::invalid(
                21609,
                format!("The StatusCallback URL {url} is not a valid URL."),
            ));
        }
    }
    if let Some(sid) = service {
        if !(sid.len() == 34 && sid.starts_with("MG") && sid[2..].bytes().all(|b| b.is_ascii_hexdigit())) {
            return Err(TwilioError::invalid(
                21701,
                format!("The Messaging Service Sid {sid} is invalid."),
            ));
        }
    }
    if let Some(from) = from {
        numbers::check_from(from, &sandbox.config().twilio_from_numbers)?;
        if from == to {
            return Err(TwilioError::invalid(
                21266,
                format!("'To' and 'From' number cannot be the same: {to}"),
            ));
        }
    }
    numbers::check_to(to, from.unwrap_or("the Messaging Service's sender"))?;

    let now = Utc::now();
    let message = Message {
        sid: format!(
            "{}{}",
            if media.is_empty() { "SM" } else { "MM" },
            uuid::Uuid::new_v4().simple()
        ),
        to: to.to_owned(),
        from: from.map(str::to_owned),
        messaging_service_sid: service.map(str::to_owned),
        body: text.to_owned(),
        num_media: media.len(),
        num_segments: numbers::segments(text),
        status: if service.is_some() { "accepted" } else { "queued" },
        date_created: now,
        date_updated: now,
        date_sent: None,
        price: None,
        status_callback,
    };
    let rendered = message.json(account_sid);
    let sid = message.sid.clone();
    let segments = message.num_segments;
    sandbox.inbox().push([Delivery {
        id: sid.clone(),
        channel: Channel::Sms,
        to: message.to.clone(),
        from: message.from.clone().or_else(|| message.messaging_service_sid.clone()),
        subject: None,
        text: Some(message.body.clone()),
        html: None,
        template_id: None,
        template_data: None,
        sent_at: now,
    }]);
    sandbox.twilio().state().messages.push(message);
    // The segment count only: numbers and text stay out of the ledger.
    sandbox.record_effect(
        "twilio",
        "sms.sent",
        Some(&sid),
        Some(&format!("{segments} segment(s)")),
    );
    callbacks::spawn(sandbox.clone(), sid);
    Ok((StatusCode::CREATED, rendered))
}

/// An absolute http(s) URL of at most 4000 characters whose host has no underscore (Twilio's
/// rules for 21609).
fn valid_callback(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")) else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    url.len() <= MAX_CALLBACK_URL && !host.is_empty() && !host.contains('_') && !url.contains(char::is_whitespace)
}

/// `GET .../Messages/{Sid}.json`.
async fn fetch(
    AxumState(sandbox): AxumState<Sandbox>,
    Path((account_sid, message)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let result = authenticate(&sandbox, &headers, &account_sid).and_then(|()| {
        let path = format!("/{API_VERSION}/Accounts/{account_sid}/Messages/{message}");
        let sid = message
            .strip_suffix(".json")
            .ok_or_else(|| TwilioError::not_found(&path))?;
        let state = sandbox.twilio().state();
        let m = state
            .messages
            .iter()
            .find(|m| m.sid == sid)
            .ok_or_else(|| TwilioError::not_found(&path))?;
        Ok((StatusCode::OK, m.json(&account_sid)))
    });
    reply(result)
}

/// `GET .../Messages.json?To=&From=&DateSent>=&PageSize=`.
async fn list(
    AxumState(sandbox): AxumState<Sandbox>,
    Path(account_sid): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let result = authenticate(&sandbox, &headers, &account_sid).and_then(|()| {
        let q = list::ListQuery::parse(query.as_deref().unwrap_or(""))?;
        let base = format!("/{API_VERSION}/Accounts/{account_sid}/Messages.json");
        let state = sandbox.twilio().state();
        Ok((StatusCode::OK, q.page(&state.messages, &account_sid, &base)))
    });
    reply(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_urls_follow_twilios_rules() {
        assert!(valid_callback("http://127.0.0.1:9000/twilio/status?x=1"));
        assert!(valid_callback("https://example.test/cb"));
        assert!(!valid_callback("ftp://example.test/cb"));
        assert!(!valid_callback("https://my_host.test/cb"));
        assert!(!valid_callback("https:///cb"));
        assert!(!valid_callback(&format!("https://example.test/{}", "a".repeat(4000))));
    }
}
