//! Policy state (the `state-*` imports) in Redis: one namespace per policy
//! name, the same bounds as in memory (key and value length checked by the
//! host, at most `MAX_KEYS` live keys per policy), TTLs to the millisecond,
//! and compare-and-swap made atomic by one script — so a policy's counter
//! moves exactly once per call whichever instance makes it.

use std::sync::Arc;
use std::time::Duration;

use switchyard_policy_host::kv::{KvError, MAX_KEYS};
use switchyard_policy_host::{KvFuture, KvWrite, SharedKv};

use crate::link::RedisLink;
use crate::unix_ms;

/// KEYS: the value, the policy's index (a zset of its keys by expiry).
/// ARGV: compare ("1" or "0"), expected present ("1"/"0"), expected,
/// value, ttl ms ("0": none), now ms, max keys, the key's name.
/// Returns 1 written, 0 compare failed, -1 full.
const WRITE: &str = r"
local now = tonumber(ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if ARGV[2] == '1' then
    if current ~= ARGV[3] then return 0 end
  elseif current then
    return 0
  end
end
if not current and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[7]) then return -1 end
local ttl = tonumber(ARGV[5])
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[4], 'PX', ttl)
  redis.call('ZADD', KEYS[2], now + ttl, ARGV[8])
else
  redis.call('SET', KEYS[1], ARGV[4])
  redis.call('ZADD', KEYS[2], '+inf', ARGV[8])
end
return 1
";

/// Every policy's state in the link's Redis.
pub struct RedisPolicyState {
    link: Arc<RedisLink>,
    write: redis::Script,
}

impl std::fmt::Debug for RedisPolicyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPolicyState").finish_non_exhaustive()
    }
}

impl RedisPolicyState {
    /// Policy state in `link`'s Redis.
    pub fn new(link: Arc<RedisLink>) -> RedisPolicyState {
        RedisPolicyState { link, write: redis::Script::new(WRITE) }
    }

    fn value_key(&self, policy: &str, key: &str) -> String {
        self.link.key(&format!("policy:{policy}:{key}"))
    }

    fn index_key(&self, policy: &str) -> String {
        self.link.key(&format!("policy-keys:{policy}"))
    }
}

fn ttl_ms(ttl: Option<Duration>) -> u64 {
    ttl.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1))
}

impl SharedKv for RedisPolicyState {
    fn get<'a>(&'a self, policy: &'a str, key: &'a str) -> KvFuture<'a, Option<String>> {
        Box::pin(async move {
            if !self.link.counts().up {
                return None;
            }
            self.link.run("GET policy state", redis::cmd("GET").arg(self.value_key(policy, key))).await
        })
    }

    fn write<'a>(&'a self, policy: &'a str, key: &'a str, write: KvWrite<'a>) -> KvFuture<'a, Result<bool, KvError>> {
        Box::pin(async move {
            if !self.link.counts().up {
                return None;
            }
            let (compare, present, expected) = match write.expected {
                None => ("0", "0", ""),
                Some(None) => ("1", "0", ""),
                Some(Some(expected)) => ("1", "1", expected),
            };
            let mut invocation = self.write.key(self.value_key(policy, key));
            invocation
                .key(self.index_key(policy))
                .arg(compare)
                .arg(present)
                .arg(expected)
                .arg(write.value)
                .arg(ttl_ms(write.ttl))
                .arg(unix_ms())
                .arg(MAX_KEYS)
                .arg(key);
            let done: i64 = self.link.run_script("policy state write", &invocation).await?;
            Some(match done {
                1 => Ok(true),
                0 => Ok(false),
                _ => Err(KvError::Full),
            })
        })
    }

    fn delete<'a>(&'a self, policy: &'a str, key: &'a str) -> KvFuture<'a, ()> {
        Box::pin(async move {
            if !self.link.counts().up {
                return None;
            }
            let mut pipe = redis::pipe();
            pipe.del(self.value_key(policy, key)).ignore().zrem(self.index_key(policy), key).ignore();
            self.link.run_pipe("DEL policy state", &pipe).await
        })
    }
}
