//! State that several Switchyard instances behind one load balancer share
//! (`[state] backend = "redis"`), so that they act as one gateway: a breaker
//! one instance opens, or a provider's Retry-After it hears, holds for all.
//!
//! The rule everything here keeps: **a request never waits for Redis.**
//! Decisions read each instance's own memory; what another instance saw is
//! applied to that memory as it arrives (pub/sub), and what this instance
//! sees is queued and published off the request path. If Redis is slow or
//! gone, commands are given up after `[state] timeout_ms`, the instance
//! serves on its own state, and when Redis answers again it publishes what
//! it could not and resynchronises from what the others kept there.
//!
//! - [`RedisLink`]: the process's one connection, its timeout, heartbeat,
//!   reconnection and subscriptions.
//! - [`HealthShare`]: breaker moves, cool-downs and forced breakers.
//! - [`ProbeLeases`]: active probes of an open breaker, one instance at a time.
//! - [`CacheStore`]: the response cache `degrade: cached` serves from.
//! - [`RedisPolicyState`]: the policies' `state-*` imports.
//! - [`RedisRates`]: gateway keys' request and token rates.

mod cache;
mod health;
mod lease;
mod link;
mod policy_state;
mod rates;

pub use cache::{CacheBounds, CacheStore, StoredAnswer};
pub use health::{HealthCounts, HealthShare, HealthSink, SharedTrip};
pub use lease::ProbeLeases;
pub use link::{LinkCounts, LinkOptions, RedisLink};
pub use policy_state::RedisPolicyState;
pub use rates::RedisRates;

/// Why shared state cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The Redis URL cannot be used.
    #[error("[state] redis URL: {0}")]
    Url(String),
}

/// Now, as milliseconds since the Unix epoch: how deadlines and bucket
/// times travel between hosts (keep their clocks in sync).
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
