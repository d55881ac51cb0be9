//! Policy state several gateways share (`[state] backend = "redis"`): the
//! `state-*` imports of a policy go to a [`SharedKv`] when one is set, with
//! the same semantics as the in-memory [`PolicyKv`] (TTL, compare-and-swap,
//! bounds, one namespace per policy name), and to this instance's
//! [`PolicyKv`] whenever the shared store does not answer in time — a
//! decision never fails, or waits past the store's timeout, for it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::kv::{KvError, MAX_KEY_BYTES, MAX_VALUE_BYTES, PolicyKv};

/// An answer of the shared store; `None` when it did not answer in time
/// (the caller then uses this instance's state).
pub type KvFuture<'a, T> = Pin<Box<dyn Future<Output = Option<T>> + Send + 'a>>;

/// A write: set, or compare-and-swap.
#[derive(Debug, Clone, Copy)]
pub struct KvWrite<'a> {
    /// `Some(expected)`: only when the live value is `expected` (`None`: absent).
    pub expected: Option<Option<&'a str>>,
    /// The new value.
    pub value: &'a str,
    /// How long it lives (`None`: for good).
    pub ttl: Option<Duration>,
}

/// A store of policy state shared by gateway instances.
pub trait SharedKv: Send + Sync {
    /// The live value of `policy`'s `key`.
    fn get<'a>(&'a self, policy: &'a str, key: &'a str) -> KvFuture<'a, Option<String>>;
    /// Writes `policy`'s `key`: `Ok(false)` when a compare did not match;
    /// `Err(KvError::Full)` when the policy already holds its bound of keys.
    fn write<'a>(&'a self, policy: &'a str, key: &'a str, write: KvWrite<'a>) -> KvFuture<'a, Result<bool, KvError>>;
    /// Removes `policy`'s `key`.
    fn delete<'a>(&'a self, policy: &'a str, key: &'a str) -> KvFuture<'a, ()>;
}

/// One policy's state as its imports see it: shared when a shared store is
/// set and answers, this instance's otherwise.
#[derive(Clone)]
pub(crate) struct PolicyStore {
    pub local: Arc<PolicyKv>,
    pub shared: Option<Arc<dyn SharedKv>>,
    pub name: Arc<str>,
}

fn check(key: &str, value: &str) -> Result<(), KvError> {
    if key.len() > MAX_KEY_BYTES {
        return Err(KvError::KeyTooLong(key.len()));
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(KvError::ValueTooLong(value.len()));
    }
    Ok(())
}

impl PolicyStore {
    pub async fn get(&self, key: &str) -> Option<String> {
        if let Some(shared) = &self.shared
            && let Some(value) = shared.get(&self.name, key).await
        {
            return value;
        }
        self.local.get(key)
    }

    pub async fn write(&self, key: &str, write: KvWrite<'_>) -> Result<bool, KvError> {
        check(key, write.value)?;
        if let Some(shared) = &self.shared
            && let Some(done) = shared.write(&self.name, key, write).await
        {
            return done;
        }
        match write.expected {
            Some(expected) => self.local.compare_and_swap(key, expected, write.value.to_owned(), write.ttl),
            None => self.local.set(key, write.value.to_owned(), write.ttl).map(|()| true),
        }
    }

    pub async fn delete(&self, key: &str) {
        if let Some(shared) = &self.shared
            && shared.delete(&self.name, key).await.is_some()
        {
            return;
        }
        self.local.delete(key);
    }
}
