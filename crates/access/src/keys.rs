//! Gateway keys: made, hashed, and checked against the ring.
//!
//! Anthropic's API takes its key as `x-api-key`, and its Python SDK (2.x)
//! sends the key as `Authorization: Bearer`: an Anthropic client may use
//! either. An OpenAI client uses `Authorization: Bearer` only.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use http::HeaderMap;
use sha2::{Digest, Sha256};
use switchyard_config::{Config, GatewayKey};
use switchyard_wire::Api;

use crate::tenant::Tenant;

/// A presented key longer than this is refused unread (keys made by
/// `switchyard keys new` are 51 bytes).
pub const MAX_KEY_BYTES: usize = 256;

/// The prefix of every key `switchyard keys new` makes (so secret scanners
/// and people can tell one apart from a provider's key).
const PREFIX: &str = "sy-";

/// Why a request was not let in; each says so in words the client can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No key in the header the client's API uses.
    #[error("This gateway needs a key: send it as {0}.")]
    Missing(&'static str),
    /// The key came in the other API's header.
    #[error("The gateway key came in the wrong header for this API: send it as {0}.")]
    WrongHeader(&'static str),
    /// Not a key at all (too long, not text, an empty Bearer).
    #[error("The gateway key is malformed: send it as {0}.")]
    Malformed(&'static str),
    /// Not a key this gateway knows (never made, or revoked).
    #[error("The gateway key is not valid (unknown or revoked).")]
    Unknown,
}

/// The gateway's keys, by the SHA-256 of each. Empty: an open gateway.
#[derive(Debug, Default)]
pub struct KeyRing {
    by_hash: HashMap<[u8; 32], Arc<Tenant>>,
    /// Each key's config as built, by name (to carry state over a reload).
    configs: HashMap<String, (GatewayKey, Arc<Tenant>)>,
}

fn digest(key: &[u8]) -> [u8; 32] {
    Sha256::digest(key).into()
}

fn parse_hash(hash: &str) -> Option<[u8; 32]> {
    let hex = hash.strip_prefix("sha256:")?;
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The config line of `key`: `sha256:` + its SHA-256 in hex.
pub fn hash_line(key: &str) -> String {
    let hex: String = digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// A new random key (192 bits from the OS's generator) and its hash line.
pub fn new_key() -> (String, String) {
    let bytes: [u8; 24] = rand::random();
    let key = format!("{PREFIX}{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
    let hash = hash_line(&key);
    (key, hash)
}

/// The route models `key` may use (its `routes`, aliases resolved); `None`: all.
fn allowed_routes(config: &Config, key: &GatewayKey) -> Option<HashSet<String>> {
    let names = key.routes.as_ref()?;
    let routes = config.routes.iter().filter(|r| names.iter().any(|n| n == r.model.get_ref() || r.aliases.contains(n)));
    Some(routes.map(|r| r.model.get_ref().clone()).collect())
}

/// How the client's API carries its key, in words.
fn header_of(api: Api) -> &'static str {
    match api {
        Api::OpenAi => "Authorization: Bearer <key>",
        Api::Anthropic => "x-api-key: <key> (or Authorization: Bearer <key>)",
    }
}

impl KeyRing {
    /// The ring of `config`'s `[[keys]]` (hashes the config check has
    /// validated; one that does not parse is skipped). A key whose settings
    /// did not change keeps its tenant from `before` — rates, in-flight
    /// count and usage; a changed one starts its rates afresh and keeps its
    /// usage (so a reload never resets a budget).
    pub fn new(config: &Config, before: Option<&KeyRing>) -> KeyRing {
        let mut ring = KeyRing::default();
        for k in &config.keys {
            let Some(hash) = parse_hash(&k.hash) else { continue };
            let kept = before.and_then(|b| b.configs.get(&k.name));
            let tenant = match kept {
                Some((old, tenant)) if old == k => tenant.clone(),
                _ => {
                    let ledger = kept.map(|(_, t)| t.ledger().clone()).unwrap_or_default();
                    Arc::new(Tenant::new(k, allowed_routes(config, k), ledger))
                }
            };
            ring.by_hash.insert(hash, tenant.clone());
            ring.configs.insert(k.name.clone(), (k.clone(), tenant));
        }
        ring
    }

    /// Every key's tenant, by name.
    pub fn tenants(&self) -> impl Iterator<Item = &Arc<Tenant>> {
        self.configs.values().map(|(_, t)| t)
    }

    /// No keys: every request is let in.
    pub fn is_open(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// The name of the key a request of `api` carries; `Ok(None)` when the
    /// gateway is open. The key is hashed before it is looked up, so what
    /// the lookup's timing could tell is about a SHA-256, not the key.
    pub fn authenticate<'a>(&self, api: Api, headers: &'a HeaderMap) -> Result<Option<Arc<Tenant>>, Refusal> {
        if self.is_open() {
            return Ok(None);
        }
        let how = header_of(api);
        let bearer = headers.get(http::header::AUTHORIZATION);
        let x_api_key = headers.get("x-api-key");
        let bearer_token = |value: &'a http::HeaderValue| -> Result<&'a [u8], Refusal> {
            let value = value.as_bytes();
            match value.get(..7).is_some_and(|s| s.eq_ignore_ascii_case(b"bearer ")) {
                true => Ok(&value[7..]),
                false => Err(Refusal::Malformed(how)),
            }
        };
        let presented = match (api, x_api_key, bearer) {
            (Api::Anthropic, Some(value), _) => value.as_bytes(),
            (_, _, Some(value)) => bearer_token(value)?,
            (Api::OpenAi, Some(_), None) => return Err(Refusal::WrongHeader(how)),
            (_, None, None) => return Err(Refusal::Missing(how)),
        };
        let presented = presented.trim_ascii();
        if presented.is_empty() || presented.len() > MAX_KEY_BYTES {
            return Err(Refusal::Malformed(how));
        }
        self.by_hash.get(&digest(presented)).cloned().map(Some).ok_or(Refusal::Unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    /// A config with a route `m` and `keys` as `(name, key, extra TOML)`.
    pub(crate) fn config(keys: &[(&str, &str, &str)]) -> Config {
        let mut text = String::from(
            "version = 1\n[[providers]]\nname = \"p\"\napi = \"openai\"\nbase_url = \"http://127.0.0.1:9\"\n\
             [[routes]]\nmodel = \"m\"\naliases = [\"fast\"]\ntargets = [{ provider = \"p\", model = \"x\" }]\n\
             [[routes]]\nmodel = \"n\"\ntargets = [{ provider = \"p\", model = \"y\" }]\n",
        );
        for (name, key, extra) in keys {
            text += &format!("[[keys]]\nname = {name:?}\nhash = {:?}\n{extra}\n", hash_line(key));
        }
        switchyard_config::from_str(&text, "test").unwrap()
    }

    fn ring(keys: &[(&str, &str)]) -> KeyRing {
        let keys: Vec<_> = keys.iter().map(|(name, key)| (*name, *key, "")).collect();
        KeyRing::new(&config(&keys), None)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn a_new_key_is_prefixed_random_and_its_hash_line_finds_it() {
        let (key, hash) = new_key();
        let (other, _) = new_key();
        assert!(key.starts_with("sy-") && key.len() == 51 && key != other);
        assert!(hash.starts_with("sha256:") && hash.len() == 71);
        assert_eq!(parse_hash(&hash), Some(digest(key.as_bytes())));
        let mut config = config(&[("team-a", "unused", "")]);
        config.keys[0].hash = hash;
        let ring = KeyRing::new(&config, None);
        let found = ring.authenticate(Api::OpenAi, &headers(&[("authorization", &format!("Bearer {key}"))]));
        assert_eq!(found.unwrap().map(|k| k.name.clone()).as_deref(), Some("team-a"));
    }

    #[test]
    fn each_api_reads_its_own_header_and_refuses_the_other() {
        let ring = ring(&[("a", "sy-key-a")]);
        let name = |found: Result<Option<Arc<Tenant>>, Refusal>| found.map(|k| k.map(|k| k.name.to_string()));
        let openai = |h: &[(&'static str, &str)]| name(ring.authenticate(Api::OpenAi, &headers(h)));
        let anthropic = |h: &[(&'static str, &str)]| name(ring.authenticate(Api::Anthropic, &headers(h)));
        assert_eq!(openai(&[("authorization", "Bearer sy-key-a")]).unwrap().as_deref(), Some("a"));
        assert_eq!(openai(&[("authorization", "bearer  sy-key-a ")]).unwrap().as_deref(), Some("a"));
        assert_eq!(anthropic(&[("x-api-key", "sy-key-a")]).unwrap().as_deref(), Some("a"));
        assert!(matches!(openai(&[("x-api-key", "sy-key-a")]), Err(Refusal::WrongHeader(_))));
        assert_eq!(anthropic(&[("authorization", "Bearer sy-key-a")]).unwrap().as_deref(), Some("a"), "the SDK's way");
        assert_eq!(
            anthropic(&[("x-api-key", "sy-key-b"), ("authorization", "Bearer sy-key-a")]),
            Err(Refusal::Unknown)
        );
        assert!(matches!(openai(&[]), Err(Refusal::Missing(_))));
        assert!(matches!(openai(&[("authorization", "Basic c3k6a2V5")]), Err(Refusal::Malformed(_))));
        assert!(matches!(openai(&[("authorization", "Bearer ")]), Err(Refusal::Malformed(_))));
        let long = format!("Bearer {}", "k".repeat(MAX_KEY_BYTES + 1));
        assert!(matches!(openai(&[("authorization", &long)]), Err(Refusal::Malformed(_))));
        assert_eq!(openai(&[("authorization", "Bearer sy-key-b")]), Err(Refusal::Unknown));
        assert!(matches!(KeyRing::default().authenticate(Api::OpenAi, &headers(&[])), Ok(None)), "open");
    }

    #[test]
    fn a_reload_keeps_an_unchanged_keys_state_and_every_keys_usage() {
        let before =
            KeyRing::new(&config(&[("a", "ka", "requests_per_minute = 5"), ("b", "kb", "routes = [\"fast\"]")]), None);
        let find = |ring: &KeyRing, name: &str| ring.tenants().find(|t| &*t.name == name).unwrap().clone();
        let (a, b) = (find(&before, "a"), find(&before, "b"));
        let now = std::time::Instant::now();
        let wall = time::OffsetDateTime::now_utc();
        a.admit("m", 1, now, wall).unwrap().settle(10, 0, 0.0, wall);
        assert!(b.admit("n", 1, now, wall).is_err(), "b may use route m (alias fast) only");
        b.admit("m", 1, now, wall).unwrap().settle(20, 0, 0.0, wall);
        let after = KeyRing::new(
            &config(&[("a", "ka", "requests_per_minute = 5"), ("b", "kb", "priority = \"high\"")]),
            Some(&before),
        );
        assert!(Arc::ptr_eq(&find(&after, "a"), &a), "unchanged: the same tenant, rate and all");
        let b2 = find(&after, "b");
        assert!(!Arc::ptr_eq(&b2, &b));
        assert_eq!(b2.ledger().used(wall).2.input_tokens, 20, "usage survives a changed key");
        assert!(b2.admit("n", 1, now, wall).is_ok(), "the new settings apply");
        let removed = KeyRing::new(&config(&[("b", "kb", "")]), Some(&after));
        assert!(removed.tenants().all(|t| &*t.name != "a"));
    }

    #[test]
    fn hash_lines_that_are_not_sha256_hex_do_not_parse() {
        assert!(parse_hash("sha256:zz").is_none());
        assert!(parse_hash(&format!("md5:{}", "a".repeat(64))).is_none());
        assert!(parse_hash(&format!("sha256:{}", "g".repeat(64))).is_none());
        assert!(parse_hash(&format!("sha256:{}", "ab".repeat(32))).is_some());
    }
}
