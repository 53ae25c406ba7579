//! SendGrid's rate-limit headers (external-apis.md §2): every response says `X-RateLimit-Limit`,
//! `-Remaining` and `-Reset` (unix seconds). SendGrid publishes no figure for mail/send, so by
//! default the sandbox reports a window of [`WINDOW_LIMIT`] requests a minute and never refuses;
//! a test sets a budget (`PUT /_sandbox/sendgrid/rate-limit`) to make requests beyond it fail with
//! 429 until the budget is cleared or its reset time passes.

use serde_json::{json, Value};

/// Requests per window the headers report.
pub(crate) const WINDOW_LIMIT: u64 = 600;
const WINDOW_SECS: i64 = 60;

/// The three header values for one response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Headers {
    pub(crate) limit: u64,
    pub(crate) remaining: u64,
    pub(crate) reset: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Allowed(Headers),
    /// Refused; retry after this many seconds.
    Limited(Headers, i64),
}

/// A budget set by the control: `remaining` more requests, then 429 until `until` (if set).
#[derive(Clone, Copy, Debug)]
struct Budget {
    remaining: u64,
    until: Option<i64>,
}

#[derive(Debug, Default)]
pub(crate) struct RateLimit {
    window_start: i64,
    used: u64,
    budget: Option<Budget>,
}

impl RateLimit {
    fn roll(&mut self, now: i64) {
        if now >= self.window_start + WINDOW_SECS {
            self.window_start = now - now.rem_euclid(WINDOW_SECS);
            self.used = 0;
        }
        if self.budget.and_then(|b| b.until).is_some_and(|until| now >= until) {
            self.budget = None;
        }
    }

    fn headers(&self) -> Headers {
        let window_reset = self.window_start + WINDOW_SECS;
        match self.budget {
            Some(b) => Headers {
                limit: WINDOW_LIMIT,
                remaining: b.remaining,
                reset: b.until.unwrap_or(window_reset),
            },
            None => Headers {
                limit: WINDOW_LIMIT,
                remaining: WINDOW_LIMIT.saturating_sub(self.used),
                reset: window_reset,
            },
        }
    }

    /// The headers for a response that does not count (an unauthenticated request).
    pub(crate) fn peek(&mut self, now: i64) -> Headers {
        self.roll(now);
        self.headers()
    }

    /// Counts one request and says whether it may proceed.
    pub(crate) fn take(&mut self, now: i64) -> Verdict {
        self.roll(now);
        if let Some(b) = self.budget.as_mut() {
            if b.remaining == 0 {
                let headers = self.headers();
                return Verdict::Limited(headers, (headers.reset - now).max(1));
            }
            b.remaining -= 1;
        }
        self.used += 1;
        Verdict::Allowed(self.headers())
    }

    /// `remaining: None` lifts the budget; `reset_in` (seconds) lifts it by itself at that time.
    pub(crate) fn set(&mut self, remaining: Option<u64>, reset_in: Option<u64>, now: i64) {
        self.roll(now);
        self.budget = remaining.map(|remaining| Budget {
            remaining,
            until: reset_in.map(|s| now + i64::try_from(s).unwrap_or(i64::MAX / 2)),
        });
    }

    pub(crate) fn describe(&mut self, now: i64) -> Value {
        let h = self.peek(now);
        json!({
            "limit": h.limit,
            "remaining": h.remaining,
            "reset": h.reset,
            "enforced": self.budget.is_some(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_budget_requests_are_counted_but_never_refused() {
        let mut r = RateLimit::default();
        for _ in 0..700 {
            assert!(matches!(r.take(1_000), Verdict::Allowed(_)));
        }
        assert_eq!(r.peek(1_000).remaining, 0);
        // A new window starts at the next minute.
        assert_eq!(r.peek(1_020).remaining, WINDOW_LIMIT);
        assert_eq!(r.peek(1_020).reset, 1_080);
    }

    #[test]
    fn a_budget_refuses_beyond_n_until_cleared_or_reset() {
        let mut r = RateLimit::default();
        r.set(Some(1), None, 1_000);
        assert!(matches!(r.take(1_000), Verdict::Allowed(h) if h.remaining == 0));
        assert!(matches!(r.take(1_001), Verdict::Limited(h, after) if h.remaining == 0 && after == 19));
        r.set(None, None, 1_002);
        assert!(matches!(r.take(1_002), Verdict::Allowed(_)));

        r.set(Some(0), Some(5), 2_000);
        assert!(matches!(r.take(2_001), Verdict::Limited(h, 4) if h.reset == 2_005));
        assert!(matches!(r.take(2_005), Verdict::Allowed(_)));
    }
}
