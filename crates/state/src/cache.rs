//! The response cache (`degrade: cached`) in Redis, so an answer one
//! instance kept can be served by another while every provider is down.
//! Same key (the gateway's sha256 of the normalised request), same TTL,
//! same bounds as the in-memory cache: entries and bytes across the
//! instances, oldest out first — kept by one script, so every instance's
//! write sees and trims the same index.

use std::sync::Arc;
use std::time::Duration;

use crate::link::RedisLink;
use crate::unix_ms;

/// What the shared cache may hold, across every instance.
#[derive(Debug, Clone, Copy)]
pub struct CacheBounds {
    /// How long an answer may be served.
    pub ttl: Duration,
    /// Most answers kept.
    pub max_entries: usize,
    /// Most bytes of answers kept in all.
    pub max_bytes: usize,
}

/// An answer read back from the shared cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    /// The body as the provider sent it.
    pub body: Vec<u8>,
    /// Which provider answered.
    pub provider: String,
    /// How long ago it was stored.
    pub age: Duration,
}

/// Keeps an answer, drops what expired from the index, then the oldest
/// while over either bound. KEYS: entry, index (zset by time stored),
/// sizes (hash), bytes (counter). ARGV: value, now ms, ttl ms, max
/// entries, max bytes, the answer's bytes (what the bounds count, as the
/// memory cache's do).
const KEEP: &str = r"
local now, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
local function forget(k)
  local size = tonumber(redis.call('HGET', KEYS[3], k) or '0')
  redis.call('HDEL', KEYS[3], k)
  redis.call('ZREM', KEYS[2], k)
  return redis.call('DECRBY', KEYS[4], size)
end
for _, k in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - ttl)) do forget(k) end
if redis.call('HEXISTS', KEYS[3], KEYS[1]) == 1 then forget(KEYS[1]) end
local size = tonumber(ARGV[6])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('ZADD', KEYS[2], now, KEYS[1])
redis.call('HSET', KEYS[3], KEYS[1], size)
local bytes = redis.call('INCRBY', KEYS[4], size)
while redis.call('ZCARD', KEYS[2]) > tonumber(ARGV[4]) or bytes > tonumber(ARGV[5]) do
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
  if not oldest then break end
  bytes = forget(oldest)
  redis.call('DEL', oldest)
end
return bytes
";

/// The shared response cache.
pub struct CacheStore {
    link: Arc<RedisLink>,
    keep: redis::Script,
}

impl std::fmt::Debug for CacheStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheStore").finish_non_exhaustive()
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl CacheStore {
    /// The cache in the link's Redis.
    pub fn new(link: Arc<RedisLink>) -> CacheStore {
        CacheStore { link, keep: redis::Script::new(KEEP) }
    }

    fn entry(&self, key: &str) -> String {
        self.link.key(&format!("cache:{key}"))
    }

    /// The answer kept under `key` (hex), if one is live; `None` too when
    /// Redis does not answer within the timeout.
    pub async fn get(&self, key: &str, ttl: Duration) -> Option<StoredAnswer> {
        if !self.link.counts().up {
            return None;
        }
        let value: Option<Vec<u8>> = self.link.run("GET cache", redis::cmd("GET").arg(self.entry(key))).await?;
        let value = value?;
        // `stored-ms \n provider \n body`
        let mut parts = value.splitn(3, |b| *b == b'\n');
        let stored: u64 = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
        let provider = String::from_utf8(parts.next()?.to_vec()).ok()?;
        let body = parts.next()?.to_vec();
        let age = Duration::from_millis(unix_ms().saturating_sub(stored));
        (age < ttl).then_some(StoredAnswer { body, provider, age })
    }

    /// Keeps `body` (from `provider`) under `key` (hex) within `bounds`.
    pub async fn put(&self, key: &str, body: &[u8], provider: &str, bounds: CacheBounds) {
        if !self.link.counts().up || provider.contains('\n') {
            return;
        }
        let now = unix_ms();
        let mut value = format!("{now}\n{provider}\n").into_bytes();
        value.extend_from_slice(body);
        let mut invocation = self.keep.key(self.entry(key));
        invocation
            .key(self.link.key("cache-index"))
            .key(self.link.key("cache-sizes"))
            .key(self.link.key("cache-bytes"))
            .arg(value)
            .arg(now)
            .arg(ms(bounds.ttl))
            .arg(bounds.max_entries)
            .arg(bounds.max_bytes)
            .arg(body.len());
        self.link.run_script::<i64>("cache keep", &invocation).await;
    }

    /// Answers and bytes the shared cache holds (for tests and the bench).
    pub async fn size(&self) -> Option<(u64, u64)> {
        let mut pipe = redis::pipe();
        pipe.cmd("ZCARD").arg(self.link.key("cache-index")).cmd("GET").arg(self.link.key("cache-bytes"));
        let (entries, bytes): (u64, Option<u64>) = self.link.run_pipe("cache size", &pipe).await?;
        Some((entries, bytes.unwrap_or(0)))
    }
}
