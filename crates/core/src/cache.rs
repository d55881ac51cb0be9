//! The response cache behind `degrade: cached`: successful non-streamed
//! answers, keyed by the normalised request. [`ResponseCache`] is the seam a
//! shared store (Redis) can fill later; [`MemoryCache`] is the in-process one.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

/// What identifies an answer: sha256 of the client's API, the model asked
/// for and the request body with its keys sorted and `stream`/`stream_options`
/// removed. Answers are kept in the client's API format, so the two APIs
/// never share an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey([u8; 32]);

impl CacheKey {
    /// The key of `body` (in `api`'s format) asked of `route_model`; `None`
    /// when the body is not a JSON object.
    pub fn of(api: switchyard_wire::Api, route_model: &str, body: &[u8]) -> Option<CacheKey> {
        let serde_json::Value::Object(mut fields) = serde_json::from_slice(body).ok()? else { return None };
        fields.remove("stream");
        fields.remove("stream_options");
        // serde_json's map is ordered by key, so this is canonical.
        let canonical = serde_json::to_vec(&fields).ok()?;
        let mut hash = Sha256::new();
        hash.update(api.chat_path().as_bytes());
        hash.update([0]);
        hash.update(route_model.as_bytes());
        hash.update([0]);
        hash.update(&canonical);
        Some(CacheKey(hash.finalize().into()))
    }
}

/// A cached answer.
#[derive(Debug, Clone)]
pub struct CachedAnswer {
    /// The body as the provider sent it.
    pub body: Bytes,
    /// Which provider answered.
    pub provider: Arc<str>,
    /// How long ago it was stored.
    pub age: Duration,
}

/// Where answers are kept for `degrade: cached`.
pub trait ResponseCache: Send + Sync {
    /// The live answer for `key`.
    fn get(&self, key: &CacheKey) -> Option<CachedAnswer>;
    /// Keeps `body` (a successful answer from `provider`) for the cache's TTL.
    fn put(&self, key: CacheKey, body: Bytes, provider: &Arc<str>);
}

struct Stored {
    body: Bytes,
    provider: Arc<str>,
    stored: Instant,
}

/// What a memory cache may hold.
#[derive(Debug, Clone, Copy)]
pub struct CacheLimits {
    /// How long an answer may be served.
    pub ttl: Duration,
    /// Most answers kept.
    pub max_entries: usize,
    /// Larger answers are not kept.
    pub max_body_bytes: usize,
    /// Most bytes of answers kept in all.
    pub max_bytes: usize,
}

#[derive(Default)]
struct Entries {
    map: HashMap<CacheKey, Stored>,
    /// Keys oldest first; every answer lives as long, so the oldest expire first.
    order: VecDeque<CacheKey>,
    /// Bytes of the answers in `map`.
    bytes: usize,
}

impl Entries {
    fn remove_oldest(&mut self) -> bool {
        let Some(oldest) = self.order.pop_front() else { return false };
        if let Some(gone) = self.map.remove(&oldest) {
            self.bytes -= gone.body.len();
        }
        true
    }
}

/// An in-memory cache with a TTL, bounded by entries and by bytes (oldest
/// out first). Answers are stored as compact copies: a body sliced out of a
/// connection's read buffer would keep the whole buffer alive.
pub struct MemoryCache {
    limits: CacheLimits,
    inner: Mutex<Entries>,
}

impl MemoryCache {
    /// A cache within `limits`.
    pub fn new(limits: CacheLimits) -> Self {
        MemoryCache { limits, inner: Mutex::default() }
    }

    /// Answers held and their bytes, for tests and the bench.
    pub fn size(&self) -> (usize, usize) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (inner.map.len(), inner.bytes)
    }
}

impl ResponseCache for MemoryCache {
    fn get(&self, key: &CacheKey) -> Option<CachedAnswer> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let stored = inner.map.get(key)?;
        let age = stored.stored.elapsed();
        (age < self.limits.ttl).then(|| CachedAnswer {
            body: stored.body.clone(),
            provider: stored.provider.clone(),
            age,
        })
    }

    fn put(&self, key: CacheKey, body: Bytes, provider: &Arc<str>) {
        let l = &self.limits;
        if l.ttl.is_zero() || l.max_entries == 0 || body.len() > l.max_body_bytes || body.len() > l.max_bytes {
            return;
        }
        let body = Bytes::copy_from_slice(&body);
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let e = &mut *inner;
        // Expired answers leave first, so an idle cache empties.
        while e.order.front().and_then(|k| e.map.get(k)).is_some_and(|s| now.duration_since(s.stored) >= l.ttl) {
            e.remove_oldest();
        }
        e.bytes += body.len();
        match e.map.insert(key, Stored { body, provider: provider.clone(), stored: now }) {
            Some(old) => {
                e.bytes -= old.body.len();
                // Re-stored: it is the newest now.
                e.order.retain(|k| *k != key);
                e.order.push_back(key);
            }
            None => e.order.push_back(key),
        }
        while (e.map.len() > l.max_entries || e.bytes > l.max_bytes) && e.remove_oldest() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_ignores_key_order_and_streaming() {
        let a = CacheKey::of(
            switchyard_wire::Api::OpenAi,
            "m",
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}"#,
        );
        let b = CacheKey::of(
            switchyard_wire::Api::OpenAi,
            "m",
            br#"{"messages":[{"content":"hi","role":"user"}],"model":"m"}"#,
        );
        let c = CacheKey::of(
            switchyard_wire::Api::OpenAi,
            "m",
            br#"{"model":"m","messages":[{"role":"user","content":"hello"}]}"#,
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(
            CacheKey::of(switchyard_wire::Api::OpenAi, "other", br#"{"model":"m"}"#),
            CacheKey::of(switchyard_wire::Api::OpenAi, "m", br#"{"model":"m"}"#)
        );
        assert_eq!(CacheKey::of(switchyard_wire::Api::OpenAi, "m", b"[1]"), None);
    }

    fn key(s: &str) -> CacheKey {
        CacheKey::of(switchyard_wire::Api::OpenAi, "m", format!(r#"{{"q":"{s}"}}"#).as_bytes()).unwrap()
    }

    fn limits(max_entries: usize, max_bytes: usize) -> CacheLimits {
        CacheLimits { ttl: Duration::from_secs(60), max_entries, max_body_bytes: 1024, max_bytes }
    }

    #[tokio::test(start_paused = true)]
    async fn answers_live_for_the_ttl_and_the_oldest_leave_first() {
        let cache = MemoryCache::new(limits(2, 1 << 20));
        let p: Arc<str> = "p".into();
        cache.put(key("a"), Bytes::from_static(b"A"), &p);
        cache.put(key("b"), Bytes::from_static(b"B"), &p);
        cache.put(key("c"), Bytes::from_static(b"C"), &p);
        assert!(cache.get(&key("a")).is_none(), "evicted");
        assert_eq!(cache.get(&key("c")).unwrap().body, "C");
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(cache.get(&key("c")).is_none(), "expired");
        cache.put(key("big"), Bytes::from(vec![0; 2048]), &p);
        assert!(cache.get(&key("big")).is_none(), "too big to keep");
        cache.put(key("d"), Bytes::from_static(b"DD"), &p);
        assert_eq!(cache.size(), (1, 2), "the expired answers left when a new one came");
    }

    #[test]
    fn the_bytes_held_stay_under_max_bytes_and_restoring_a_key_counts_once() {
        let cache = MemoryCache::new(limits(1000, 1000));
        let p: Arc<str> = "p".into();
        for i in 0..100 {
            cache.put(key(&i.to_string()), Bytes::from(vec![b'x'; 300]), &p);
            assert!(cache.size().1 <= 1000, "{:?}", cache.size());
        }
        assert_eq!(cache.size(), (3, 900));
        cache.put(key("99"), Bytes::from(vec![b'y'; 100]), &p);
        assert_eq!(cache.size(), (3, 700));
        assert_eq!(cache.get(&key("99")).unwrap().body.len(), 100);
    }

    #[test]
    fn a_stored_answer_is_a_compact_copy_not_a_slice_of_a_big_buffer() {
        let cache = MemoryCache::new(limits(10, 1 << 20));
        let buffer = Bytes::from(vec![b'z'; 64 * 1024]);
        cache.put(key("a"), buffer.slice(0..300), &"p".into());
        let held = cache.get(&key("a")).unwrap().body;
        assert_eq!(held.len(), 300);
        assert!(!buffer.as_ptr_range().contains(&held.as_ptr()), "the cache holds a slice of the 64 KiB read buffer");
    }
}
