//! The response cache behind `degrade: cached`: successful non-streamed
//! answers, keyed by the normalised request. [`ResponseCache`] is the seam;
//! [`MemoryCache`] is the in-process one, `shared_cache.rs` the one several
//! instances share through Redis.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

/// What identifies an answer: sha256 of the client's API, the model asked
/// for and the request body in a canonical form — every object's keys
/// sorted, `stream`/`stream_options` left out at the top — so the same
/// question asked with its fields in another order, or as a stream, finds
/// the same entry. Answers are kept in the client's API format, so the two
/// APIs never share an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey([u8; 32]);

impl CacheKey {
    /// The key as 64 hex digits (how the shared cache names it).
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The key of `body` (in `api`'s format) asked of `route_model`; `None`
    /// when the body is not a JSON object.
    pub fn of(api: switchyard_wire::Api, route_model: &str, body: &[u8]) -> Option<CacheKey> {
        let fields: BTreeMap<Key<'_>, &RawValue> = serde_json::from_slice(body).ok()?;
        let mut hash = Sha256::new();
        hash.update(api.chat_path().as_bytes());
        hash.update([0]);
        hash.update(route_model.as_bytes());
        hash.update([0]);
        let kept = fields.iter().filter(|(k, _)| k.0 != "stream" && k.0 != "stream_options");
        object(&mut hash, kept)?;
        Some(CacheKey(hash.finalize().into()))
    }
}

/// An object key, borrowed from the body unless it holds escapes.
#[derive(serde::Deserialize, PartialEq, Eq, PartialOrd, Ord)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

/// Hashes an object's fields, in key order (a `BTreeMap`'s), each value canonical.
fn object<'a>(hash: &mut Sha256, fields: impl Iterator<Item = (&'a Key<'a>, &'a &'a RawValue)>) -> Option<()> {
    hash.update(b"{");
    for (key, value) in fields {
        // (A one-byte length for the usual short key: fewer bytes to hash.)
        match u8::try_from(key.0.len()) {
            Ok(n) if n < u8::MAX => hash.update([n]),
            _ => {
                hash.update([u8::MAX]);
                hash.update((key.0.len() as u64).to_le_bytes());
            }
        }
        hash.update(key.0.as_bytes());
        hash.update(b":");
        canonical(hash, value)?;
        hash.update(b",");
    }
    hash.update(b"}");
    Some(())
}

/// Hashes JSON `raw` canonically: objects through [`object`], arrays
/// element by element, scalars as written. (Parsing into borrowed raw
/// slices level by level allocates a fraction of what a `Value` tree does.)
fn canonical(hash: &mut Sha256, raw: &RawValue) -> Option<()> {
    let text = raw.get();
    match text.as_bytes().first()? {
        b'{' => {
            let fields: BTreeMap<Key<'_>, &RawValue> = serde_json::from_str(text).ok()?;
            object(hash, fields.iter())
        }
        b'[' => {
            let items: Vec<&RawValue> = serde_json::from_str(text).ok()?;
            hash.update(b"[");
            for item in items {
                canonical(hash, item)?;
                hash.update(b",");
            }
            hash.update(b"]");
            Some(())
        }
        _ => {
            hash.update(text.as_bytes());
            Some(())
        }
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

/// A cache lookup under way (a shared cache may ask Redis).
pub type Lookup<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Option<CachedAnswer>> + Send + 'a>>;

/// Where answers are kept for `degrade: cached`.
pub trait ResponseCache: Send + Sync {
    /// The live answer for `key`. Asked only by a request that degrades.
    fn get<'a>(&'a self, key: &'a CacheKey) -> Lookup<'a>;
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

    /// The live answer for `key`, held here.
    pub fn lookup(&self, key: &CacheKey) -> Option<CachedAnswer> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let stored = inner.map.get(key)?;
        let age = stored.stored.elapsed();
        (age < self.limits.ttl).then(|| CachedAnswer {
            body: stored.body.clone(),
            provider: stored.provider.clone(),
            age,
        })
    }

    /// Keeps `body`, stored `age` ago elsewhere: it expires when it would have there.
    pub fn keep(&self, key: CacheKey, body: &Bytes, provider: &Arc<str>, age: Duration) {
        let l = &self.limits;
        if l.ttl.is_zero() || l.max_entries == 0 || body.len() > l.max_body_bytes || body.len() > l.max_bytes {
            return;
        }
        let body = Bytes::copy_from_slice(body);
        let now = Instant::now();
        let stored = now.checked_sub(age).unwrap_or(now);
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let e = &mut *inner;
        // Expired answers leave first, so an idle cache empties.
        while e.order.front().and_then(|k| e.map.get(k)).is_some_and(|s| now.duration_since(s.stored) >= l.ttl) {
            e.remove_oldest();
        }
        e.bytes += body.len();
        match e.map.insert(key, Stored { body, provider: provider.clone(), stored }) {
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

    /// The limits it keeps.
    pub fn limits(&self) -> CacheLimits {
        self.limits
    }

    /// Answers held and their bytes, for tests and the bench.
    pub fn size(&self) -> (usize, usize) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (inner.map.len(), inner.bytes)
    }
}

impl ResponseCache for MemoryCache {
    fn get<'a>(&'a self, key: &'a CacheKey) -> Lookup<'a> {
        Box::pin(std::future::ready(self.lookup(key)))
    }

    fn put(&self, key: CacheKey, body: Bytes, provider: &Arc<str>) {
        self.keep(key, &body, provider, Duration::ZERO);
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

    #[test]
    fn the_key_tells_apart_what_a_client_would() {
        let of = |body: &str| CacheKey::of(switchyard_wire::Api::OpenAi, "m", body.as_bytes()).unwrap();
        // Nested objects too are compared with their keys sorted; whitespace does not count.
        assert_eq!(of(r#"{"a":{"x":1,"y":[1, 2]}}"#), of(r#"{ "a" : { "y" : [1,2], "x" : 1 } }"#));
        // An escaped key is the same key.
        assert_eq!(of(r#"{"\u0061":1}"#), of(r#"{"a":1}"#));
        // Neighbouring values never run together.
        assert_ne!(of(r#"{"a":[1,2]}"#), of(r#"{"a":[12]}"#));
        assert_ne!(of(r#"{"a":"1","b":"2"}"#), of(r#"{"a":"1\",\"b\":\"2"}"#));
        assert_ne!(of(r#"{"a":{"b":1}}"#), of(r#"{"a":{"b":2}}"#));
        // `stream` is left out at the top only.
        assert_ne!(of(r#"{"a":{"stream":1}}"#), of(r#"{"a":{}}"#));
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
        assert!(cache.lookup(&key("a")).is_none(), "evicted");
        assert_eq!(cache.lookup(&key("c")).unwrap().body, "C");
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(cache.lookup(&key("c")).is_none(), "expired");
        cache.put(key("big"), Bytes::from(vec![0; 2048]), &p);
        assert!(cache.lookup(&key("big")).is_none(), "too big to keep");
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
        assert_eq!(cache.lookup(&key("99")).unwrap().body.len(), 100);
    }

    #[test]
    fn a_stored_answer_is_a_compact_copy_not_a_slice_of_a_big_buffer() {
        let cache = MemoryCache::new(limits(10, 1 << 20));
        let buffer = Bytes::from(vec![b'z'; 64 * 1024]);
        cache.put(key("a"), buffer.slice(0..300), &"p".into());
        let held = cache.lookup(&key("a")).unwrap().body;
        assert_eq!(held.len(), 300);
        assert!(!buffer.as_ptr_range().contains(&held.as_ptr()), "the cache holds a slice of the 64 KiB read buffer");
    }
}
