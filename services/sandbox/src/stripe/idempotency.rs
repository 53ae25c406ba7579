//! Stripe's idempotency (stripe.md §1.3): the first POST with a key that begins executing stores its
//! status and body; the same key with the same request replays them, with other parameters it is a
//! 400 `idempotency_error`, and while the first is still executing it is a 409. Validation failures
//! and conflicts store nothing, so they may be retried. Keys older than 24 hours are forgotten.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

/// A stored response.
#[derive(Clone, Debug)]
pub(crate) struct Stored {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

#[derive(Clone, Debug)]
enum Entry {
    InFlight {
        fingerprint: String,
    },
    Done {
        fingerprint: String,
        at: DateTime<Utc>,
        response: Stored,
    },
}

/// What a request carrying a key should do.
#[derive(Debug)]
pub(crate) enum Begin {
    /// Execute; the key is now in flight.
    Execute,
    Replay(Stored),
    Mismatch,
    InFlight,
}

#[derive(Debug, Default)]
pub(crate) struct Keys {
    entries: HashMap<String, Entry>,
}

const RETENTION_HOURS: i64 = 24;

impl Keys {
    pub(crate) fn begin(&mut self, key: &str, fingerprint: &str, now: DateTime<Utc>) -> Begin {
        let expired = match self.entries.get(key) {
            Some(Entry::Done { at, .. }) => now - *at > Duration::hours(RETENTION_HOURS),
            _ => false,
        };
        if expired {
            self.entries.remove(key);
        }
        match self.entries.get(key) {
            Some(Entry::InFlight { .. }) => Begin::InFlight,
            Some(Entry::Done {
                fingerprint: first,
                response,
                ..
            }) => {
                if first == fingerprint {
                    Begin::Replay(response.clone())
                } else {
                    Begin::Mismatch
                }
            }
            None => {
                self.entries.insert(
                    key.to_owned(),
                    Entry::InFlight {
                        fingerprint: fingerprint.to_owned(),
                    },
                );
                Begin::Execute
            }
        }
    }

    /// Stores the response of the request that holds `key`.
    pub(crate) fn finish(&mut self, key: &str, response: Stored, now: DateTime<Utc>) {
        if let Some(Entry::InFlight { fingerprint, .. }) = self.entries.remove(key) {
            self.entries.insert(
                key.to_owned(),
                Entry::Done {
                    fingerprint,
                    at: now,
                    response,
                },
            );
        }
    }

    /// Releases `key` without storing anything (validation failed, or the caller went away).
    pub(crate) fn abandon(&mut self, key: &str) {
        if matches!(self.entries.get(key), Some(Entry::InFlight { .. })) {
            self.entries.remove(key);
        }
    }

    /// How many keys are held, and how many of those are still executing.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let in_flight = self
            .entries
            .values()
            .filter(|e| matches!(e, Entry::InFlight { .. }))
            .count();
        (self.entries.len(), in_flight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_mismatch_in_flight_and_expiry() {
        let now = Utc::now();
        let mut keys = Keys::default();
        assert!(matches!(keys.begin("k", "POST /v1/x a=1", now), Begin::Execute));
        assert!(matches!(keys.begin("k", "POST /v1/x a=1", now), Begin::InFlight));
        keys.finish(
            "k",
            Stored {
                status: 402,
                body: b"{}".to_vec(),
            },
            now,
        );
        assert!(matches!(keys.begin("k", "POST /v1/x a=1", now), Begin::Replay(s) if s.status == 402));
        assert!(matches!(keys.begin("k", "POST /v1/x a=2", now), Begin::Mismatch));
        let later = now + Duration::hours(25);
        assert!(matches!(keys.begin("k", "POST /v1/x a=2", later), Begin::Execute));
        keys.abandon("k");
        assert_eq!(keys.counts(), (0, 0));
    }
}
