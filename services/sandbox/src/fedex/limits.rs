//! FedEx's throttle (external-apis.md §5, FedEx's rate-limit guide): 1,400 transactions per 10
//! seconds per project; once spent, every request is refused 429 until the window's 10 seconds are
//! up, then transactions resume. The window opens with the first request after the last one
//! closed. Only Track API requests count here (the token endpoint has FedEx's separate per-IP
//! thresholds, which the sandbox does not simulate), and a refused request does not count.
//! FedEx's daily quotas are not simulated either; a test reaches the 429 by lowering the figures at
//! `/_sandbox/fedex/limits`, or with an injected fault.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

pub(crate) const DEFAULT_REQUESTS_PER_WINDOW: u32 = 1400;
pub(crate) const DEFAULT_WINDOW_SECS: u32 = 10;

/// The figures in force; `requests_per_window: 0` refuses every request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Settings {
    pub(crate) requests_per_window: u32,
    pub(crate) window_secs: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            requests_per_window: DEFAULT_REQUESTS_PER_WINDOW,
            window_secs: DEFAULT_WINDOW_SECS,
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Limits {
    pub(crate) settings: Settings,
    /// When the open window started, and the requests admitted in it.
    window: Option<(DateTime<Utc>, u32)>,
}

impl Limits {
    /// Counts one request; false when the open window's budget is spent.
    pub(crate) fn take(&mut self, now: DateTime<Utc>) -> bool {
        let length = Duration::seconds(i64::from(self.settings.window_secs.max(1)));
        let (started, used) = match self.window {
            Some((started, used)) if now < started + length => (started, used),
            _ => (now, 0),
        };
        if used >= self.settings.requests_per_window {
            self.window = Some((started, used));
            return false;
        }
        self.window = Some((started, used + 1));
        true
    }

    /// New figures start a new window, so a test's lowered limit counts from its next request.
    pub(crate) fn set(&mut self, settings: Settings) {
        self.settings = settings;
        self.window = None;
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn the_budget_is_per_window_and_refusals_do_not_count() {
        let mut l = Limits::default();
        l.set(Settings {
            requests_per_window: 2,
            window_secs: 10,
        });
        let t = Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap();
        assert!(l.take(t));
        assert!(l.take(t + Duration::seconds(4)));
        assert!(
            !l.take(t + Duration::seconds(5)),
            "restricted until the 10 seconds are up"
        );
        assert!(!l.take(t + Duration::seconds(9)));
        assert!(l.take(t + Duration::seconds(10)), "then transactions resume");
        assert!(l.take(t + Duration::seconds(11)));
        assert!(!l.take(t + Duration::seconds(12)));
    }

    #[test]
    fn zero_refuses_everything() {
        let mut l = Limits::default();
        l.set(Settings {
            requests_per_window: 0,
            window_secs: 10,
        });
        assert!(!l.take(Utc::now()));
    }
}
