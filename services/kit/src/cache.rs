//! A small bounded map of values that expire, for token work that would otherwise be redone on every
//! request (signing the same internal token, verifying the same JWT). Time checks stay with the
//! caller: an entry is only ever returned before its `valid_until`.

use std::{collections::HashMap, hash::Hash, sync::Mutex};

/// Entries kept at most; past this the map starts afresh (a burst of distinct tokens only costs
/// the work the cache would have saved).
const CAPACITY: usize = 10_000;

#[derive(Debug)]
pub struct ExpiringCache<K, V> {
    entries: Mutex<HashMap<K, (V, i64)>>,
}

impl<K, V> Default for ExpiringCache<K, V> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash, V: Clone> ExpiringCache<K, V> {
    /// The value for `key` if it is still valid at `now` (Unix seconds).
    pub fn get<Q>(&self, key: &Q, now: i64) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|(_, until)| now < *until)
            .map(|(v, _)| v.clone())
    }

    /// Keeps `value` for `key` until `valid_until` (Unix seconds, exclusive).
    pub fn insert(&self, key: K, value: V, valid_until: i64) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(key, (value, valid_until));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_the_map_stays_bounded() {
        let cache = ExpiringCache::default();
        cache.insert("a".to_owned(), 1, 100);
        assert_eq!(cache.get("a", 99), Some(1));
        assert_eq!(cache.get("a", 100), None);
        for i in 0..CAPACITY + 5 {
            cache.insert(i.to_string(), i, 100);
        }
        assert!(cache.entries.lock().unwrap().len() <= CAPACITY);
    }
}
