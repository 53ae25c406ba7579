//! `GET /users/{userId}/meetings`: which meetings each `type` lists, in what order, and the
//! `next_page_token` cursors that page through them.
//!
//! Meetings are listed by start time ascending (Zoom's order for scheduled meetings), ties by
//! meeting number, and type 3 meetings (no fixed time) last. A token remembers the last meeting
//! of its page rather than an offset, so a meeting created or deleted between pages neither
//! repeats nor hides another; like Zoom's, it expires after 15 minutes.

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use rand::{distributions::Alphanumeric, Rng};

use super::meeting::{Meeting, INSTANT, RECURRING_NO_FIXED_TIME};

pub(crate) const DEFAULT_PAGE_SIZE: usize = 30;
pub(crate) const MAX_PAGE_SIZE: usize = 300;
const TOKEN_LIFETIME: Duration = Duration::minutes(15);

/// The list's `type` query parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ListType {
    /// Every meeting with a schedule (all but instant ones), past or not, until deleted.
    Scheduled,
    /// Those not yet over, live ones included.
    Upcoming,
    /// Those in progress. Nobody joins a sandbox meeting, so this is always empty.
    Live,
    /// Those whose scheduled time is over.
    Previous,
}

impl ListType {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "scheduled" => Some(Self::Scheduled),
            "upcoming" | "upcoming_meetings" => Some(Self::Upcoming),
            "live" => Some(Self::Live),
            "previous_meetings" => Some(Self::Previous),
            _ => None,
        }
    }

    fn includes(self, m: &Meeting, now: NaiveDateTime) -> bool {
        if m.kind == INSTANT {
            return false;
        }
        // A meeting with no fixed time never ends.
        let end = m
            .start_time
            .filter(|_| m.kind != RECURRING_NO_FIXED_TIME)
            .map(|t| t.approx_utc() + Duration::minutes(i64::from(m.duration)));
        match self {
            Self::Scheduled => true,
            Self::Upcoming => end.is_none_or(|end| end > now),
            Self::Live => false,
            Self::Previous => end.is_some_and(|end| end <= now),
        }
    }
}

/// Where a meeting sorts: undated ones last, then by start time, then by number.
pub(crate) type Key = (bool, NaiveDateTime, i64);

fn key(m: &Meeting) -> Key {
    let start = m.start_time.filter(|_| m.kind != RECURRING_NO_FIXED_TIME);
    (start.is_none(), start.map(|t| t.approx_utc()).unwrap_or_default(), m.id)
}

#[derive(Clone, Debug)]
struct Cursor {
    host_id: String,
    list: ListType,
    page_size: usize,
    after: Key,
    expires: DateTime<Utc>,
}

/// Issued `next_page_token`s.
#[derive(Debug, Default)]
pub(crate) struct PageTokens {
    cursors: HashMap<String, Cursor>,
}

/// One page of a list.
pub(crate) struct Page<'a> {
    pub(crate) page_size: usize,
    pub(crate) total_records: usize,
    pub(crate) next_page_token: String,
    pub(crate) meetings: Vec<&'a Meeting>,
}

/// Where a list request starts: from the top with its own type and size, or from a token.
pub(crate) enum PageRequest {
    First { list: ListType, page_size: usize },
    Next { token: String, page_size: Option<usize> },
}

impl PageTokens {
    /// The page `request` asks for among `host_id`'s meetings; `None` when the token is unknown,
    /// expired, or another host's.
    pub(crate) fn page<'a>(
        &mut self,
        meetings: impl Iterator<Item = &'a Meeting>,
        host_id: &str,
        request: PageRequest,
        now: DateTime<Utc>,
    ) -> Option<Page<'a>> {
        self.cursors.retain(|_, c| c.expires > now);
        let (list, page_size, after) = match request {
            PageRequest::First { list, page_size } => (list, page_size, None),
            PageRequest::Next { token, page_size } => {
                let c = self.cursors.get(&token).filter(|c| c.host_id == host_id)?;
                (c.list, page_size.unwrap_or(c.page_size), Some(c.after))
            }
        };
        let naive_now = now.naive_utc();
        let mut listed: Vec<(Key, &Meeting)> = meetings
            .filter(|m| m.host_id == host_id && list.includes(m, naive_now))
            .map(|m| (key(m), m))
            .collect();
        listed.sort_by_key(|(k, _)| *k);
        let total_records = listed.len();
        let rest: Vec<(Key, &Meeting)> = listed
            .into_iter()
            .filter(|(k, _)| after.is_none_or(|a| *k > a))
            .collect();
        let more = rest.len() > page_size;
        let page: Vec<(Key, &Meeting)> = rest.into_iter().take(page_size).collect();
        let next_page_token = match page.last() {
            Some((last, _)) if more => {
                let token: String = rand::thread_rng()
                    .sample_iter(&Alphanumeric)
                    .take(32)
                    .map(char::from)
                    .collect();
                self.cursors.insert(
                    token.clone(),
                    Cursor {
                        host_id: host_id.to_owned(),
                        list,
                        page_size,
                        after: *last,
                        expires: now + TOKEN_LIFETIME,
                    },
                );
                token
            }
            _ => String::new(),
        };
        Some(Page {
            page_size,
            total_records,
            next_page_token,
            meetings: page.into_iter().map(|(_, m)| m).collect(),
        })
    }
}
