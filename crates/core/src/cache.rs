//! The response cache behind `degrade: cached`: successful non-streamed
//! answers, keyed by the normalised request. [`ResponseCache`] is the seam a
//! shared store (Redis) can fill later; [`MemoryCache`] is the in-process one.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
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
    pub provider: String,
    /// How long ago it was stored.
    pub age: Duration,
}

/// Where answers are kept for `degrade: cached`.
pub trait ResponseCache: Send + Sync {
    /// The live answer for `key`.
    fn get(&self, key: &CacheKey) -> Option<CachedAnswer>;
    /// Keeps `body` (a successful answer from `provider`) for the cache's TTL.
    fn put(&self, key: CacheKey, body: Bytes, provider: &str);
}

struct Stored {
    body: Bytes,
    provider: String,
    stored: Instant,
}

/// An in-memory cache with a TTL and a bound on entries (oldest out first).
pub struct MemoryCache {
    ttl: Duration,
    max_entries: usize,
    max_body_bytes: usize,
    inner: Mutex<(HashMap<CacheKey, Stored>, VecDeque<CacheKey>)>,
}

impl MemoryCache {
    /// A cache keeping at most `max_entries` answers of at most `max_body_bytes`, for `ttl`.
    pub fn new(ttl: Duration, max_entries: usize, max_body_bytes: usize) -> Self {
        MemoryCache { ttl, max_entries, max_body_bytes, inner: Mutex::default() }
    }
}

impl ResponseCache for MemoryCache {
    fn get(&self, key: &CacheKey) -> Option<CachedAnswer> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let stored = inner.0.get(key)?;
        let age = stored.stored.elapsed();
        (age < self.ttl).then(|| CachedAnswer { body: stored.body.clone(), provider: stored.provider.clone(), age })
    }

    fn put(&self, key: CacheKey, body: Bytes, provider: &str) {
        if self.ttl.is_zero() || self.max_entries == 0 || body.len() > self.max_body_bytes {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *inner;
        let stored = Stored { body, provider: provider.to_owned(), stored: Instant::now() };
        if map.insert(key, stored).is_none() {
            order.push_back(key);
        }
        while map.len() > self.max_entries {
            let Some(oldest) = order.pop_front() else { break };
            map.remove(&oldest);
        }
        // Keep the order queue from growing with re-stored keys.
        if order.len() > 2 * self.max_entries {
            order.retain(|k| map.contains_key(k));
        }
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

    #[tokio::test(start_paused = true)]
    async fn answers_live_for_the_ttl_and_the_oldest_leave_first() {
        let cache = MemoryCache::new(Duration::from_secs(60), 2, 1024);
        let key =
            |s: &str| CacheKey::of(switchyard_wire::Api::OpenAi, "m", format!(r#"{{"q":"{s}"}}"#).as_bytes()).unwrap();
        cache.put(key("a"), Bytes::from_static(b"A"), "p");
        cache.put(key("b"), Bytes::from_static(b"B"), "p");
        cache.put(key("c"), Bytes::from_static(b"C"), "p");
        assert!(cache.get(&key("a")).is_none(), "evicted");
        assert_eq!(cache.get(&key("c")).unwrap().body, "C");
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(cache.get(&key("c")).is_none(), "expired");
        cache.put(key("big"), Bytes::from(vec![0; 2048]), "p");
        assert!(cache.get(&key("big")).is_none(), "too big to keep");
    }
}
