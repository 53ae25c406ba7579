//! `/_sandbox/inbox`: what the patients "received". Every email SendGrid accepted (one entry per
//! recipient), every SMS Twilio accepted and every conversation reply posted to HubSpot, newest
//! first: an HTML page for someone running the mesh locally, and `/_sandbox/inbox.json` for tests
//! that read one-time codes and links. Reset empties it.

use std::sync::{Mutex, MutexGuard};

use axum::{
    extract::{Query, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::Sandbox;

/// How a delivery reached its recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Channel {
    Email,
    Sms,
    /// An outgoing message posted to a HubSpot conversation thread.
    Hubspot,
}

impl Channel {
    fn name(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Hubspot => "hubspot",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Channel::Email, Channel::Sms, Channel::Hubspot]
            .into_iter()
            .find(|c| c.name() == s)
    }
}

/// One message as one recipient got it.
#[derive(Clone, Debug)]
pub(crate) struct Delivery {
    /// The vendor's id: a per-recipient SendGrid message id, a Twilio `SM...`, a HubSpot message id.
    pub(crate) id: String,
    pub(crate) channel: Channel,
    pub(crate) to: String,
    pub(crate) from: Option<String>,
    pub(crate) subject: Option<String>,
    pub(crate) text: Option<String>,
    pub(crate) html: Option<String>,
    /// SendGrid dynamic templates: the template and the data it would be rendered with (the
    /// sandbox has no templates to render).
    pub(crate) template_id: Option<String>,
    pub(crate) template_data: Option<Value>,
    pub(crate) sent_at: DateTime<Utc>,
}

impl Delivery {
    pub(crate) fn json(&self) -> Value {
        json!({
            "id": self.id,
            "channel": self.channel.name(),
            "to": self.to,
            "from": self.from,
            "subject": self.subject,
            "text": self.text,
            "html": self.html,
            "template_id": self.template_id,
            "template_data": self.template_data,
            "sent_at": self.sent_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        })
    }
}

/// The deliveries, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    deliveries: Mutex<Vec<Delivery>>,
}

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, Vec<Delivery>> {
        self.deliveries.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn push(&self, deliveries: impl IntoIterator<Item = Delivery>) {
        self.lock().extend(deliveries);
    }

    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    /// Newest first, filtered, at most `limit`.
    fn list(&self, filter: &Filter) -> Vec<Delivery> {
        self.lock()
            .iter()
            .rev()
            .filter(|d| filter.channel.is_none_or(|c| d.channel == c))
            .filter(|d| {
                filter
                    .to
                    .as_deref()
                    .is_none_or(|to| d.to.eq_ignore_ascii_case(to.trim()))
            })
            .take(filter.limit)
            .cloned()
            .collect()
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct InboxQuery {
    to: Option<String>,
    channel: Option<String>,
    limit: Option<usize>,
}

struct Filter {
    to: Option<String>,
    channel: Option<Channel>,
    limit: usize,
}

const DEFAULT_LIMIT: usize = 50;

fn bad_query(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": { "message": message } })),
    )
        .into_response()
}
const MAX_LIMIT: usize = 1000;

impl InboxQuery {
    /// The filter, or why the query is wrong.
    fn filter(self, default_limit: usize) -> Result<Filter, &'static str> {
        let channel = match self.channel.as_deref().filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => Some(Channel::parse(c).ok_or("channel must be email, sms or hubspot")?),
        };
        let limit = self.limit.unwrap_or(default_limit);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err("limit must be between 1 and 1000");
        }
        Ok(Filter {
            to: self.to.filter(|t| !t.trim().is_empty()),
            channel,
            limit,
        })
    }
}

/// `GET /_sandbox/inbox.json?to=&channel=email|sms|hubspot&limit=N`: `{"messages": [...]}`.
pub(crate) async fn json(State(sandbox): State<Sandbox>, Query(q): Query<InboxQuery>) -> Response {
    let filter = match q.filter(DEFAULT_LIMIT) {
        Ok(f) => f,
        Err(message) => return bad_query(message),
    };
    let messages: Vec<Value> = sandbox.inbox().list(&filter).iter().map(Delivery::json).collect();
    Json(json!({ "messages": messages })).into_response()
}

/// `GET /_sandbox/inbox`: the same list as a page with no external assets; every value is escaped
/// and HTML bodies are shown in a sandboxed frame that cannot run scripts or load anything.
pub(crate) async fn page(State(sandbox): State<Sandbox>, Query(q): Query<InboxQuery>) -> Response {
    let filter = match q.filter(MAX_LIMIT) {
        Ok(f) => f,
        Err(message) => return bad_query(message),
    };
    let deliveries = sandbox.inbox().list(&filter);
    let mut response = render(&deliveries).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; img-src data:"),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#1d1d1f}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;vertical-align:top;padding:.4rem .6rem;\
border-bottom:1px solid #ddd}th{background:#f4f4f6}pre{white-space:pre-wrap;margin:.4rem 0;\
background:#fafafa;padding:.5rem}iframe{width:100%;height:24rem;border:1px solid #ccc;background:#fff}\
.ch{font-weight:600;text-transform:uppercase;font-size:12px}.muted{color:#777}";

fn render(deliveries: &[Delivery]) -> String {
    let mut rows = String::new();
    for d in deliveries {
        let summary = match (&d.subject, &d.text) {
            (Some(s), _) if !s.is_empty() => s.clone(),
            (_, Some(t)) => first_line(t),
            _ => d
                .template_id
                .as_ref()
                .map_or_else(String::new, |t| format!("template {t}")),
        };
        let mut body = String::new();
        if let Some(text) = &d.text {
            body.push_str(&format!("<pre>{}</pre>", escape(text)));
        }
        if let Some(html) = &d.html {
            body.push_str(&format!(
                "<details><summary>HTML</summary><iframe sandbox=\"\" title=\"HTML body\" srcdoc=\"{}\"></iframe>\
                 <details><summary>source</summary><pre>{}</pre></details></details>",
                escape(html),
                escape(html)
            ));
        }
        if let Some(template) = &d.template_id {
            let data = d.template_data.as_ref().map(|v| format!("{v:#}")).unwrap_or_default();
            body.push_str(&format!(
                "<p class=\"muted\">dynamic template {}</p><pre>{}</pre>",
                escape(template),
                escape(&data)
            ));
        }
        rows.push_str(&format!(
            "<tr><td>{}</td><td class=\"ch\">{}</td><td>{}</td><td>{}</td>\
             <td><details><summary>{}</summary>{body}<p class=\"muted\">id {}</p></details></td></tr>\n",
            escape(&d.sent_at.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
            d.channel.name(),
            escape(&d.to),
            escape(d.from.as_deref().unwrap_or("")),
            escape(if summary.is_empty() { "(no subject)" } else { &summary }),
            escape(&d.id),
        ));
    }
    if deliveries.is_empty() {
        rows.push_str("<tr><td colspan=\"5\" class=\"muted\">Nothing sent yet.</td></tr>\n");
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sandbox inbox</title>\
         <style>{STYLE}</style></head><body>\n<h1>Sandbox inbox</h1>\n<p>{} message(s) the sandbox \
         accepted (email through SendGrid, SMS through Twilio, replies posted to HubSpot conversations), \
         newest first. <a href=\"inbox\">Refresh</a> · <a href=\"inbox.json\">JSON</a></p>\n<table><thead><tr>\
         <th>Sent</th><th>Channel</th><th>To</th><th>From</th><th>Message</th></tr></thead><tbody>\n{rows}\
         </tbody></table>\n</body></html>\n",
        deliveries.len()
    )
}

fn first_line(text: &str) -> String {
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    if line.chars().count() > 80 {
        format!("{}…", line.chars().take(80).collect::<String>())
    } else {
        line.to_owned()
    }
}

/// Escapes text for HTML element content and double- or single-quoted attributes.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(subject: &str, html: &str) -> Delivery {
        Delivery {
            id: "m1".into(),
            channel: Channel::Email,
            to: "ada.example@example.test".into(),
            from: Some("care@example.test".into()),
            subject: Some(subject.into()),
            text: Some("Your code is 123456".into()),
            html: Some(html.into()),
            template_id: None,
            template_data: None,
            sent_at: Utc::now(),
        }
    }

    #[test]
    fn the_page_escapes_everything_it_shows() {
        let page = render(&[delivery("<script>alert(1)</script>", "<b onclick=\"x()\">hi</b>")]);
        assert!(!page.contains("<script>alert"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!page.contains("<b onclick"));
        assert!(page.contains("srcdoc=\"&lt;b onclick=&quot;x()&quot;&gt;hi&lt;/b&gt;\""));
    }

    #[test]
    fn the_summary_is_the_first_non_empty_line() {
        assert_eq!(first_line("\n  Hello\nworld"), "Hello");
        assert_eq!(first_line(&"x".repeat(100)).chars().count(), 81);
    }
}
