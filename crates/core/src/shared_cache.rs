//! The response cache several instances share (`[state] backend =
//! "redis"`): this instance's memory first, then Redis. An answer kept here
//! is written to both (off the response path); a lookup that misses here
//! asks Redis — only a request that degrades looks, and it waits at most
//! `[state] timeout_ms` — and keeps what it found for the time it has left.
//! An answer to a question kept less than a tenth of the TTL ago is not
//! written again.

use std::sync::Arc;

use bytes::Bytes;
use switchyard_state::{CacheBounds, CacheStore};

use crate::cache::{CacheKey, CachedAnswer, Lookup, MemoryCache, ResponseCache};

/// Memory in front of the shared store.
pub(crate) struct SharedCache {
    local: MemoryCache,
    store: Arc<CacheStore>,
}

impl SharedCache {
    pub fn new(local: MemoryCache, store: Arc<CacheStore>) -> SharedCache {
        SharedCache { local, store }
    }

    fn bounds(&self) -> CacheBounds {
        let l = self.local.limits();
        CacheBounds { ttl: l.ttl, max_entries: l.max_entries, max_bytes: l.max_bytes }
    }
}

impl ResponseCache for SharedCache {
    fn get<'a>(&'a self, key: &'a CacheKey) -> Lookup<'a> {
        Box::pin(async move {
            if let Some(hit) = self.local.lookup(key) {
                return Some(hit);
            }
            let found = self.store.get(&key.hex(), self.local.limits().ttl).await?;
            let (body, provider): (Bytes, Arc<str>) = (found.body.into(), found.provider.into());
            self.local.keep(*key, &body, &provider, found.age);
            Some(CachedAnswer { body, provider, age: found.age })
        })
    }

    fn put(&self, key: CacheKey, body: Bytes, provider: &Arc<str>) {
        let l = self.local.limits();
        if l.ttl.is_zero() || body.len() > l.max_body_bytes {
            return;
        }
        // The same question answered again soon after: the copy kept (here
        // and in Redis) is fresh enough for a degraded answer, and a hot
        // prompt costs Redis one write per tenth of the TTL, not one per
        // request. (Its `Age` says how old it is.)
        if self.local.lookup(&key).is_some_and(|kept| kept.age < l.ttl / 10) {
            return;
        }
        self.local.keep(key, &body, provider, std::time::Duration::ZERO);
        let (store, bounds, provider) = (self.store.clone(), self.bounds(), provider.clone());
        tokio::spawn(async move { store.put(&key.hex(), &body, &provider, bounds).await });
    }
}
