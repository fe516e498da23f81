//! The answers of one Redis or PostgreSQL table, kept for `cache_ttl_s`, at most
//! `cache_max_entries` of them, the oldest evicted first. A key with no row is kept too (as
//! `None`): a stream of events for unknown customers would otherwise reach the backend every
//! time. One cache per table, shared by every plugin and lane it is granted to.
//!
//! Every entry lives as long as every other, so the order of insertion is the order of expiry:
//! one queue serves both eviction and expiry.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(super) struct Cache {
    ttl: Duration,
    max_entries: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Keys in the order they were inserted, with the insertion's number: an entry replaced
    /// after it expired leaves its old place here, recognised by the number and skipped.
    order: VecDeque<(u64, String)>,
    next: u64,
}

struct Entry {
    answer: Option<String>,
    at: Instant,
    number: u64,
}

impl Cache {
    /// `None` when the cache is off (`cache_ttl_s = 0`).
    pub(super) fn new(ttl: Duration, max_entries: usize) -> Option<Self> {
        (!ttl.is_zero() && max_entries > 0).then(|| Cache {
            ttl,
            max_entries,
            inner: Mutex::new(Inner::default()),
        })
    }

    /// The answer kept for `key`, if it has not expired: `Some(None)` is a key known to have no row.
    #[cfg(test)]
    pub(super) fn get(&self, key: &str, now: Instant) -> Option<Option<String>> {
        self.get_many(&[key.to_owned()], now).pop().flatten()
    }

    /// The answer kept for each of `keys`, if it has not expired (`Some(None)`: a key known to
    /// have no row), under one lock: a batch's lookups take it once, not once per key.
    pub(super) fn get_many(&self, keys: &[String], now: Instant) -> Vec<Option<Option<String>>> {
        let inner = self.lock();
        keys.iter()
            .map(|key| {
                let entry = inner.entries.get(key.as_str())?;
                (now.duration_since(entry.at) < self.ttl).then(|| entry.answer.clone())
            })
            .collect()
    }

    pub(super) fn put(&self, key: &str, answer: Option<String>, now: Instant) {
        let mut inner = self.lock();
        inner.expire(now, self.ttl);
        if let Some(entry) = inner.entries.get_mut(key) {
            // Two lookups of one key that missed together: the later answer, the earlier place.
            entry.answer = answer;
            return;
        }
        while inner.entries.len() >= self.max_entries {
            if !inner.evict_oldest() {
                break;
            }
        }
        let number = inner.next;
        inner.next += 1;
        inner.order.push_back((number, key.to_owned()));
        inner.entries.insert(
            key.to_owned(),
            Entry {
                answer,
                at: now,
                number,
            },
        );
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().entries.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the maps consistent (no step above can leave them
        // half-updated in a way that matters): keep using them.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Inner {
    /// Drops the entries that have expired, all at the front of the queue.
    fn expire(&mut self, now: Instant, ttl: Duration) {
        while let Some((number, key)) = self.order.front() {
            let live = self
                .entries
                .get(key)
                .is_some_and(|e| e.number == *number && now.duration_since(e.at) < ttl);
            if live {
                break;
            }
            self.evict_oldest();
        }
    }

    /// Drops the oldest entry; false when there was none.
    fn evict_oldest(&mut self) -> bool {
        let Some((number, key)) = self.order.pop_front() else {
            return false;
        };
        if self.entries.get(&key).is_some_and(|e| e.number == number) {
            self.entries.remove(&key);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_until_the_ttl_then_forgets() {
        let cache = Cache::new(Duration::from_secs(10), 100).unwrap();
        let t0 = Instant::now();
        cache.put("a", Some("{}".into()), t0);
        cache.put("b", None, t0);
        assert_eq!(
            cache.get("a", t0 + Duration::from_secs(9)),
            Some(Some("{}".into()))
        );
        assert_eq!(cache.get("b", t0 + Duration::from_secs(9)), Some(None));
        assert_eq!(cache.get("a", t0 + Duration::from_secs(10)), None);
        assert_eq!(cache.get("c", t0), None);
        // Expired entries go when something new comes in.
        cache.put("c", None, t0 + Duration::from_secs(11));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn evicts_the_oldest_past_max_entries() {
        let cache = Cache::new(Duration::from_secs(10), 2).unwrap();
        let t0 = Instant::now();
        cache.put("a", None, t0);
        cache.put("b", None, t0 + Duration::from_millis(1));
        cache.put("c", None, t0 + Duration::from_millis(2));
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get("a", t0), None);
        assert!(cache.get("b", t0).is_some() && cache.get("c", t0).is_some());
    }

    #[test]
    fn a_key_put_again_after_expiry_keeps_one_place() {
        let cache = Cache::new(Duration::from_secs(1), 10).unwrap();
        let t0 = Instant::now();
        for round in 0..5u64 {
            cache.put(
                "a",
                Some(round.to_string()),
                t0 + Duration::from_secs(2 * round),
            );
        }
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.lock().order.len(), 1);
        assert_eq!(
            cache.get("a", t0 + Duration::from_secs(8)),
            Some(Some("4".into()))
        );
    }

    #[test]
    fn off_when_the_ttl_is_zero() {
        assert!(Cache::new(Duration::ZERO, 10).is_none());
    }
}
