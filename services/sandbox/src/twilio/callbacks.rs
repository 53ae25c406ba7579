//! What happens after a send: the message moves to `sent`, then `delivered`, a moment apart, and
//! when it was created with a `StatusCallback` each change is POSTed there form-encoded
//! (`MessageSid`, `MessageStatus`, `SmsSid`, `SmsStatus`, `AccountSid`, `From`, `To`, `ApiVersion`,
//! `MessagingServiceSid`), signed with `X-Twilio-Signature` (external-apis.md §3). Delivery runs
//! on its own task; a receiver that fails or cannot be reached is only logged, as Twilio does not
//! retry status callbacks either.

use std::time::Duration;

use base64::Engine;
use chrono::Utc;
use hmac::{Hmac, Mac};
use http::header::{CONTENT_TYPE, USER_AGENT};
use sha1::Sha1;

use super::API_VERSION;
use crate::{urlencoded, Sandbox};

/// Time between one status and the next.
const STEP: Duration = Duration::from_millis(50);

/// base64(HMAC-SHA1(auth token, URL + each parameter's key and value, sorted by key)).
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    // HMAC takes keys of any length.
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC accepts any key length");
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Starts message `sid` on its way to `delivered`.
pub(crate) fn spawn(sandbox: Sandbox, sid: String) {
    tokio::spawn(async move {
        for status in ["sent", "delivered"] {
            tokio::time::sleep(STEP).await;
            // Gone after a reset: nothing more to do.
            let Some(callback) = advance(&sandbox, &sid, status) else {
                return;
            };
            if let Some((url, params)) = callback {
                post(&sandbox, &sid, status, &url, &params).await;
            }
        }
    });
}

type Callback = Option<(String, Vec<(String, String)>)>;

/// Moves the message to `status`; returns the callback to make, if one was asked for.
fn advance(sandbox: &Sandbox, sid: &str, status: &'static str) -> Option<Callback> {
    let account_sid = sandbox.config().twilio_account_sid.clone();
    let sender = sandbox
        .config()
        .twilio_from_numbers
        .first()
        .cloned()
        .unwrap_or_else(|| super::numbers::MAGIC_FROM_OK.to_owned());
    let mut state = sandbox.twilio().state();
    let m = state.messages.iter_mut().find(|m| m.sid == sid)?;
    let now = Utc::now();
    m.status = status;
    m.date_updated = now;
    if status == "sent" {
        m.date_sent = Some(now);
        // A Messaging Service picks its sender when it sends.
        m.from.get_or_insert(sender);
        // Twilio's US rate per segment, as a negative charge.
        let price = 0.0079 * m.num_segments as f64;
        m.price = Some(format!("-{price:.5}"));
    }
    let Some(url) = m.status_callback.clone() else {
        return Some(None);
    };
    let mut params = vec![
        ("AccountSid".to_owned(), account_sid),
        ("ApiVersion".to_owned(), API_VERSION.to_owned()),
        ("From".to_owned(), m.from.clone().unwrap_or_default()),
        ("MessageSid".to_owned(), m.sid.clone()),
        ("MessageStatus".to_owned(), status.to_owned()),
        ("SmsSid".to_owned(), m.sid.clone()),
        ("SmsStatus".to_owned(), status.to_owned()),
        ("To".to_owned(), m.to.clone()),
    ];
    if let Some(mss) = &m.messaging_service_sid {
        params.push(("MessagingServiceSid".to_owned(), mss.clone()));
    }
    Some(Some((url, params)))
}

async fn post(sandbox: &Sandbox, sid: &str, status: &str, url: &str, params: &[(String, String)]) {
    let signature = signature(&sandbox.config().twilio_auth_token, url, params);
    let result = sandbox
        .twilio()
        .http
        .post(url)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded; charset=utf-8")
        .header(USER_AGENT, "TwilioProxy/1.1")
        .header("X-Twilio-Signature", signature)
        .header("I-Twilio-Idempotency-Token", uuid::Uuid::new_v4().to_string())
        .body(urlencoded::join(params))
        .send()
        .await;
    // Ids and statuses only: the URL and the numbers stay out of the log.
    match result {
        Ok(resp) if resp.status().is_success() => {}
        Ok(resp) => tracing::warn!(
            message_sid = %sid,
            message_status = %status,
            http_status = resp.status().as_u16(),
            "twilio status callback was refused"
        ),
        Err(e) => tracing::warn!(
            message_sid = %sid,
            message_status = %status,
            error_kind = if e.is_timeout() { "timeout" } else if e.is_connect() { "connect" } else { "request" },
            "twilio status callback failed"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_twilios_scheme() {
        // Twilio's documented example (twilio.com/docs/usage/webhooks/webhooks-security).
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(
            signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &params),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }
}
