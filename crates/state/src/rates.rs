//! A gateway key's `requests_per_minute` and `tokens_per_minute` counted in
//! Redis across every instance: the same token buckets as in memory (a
//! minute's worth, refilled continuously; token estimates corrected from
//! real usage, debt repaid by the refill), both rates taken by one script —
//! one round trip per request of a key that has a rate, none for others.

use std::sync::Arc;
use std::time::Duration;

use switchyard_access::rate::{Admitted, Limited};
use switchyard_access::shared::{RateAnswer, RateAsk, RateFuture, SharedRates};

use crate::link::RedisLink;
use crate::unix_ms;

/// KEYS: the request bucket, the token bucket. ARGV: now ms, requests per
/// minute (0: none), tokens per minute (0: none), tokens to take.
/// Returns {0, requests left, tokens left} (-1: no such rate), or
/// {1 (requests) | 2 (tokens), retry-after ms, reset ms}.
const TAKE: &str = r"
local now = tonumber(ARGV[1])
local function level_of(key, per_minute)
  local b = redis.call('HMGET', key, 'level', 'at')
  local level, at = tonumber(b[1]) or per_minute, tonumber(b[2]) or now
  if now > at then level = math.min(per_minute, level + (now - at) * per_minute / 60000) end
  return level, math.max(now, at)
end
local function wait(missing, per_minute) return math.ceil(math.max(missing, 0) * 60000 / per_minute) end
local rpm, tpm, n = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local rlevel, rat, tlevel, tat
if rpm > 0 then
  rlevel, rat = level_of(KEYS[1], rpm)
  if rlevel < 1 then return {1, wait(1 - rlevel, rpm), wait(rpm - rlevel, rpm)} end
end
if tpm > 0 then
  tlevel, tat = level_of(KEYS[2], tpm)
  local need = math.min(n, tpm)
  if tlevel < need then return {2, wait(need - tlevel, tpm), wait(tpm - tlevel, tpm)} end
end
local rleft, tleft = -1, -1
if rpm > 0 then
  rlevel = rlevel - 1
  redis.call('HSET', KEYS[1], 'level', rlevel, 'at', rat)
  redis.call('PEXPIRE', KEYS[1], 180000)
  rleft = math.floor(math.max(rlevel, 0))
end
if tpm > 0 then
  tlevel = tlevel - n
  redis.call('HSET', KEYS[2], 'level', tlevel, 'at', tat)
  redis.call('PEXPIRE', KEYS[2], 180000)
  tleft = math.floor(math.max(tlevel, 0))
end
return {0, rleft, tleft}
";

/// KEYS: the token bucket. ARGV: now ms, tokens per minute, delta (more
/// used than estimated: positive). Debt is bounded by a minute's worth.
const SETTLE: &str = r"
local now, tpm, delta = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local b = redis.call('HMGET', KEYS[1], 'level', 'at')
local level, at = tonumber(b[1]) or tpm, tonumber(b[2]) or now
if now > at then level = math.min(tpm, level + (now - at) * tpm / 60000) end
level = math.max(-tpm, math.min(tpm, level - delta))
redis.call('HSET', KEYS[1], 'level', level, 'at', math.max(now, at))
redis.call('PEXPIRE', KEYS[1], 180000)
return 1
";

/// Every key's rates in the link's Redis.
pub struct RedisRates {
    link: Arc<RedisLink>,
    take: redis::Script,
    settle: redis::Script,
}

impl std::fmt::Debug for RedisRates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRates").finish_non_exhaustive()
    }
}

impl RedisRates {
    /// Rates in `link`'s Redis.
    pub fn new(link: Arc<RedisLink>) -> Arc<RedisRates> {
        Arc::new(RedisRates { link, take: redis::Script::new(TAKE), settle: redis::Script::new(SETTLE) })
    }

    fn bucket(&self, key: &str, kind: &str) -> String {
        self.link.key(&format!("rate:{key}:{kind}"))
    }
}

impl SharedRates for RedisRates {
    fn take<'a>(&'a self, key: &'a str, ask: RateAsk) -> RateFuture<'a> {
        Box::pin(async move {
            if !self.link.counts().up {
                return None;
            }
            let (rpm, tpm) = (ask.requests_per_minute.unwrap_or(0), ask.tokens_per_minute.unwrap_or(0));
            let mut invocation = self.take.key(self.bucket(key, "requests"));
            invocation.key(self.bucket(key, "tokens")).arg(unix_ms()).arg(rpm).arg(tpm).arg(ask.tokens);
            let (verdict, a, b): (i64, i64, i64) = self.link.run_script("rate take", &invocation).await?;
            let ms = |v: i64| Duration::from_millis(u64::try_from(v).unwrap_or(0));
            let left = |per_minute: Option<u32>, v: i64| {
                per_minute
                    .map(|per_minute| Admitted { per_minute, remaining: u32::try_from(v.max(0)).unwrap_or(u32::MAX) })
            };
            Some(match verdict {
                0 => RateAnswer::Admitted {
                    requests: left(ask.requests_per_minute, a),
                    tokens: left(ask.tokens_per_minute, b),
                },
                1 => RateAnswer::Requests(Limited { per_minute: rpm, retry_after: ms(a), reset: ms(b) }),
                _ => RateAnswer::Tokens(Limited { per_minute: tpm, retry_after: ms(a), reset: ms(b) }),
            })
        })
    }

    fn members(&self) -> u32 {
        self.link.members()
    }

    fn settle_tokens(&self, key: &str, tokens_per_minute: u32, delta: i64) {
        if delta == 0 || !self.link.counts().up {
            return;
        }
        let (link, script, bucket) = (self.link.clone(), self.settle.clone(), self.bucket(key, "tokens"));
        tokio::spawn(async move {
            let mut invocation = script.key(bucket);
            invocation.arg(unix_ms()).arg(tokens_per_minute).arg(delta);
            link.run_script::<i64>("rate settle", &invocation).await;
        });
    }
}
