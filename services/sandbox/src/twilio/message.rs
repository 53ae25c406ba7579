//! The Message resource as Twilio renders it (external-apis.md §3): RFC 2822 dates, counts as
//! strings, `uri` and `subresource_uris` relative to the API host.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::API_VERSION;

#[derive(Clone, Debug)]
pub(crate) struct Message {
    pub(crate) sid: String,
    pub(crate) to: String,
    /// `None` until a Messaging Service picks a sender.
    pub(crate) from: Option<String>,
    pub(crate) messaging_service_sid: Option<String>,
    pub(crate) body: String,
    pub(crate) num_media: usize,
    pub(crate) num_segments: usize,
    /// `accepted` (through a Messaging Service) or `queued`, then `sent`, then `delivered`.
    pub(crate) status: &'static str,
    pub(crate) date_created: DateTime<Utc>,
    pub(crate) date_updated: DateTime<Utc>,
    pub(crate) date_sent: Option<DateTime<Utc>>,
    pub(crate) price: Option<String>,
    pub(crate) status_callback: Option<String>,
}

impl Message {
    /// The time list filters compare: when it was sent, or created while still waiting.
    pub(crate) fn sent_or_created(&self) -> DateTime<Utc> {
        self.date_sent.unwrap_or(self.date_created)
    }

    pub(crate) fn json(&self, account_sid: &str) -> Value {
        let uri = format!("/{API_VERSION}/Accounts/{account_sid}/Messages/{}", self.sid);
        json!({
            "account_sid": account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": self.date_created.to_rfc2822(),
            "date_sent": self.date_sent.map(|d| d.to_rfc2822()),
            "date_updated": self.date_updated.to_rfc2822(),
            "direction": "outbound-api",
            "error_code": null,
            "error_message": null,
            "from": self.from,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": self.num_media.to_string(),
            "num_segments": self.num_segments.to_string(),
            "price": self.price,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": { "media": format!("{uri}/Media.json") },
            "to": self.to,
            "uri": format!("{uri}.json"),
        })
    }
}
