//! Zoom's rate limits (external-apis.md §1): meeting creates are capped per host per UTC day
//! (100), and each endpoint's label shares a per-second budget across the whole account (a Pro
//! account's Medium label: 20 a second). Only the Medium label is simulated: create and list
//! meetings are Medium; get, update and delete are Light and are never refused. A refused request
//! does not count. Both figures can be lowered at `/_sandbox/zoom/limits` so a test reaches them
//! in a few calls.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

pub(crate) const DEFAULT_CREATES_PER_HOST_PER_DAY: u32 = 100;
pub(crate) const DEFAULT_MEDIUM_PER_SECOND: u32 = 20;

/// The figures in force; `0` refuses every request of the kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Settings {
    pub(crate) creates_per_host_per_day: u32,
    pub(crate) medium_per_second: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            creates_per_host_per_day: DEFAULT_CREATES_PER_HOST_PER_DAY,
            medium_per_second: DEFAULT_MEDIUM_PER_SECOND,
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Limits {
    pub(crate) settings: Settings,
    /// The unix second being counted, and the Medium requests admitted in it.
    second: (i64, u32),
    /// Per host id: the UTC day being counted, and the creates admitted on it.
    creates: HashMap<String, (NaiveDate, u32)>,
}

impl Limits {
    /// Counts one Medium request; false when this second's budget is spent.
    pub(crate) fn take_medium(&mut self, now: DateTime<Utc>) -> bool {
        let second = now.timestamp();
        if self.second.0 != second {
            self.second = (second, 0);
        }
        if self.second.1 >= self.settings.medium_per_second {
            return false;
        }
        self.second.1 += 1;
        true
    }

    /// Counts one meeting create for `host_id`; false when today's (UTC) budget is spent.
    pub(crate) fn take_create(&mut self, host_id: &str, now: DateTime<Utc>) -> bool {
        let today = now.date_naive();
        let entry = self.creates.entry(host_id.to_owned()).or_insert((today, 0));
        if entry.0 != today {
            *entry = (today, 0);
        }
        if entry.1 >= self.settings.creates_per_host_per_day {
            return false;
        }
        entry.1 += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn the_medium_budget_is_per_second() {
        let mut l = Limits::default();
        l.settings.medium_per_second = 2;
        let t = Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap();
        assert!(l.take_medium(t));
        assert!(l.take_medium(t));
        assert!(!l.take_medium(t));
        assert!(l.take_medium(t + chrono::Duration::seconds(1)));
    }

    #[test]
    fn creates_are_counted_per_host_per_utc_day() {
        let mut l = Limits::default();
        l.settings.creates_per_host_per_day = 1;
        let t = Utc.with_ymd_and_hms(2025, 3, 1, 23, 59, 59).unwrap();
        assert!(l.take_create("a", t));
        assert!(!l.take_create("a", t));
        assert!(l.take_create("b", t), "another host has its own budget");
        assert!(
            l.take_create("a", t + chrono::Duration::seconds(1)),
            "a new day at GMT 00:00:00"
        );
    }
}
