//! The grant's `cache`: 2xx answers to GET requests, by URL and request headers, for `ttl_s`,
//! at most `max_entries` (the oldest go first). A hit is answered here: no network, no slot of
//! `max_concurrency`, no `rate_limit_per_s` token.

use super::super::bindings::v2::weir::plugin::http::Response;
use super::grant::CacheSettings;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug)]
pub(crate) struct ResponseCache {
    settings: CacheSettings,
    inner: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    by_key: HashMap<String, (Instant, Response)>,
    /// Keys in the order they were stored, with when: an entry stored again later leaves a
    /// stale line here, skipped when it comes up.
    order: VecDeque<(String, Instant)>,
}

impl ResponseCache {
    pub(crate) fn new(settings: CacheSettings) -> ResponseCache {
        ResponseCache {
            settings,
            inner: Mutex::new(Entries::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn get(&self, key: &str) -> Option<Response> {
        let mut entries = self.lock();
        match entries.by_key.get(key) {
            Some((stored, response)) if stored.elapsed() < self.settings.ttl => {
                Some(response.clone())
            }
            Some(_) => {
                entries.by_key.remove(key);
                None
            }
            None => None,
        }
    }

    pub(crate) fn put(&self, key: String, response: Response) {
        let now = Instant::now();
        let mut entries = self.lock();
        entries.by_key.insert(key.clone(), (now, response));
        entries.order.push_back((key, now));
        let max = self.settings.max_entries;
        while entries.by_key.len() > max || entries.order.len() > 2 * max {
            let Some((oldest, stored)) = entries.order.pop_front() else {
                break;
            };
            if entries
                .by_key
                .get(&oldest)
                .is_some_and(|(at, _)| *at == stored)
            {
                entries.by_key.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn response(status: u16) -> Response {
        Response {
            status,
            headers: vec![],
            body: b"x".to_vec(),
        }
    }

    #[test]
    fn the_oldest_entry_goes_first() {
        let cache = ResponseCache::new(CacheSettings {
            ttl: Duration::from_secs(60),
            max_entries: 2,
        });
        cache.put("a".into(), response(200));
        cache.put("b".into(), response(201));
        cache.put("a".into(), response(202));
        cache.put("c".into(), response(203));
        assert!(cache.get("b").is_none());
        assert_eq!(cache.get("a").map(|r| r.status), Some(202));
        assert_eq!(cache.get("c").map(|r| r.status), Some(203));
    }

    #[test]
    fn entries_expire() {
        let cache = ResponseCache::new(CacheSettings {
            ttl: Duration::ZERO,
            max_entries: 2,
        });
        cache.put("a".into(), response(200));
        assert!(cache.get("a").is_none());
    }
}
