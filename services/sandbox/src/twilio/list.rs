//! `GET .../Messages.json`: filters `To`, `From`, `DateSent` (that UTC day), `DateSent>` (on or
//! after), `DateSent<` (on or before; twilio-python sends `DateSent<`/`DateSent>`, the docs write
//! `DateSent<=`/`DateSent>=`, which is the same bytes), newest first, in pages of `PageSize`
//! (default 50, at most 1000) with Twilio's envelope and `PageToken` cursors.

use chrono::{DateTime, Days, NaiveDate, NaiveTime, Utc};
use serde_json::{json, Value};

use super::{
    errors::{TwilioError, TwilioResult},
    message::Message,
};
use crate::urlencoded;

const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 1000;

#[derive(Debug, Default)]
pub(crate) struct ListQuery {
    to: Option<String>,
    from: Option<String>,
    /// Inclusive bounds on the send time.
    after: Option<DateTime<Utc>>,
    before: Option<DateTime<Utc>>,
    page_size: usize,
    page: usize,
    page_token: Option<String>,
    /// The filters as given, repeated in paging links.
    filters: Vec<(String, String)>,
}

/// A date (`2024-05-01`, the whole UTC day) or a date-time (`2024-05-01T12:00:00Z`, that instant),
/// as the first and last instants it covers.
fn day_or_instant(key: &str, value: &str) -> TwilioResult<(DateTime<Utc>, DateTime<Utc>)> {
    if let Ok(day) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        let start = day.and_time(NaiveTime::MIN).and_utc();
        let end = start
            .checked_add_days(Days::new(1))
            .map_or(start, |next| next - chrono::Duration::nanoseconds(1));
        return Ok((start, end));
    }
    match DateTime::parse_from_rfc3339(value) {
        Ok(t) => Ok((t.to_utc(), t.to_utc())),
        Err(_) => Err(TwilioError::invalid(
            20001,
            format!("Invalid {key}: '{value}' is not a date (YYYY-MM-DD) or an ISO 8601 date-time"),
        )),
    }
}

impl ListQuery {
    pub(crate) fn parse(query: &str) -> TwilioResult<Self> {
        let mut q = ListQuery {
            page_size: DEFAULT_PAGE_SIZE,
            ..Self::default()
        };
        for (key, value) in urlencoded::pairs(query) {
            // `DateSent>=2024-01-01` arrives as key `DateSent>`, value `2024-01-01`.
            match key.as_str() {
                "To" => q.to = Some(value.clone()),
                "From" => q.from = Some(value.clone()),
                "DateSent" => {
                    let (start, end) = day_or_instant(&key, &value)?;
                    q.after = Some(start);
                    q.before = Some(end);
                }
                "DateSent>" => q.after = Some(day_or_instant(&key, &value)?.0),
                "DateSent<" => q.before = Some(day_or_instant(&key, &value)?.1),
                "PageSize" => {
                    q.page_size = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
                        .ok_or_else(|| TwilioError::invalid(20001, "PageSize must be between 1 and 1000"))?;
                    continue;
                }
                "Page" => {
                    q.page = value
                        .parse()
                        .map_err(|_| TwilioError::invalid(20001, "Page must be a non-negative integer"))?;
                    continue;
                }
                "PageToken" => {
                    q.page_token = Some(value);
                    continue;
                }
                _ => continue,
            }
            q.filters.push((key, value));
        }
        Ok(q)
    }

    fn keeps(&self, m: &Message) -> bool {
        let at = m.sent_or_created();
        self.to.as_ref().is_none_or(|to| &m.to == to)
            && self.from.as_ref().is_none_or(|from| m.from.as_ref() == Some(from))
            && self.after.is_none_or(|after| at >= after)
            && self.before.is_none_or(|before| at <= before)
    }

    fn uri(&self, base: &str, page: usize, token: Option<String>) -> String {
        let mut params = self.filters.clone();
        params.push(("PageSize".into(), self.page_size.to_string()));
        params.push(("Page".into(), page.to_string()));
        if let Some(token) = token {
            params.push(("PageToken".into(), token));
        }
        format!("{base}?{}", urlencoded::join(&params))
    }

    /// One page of `messages` (oldest first as stored), rendered in Twilio's envelope.
    pub(crate) fn page(&self, messages: &[Message], account_sid: &str, base: &str) -> Value {
        let matching: Vec<&Message> = messages.iter().rev().filter(|m| self.keeps(m)).collect();
        // `PA<sid>` resumes after that message, so sends between pages do not shift them.
        let resume = self
            .page_token
            .as_deref()
            .and_then(|t| t.strip_prefix("PA"))
            .and_then(|sid| matching.iter().position(|m| m.sid == sid))
            .map(|i| i + 1);
        let start = resume
            .unwrap_or(self.page.saturating_mul(self.page_size))
            .min(matching.len());
        let items = &matching[start..(start + self.page_size).min(matching.len())];
        let next = (start + items.len() < matching.len())
            .then(|| {
                items
                    .last()
                    .map(|m| self.uri(base, self.page + 1, Some(format!("PA{}", m.sid))))
            })
            .flatten();
        let previous = (self.page > 0).then(|| self.uri(base, self.page - 1, None));
        json!({
            "messages": items.iter().map(|m| m.json(account_sid)).collect::<Vec<_>>(),
            "end": start + items.len().saturating_sub(1),
            "first_page_uri": self.uri(base, 0, None),
            "next_page_uri": next,
            "page": self.page,
            "page_size": self.page_size,
            "previous_page_uri": previous,
            "start": start,
            "uri": self.uri(base, self.page, self.page_token.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_cover_the_whole_day_and_datetimes_the_instant() {
        let q = ListQuery::parse("DateSent%3E=2024-05-01&DateSent<=2024-05-02T10:00:00Z&PageSize=2").unwrap();
        assert_eq!(q.after.unwrap().to_rfc3339(), "2024-05-01T00:00:00+00:00");
        assert_eq!(q.before.unwrap().to_rfc3339(), "2024-05-02T10:00:00+00:00");
        assert_eq!(q.page_size, 2);
        let q = ListQuery::parse("DateSent=2024-05-01").unwrap();
        assert_eq!(q.before.unwrap().date_naive().to_string(), "2024-05-01");
        assert_eq!(ListQuery::parse("DateSent>=yesterday").unwrap_err().status, 400);
        assert_eq!(ListQuery::parse("PageSize=0").unwrap_err().status, 400);
    }
}
