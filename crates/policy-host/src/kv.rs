//! Policy state: a small key-value store per policy name, behind the
//! `state-*` host imports. Shared by all instances and versions of one policy
//! (so it survives hot swap of the same name), bounded, with per-key TTLs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// At most this many keys per policy.
pub const MAX_KEYS: usize = 1024;
/// Longest key, bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// Longest value, bytes.
pub const MAX_VALUE_BYTES: usize = 4096;

struct Entry {
    value: String,
    expires: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|t| t > now)
    }
}

/// One policy's store.
#[derive(Default)]
pub struct PolicyKv {
    entries: Mutex<HashMap<String, Entry>>,
}

/// Why a write was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The key is longer than [`MAX_KEY_BYTES`].
    #[error("key of {0} bytes is over the {MAX_KEY_BYTES}-byte limit")]
    KeyTooLong(usize),
    /// The value is longer than [`MAX_VALUE_BYTES`].
    #[error("value of {0} bytes is over the {MAX_VALUE_BYTES}-byte limit")]
    ValueTooLong(usize),
    /// The store already holds [`MAX_KEYS`] live keys.
    #[error("the policy's state already holds {MAX_KEYS} keys")]
    Full,
}

impl PolicyKv {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The live value of `key`.
    pub fn get(&self, key: &str) -> Option<String> {
        let now = Instant::now();
        self.lock().get(key).filter(|e| e.live(now)).map(|e| e.value.clone())
    }

    /// Sets `key`, for `ttl` or for good.
    pub fn set(&self, key: &str, value: String, ttl: Option<Duration>) -> Result<(), KvError> {
        self.compare_and_swap_inner(key, None, value, ttl, false).map(drop)
    }

    /// Sets `key` only when its live value is `expected` (`None`: absent).
    pub fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&str>,
        value: String,
        ttl: Option<Duration>,
    ) -> Result<bool, KvError> {
        self.compare_and_swap_inner(key, expected, value, ttl, true)
    }

    /// Removes `key`.
    pub fn delete(&self, key: &str) {
        self.lock().remove(key);
    }

    fn compare_and_swap_inner(
        &self,
        key: &str,
        expected: Option<&str>,
        value: String,
        ttl: Option<Duration>,
        compare: bool,
    ) -> Result<bool, KvError> {
        if key.len() > MAX_KEY_BYTES {
            return Err(KvError::KeyTooLong(key.len()));
        }
        if value.len() > MAX_VALUE_BYTES {
            return Err(KvError::ValueTooLong(value.len()));
        }
        let now = Instant::now();
        let mut entries = self.lock();
        let current = entries.get(key).filter(|e| e.live(now)).map(|e| e.value.as_str());
        if compare && current != expected {
            return Ok(false);
        }
        if !entries.contains_key(key) && entries.len() >= MAX_KEYS {
            entries.retain(|_, e| e.live(now));
            if entries.len() >= MAX_KEYS {
                return Err(KvError::Full);
            }
        }
        entries.insert(key.to_owned(), Entry { value, expires: ttl.map(|d| now + d) });
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn values_live_until_their_ttl() {
        let kv = PolicyKv::default();
        kv.set("a", "1".into(), Some(Duration::from_millis(100))).unwrap();
        kv.set("b", "2".into(), None).unwrap();
        assert_eq!(kv.get("a").as_deref(), Some("1"));
        tokio::time::advance(Duration::from_millis(150)).await;
        assert_eq!((kv.get("a"), kv.get("b").as_deref()), (None, Some("2")));
    }

    #[test]
    fn compare_and_swap_sets_only_on_the_expected_value() {
        let kv = PolicyKv::default();
        assert!(kv.compare_and_swap("n", None, "1".into(), None).unwrap());
        assert!(!kv.compare_and_swap("n", None, "1".into(), None).unwrap());
        assert!(!kv.compare_and_swap("n", Some("0"), "2".into(), None).unwrap());
        assert!(kv.compare_and_swap("n", Some("1"), "2".into(), None).unwrap());
        assert_eq!(kv.get("n").as_deref(), Some("2"));
        kv.delete("n");
        assert_eq!(kv.get("n"), None);
    }

    #[test]
    fn bounds_are_enforced() {
        let kv = PolicyKv::default();
        assert_eq!(kv.set(&"k".repeat(300), "v".into(), None), Err(KvError::KeyTooLong(300)));
        assert_eq!(kv.set("k", "v".repeat(5000), None), Err(KvError::ValueTooLong(5000)));
        for i in 0..MAX_KEYS {
            kv.set(&i.to_string(), "v".into(), None).unwrap();
        }
        assert_eq!(kv.set("one-more", "v".into(), None), Err(KvError::Full));
        kv.set("0", "overwrite is fine".into(), None).unwrap();
    }
}
