use std::collections::HashSet;
use std::path::Path;

use crate::{Config, ConfigError};

/// Reads, parses and validates a config file; relative paths in it resolve
/// against the file's directory.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.to_owned(), source })?;
    let mut config = from_str(&text, &path.display().to_string())?;
    config.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(config)
}

/// Parses and validates config text; `origin` names it in errors.
pub fn from_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
        origin: origin.to_owned(),
        line: e.span().map(|s| line_of(text, s.start)).unwrap_or(0),
        message: e.message().to_owned(),
    })?;
    validate(config, text, origin)
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Longest attempt limit accepted (a day; a policy's are `u32` ms).
const MAX_LIMIT_MS: u64 = 86_400_000;

fn validate(config: Config, text: &str, origin: &str) -> Result<Config, ConfigError> {
    let invalid = |offset: Option<usize>, message: String| ConfigError::Invalid {
        origin: origin.to_owned(),
        line: offset.map(|o| line_of(text, o)).unwrap_or(0),
        message,
    };
    if config.version != 1 {
        return Err(invalid(None, format!("version {} is not supported; use 1", config.version)));
    }
    let listens = [("listen", Some(&config.listen)), ("admin_listen", config.admin_listen.as_ref())];
    for (name, value) in listens {
        let Some(value) = value else { continue };
        if value.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(None, format!("{name} = {value:?} is not an address like 127.0.0.1:8080")));
        }
    }
    if let Some(admin) = config.admin_listen.as_ref().and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        && !admin.ip().is_loopback()
        && config.admin.token_env.is_none()
    {
        return Err(invalid(
            None,
            format!(
                "admin_listen = \"{admin}\" is not a loopback address: set [admin] token_env (the admin token's variable)"
            ),
        ));
    }
    let state = &config.state;
    if state.prefix.is_empty() || state.prefix.contains(char::is_whitespace) {
        return Err(invalid(None, format!("state.prefix = {:?} must be a non-empty word", state.prefix)));
    }
    if state.timeout_ms == 0 {
        return Err(invalid(None, "state.timeout_ms must be more than 0".into()));
    }
    let t = &config.traces;
    if let Some(url) = &t.otlp_endpoint
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(invalid(None, "traces.otlp_endpoint must start with http:// or https://".into()));
    }
    if !(0.0..=1.0).contains(&t.sample_ratio) {
        return Err(invalid(None, "traces.sample_ratio must be between 0 and 1".into()));
    }
    if t.export_every_ms == 0 {
        return Err(invalid(None, "traces.export_every_ms must be more than 0".into()));
    }
    for (i, hook) in config.webhooks.iter().enumerate() {
        let n = i + 1;
        match (&hook.url, &hook.url_env) {
            (Some(url), None) if url.starts_with("http://") || url.starts_with("https://") => {}
            (Some(_), None) => {
                return Err(invalid(None, format!("webhook {n}: url must start with http:// or https://")));
            }
            (None, Some(var)) if !var.is_empty() => {}
            _ => return Err(invalid(None, format!("webhook {n}: set exactly one of url and url_env"))),
        }
        for kind in hook.events.iter().flatten() {
            if !crate::schema::EVENT_KINDS.contains(&kind.as_str()) {
                return Err(invalid(
                    None,
                    format!("webhook {n}: unknown event {kind:?}; known: {}", crate::schema::EVENT_KINDS.join(", ")),
                ));
            }
        }
    }
    let mut names = std::collections::HashSet::new();
    let mut hashes = std::collections::HashSet::new();
    for (i, key) in config.keys.iter().enumerate() {
        let n = i + 1;
        if key.name.trim().is_empty() {
            return Err(invalid(None, format!("key {n}: name must not be empty")));
        }
        let hex = key.hash.strip_prefix("sha256:").unwrap_or_default();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(
                None,
                format!(
                    "key {:?}: hash must be \"sha256:\" and 64 hex digits, as `switchyard keys new NAME` prints it",
                    key.name
                ),
            ));
        }
        for (field, value) in [
            ("requests_per_minute", key.requests_per_minute.map(u64::from)),
            ("tokens_per_minute", key.tokens_per_minute.map(u64::from)),
            ("max_concurrency", key.max_concurrency.map(u64::from)),
            ("daily_tokens", key.daily_tokens),
            ("monthly_tokens", key.monthly_tokens),
        ] {
            if value == Some(0) {
                return Err(invalid(None, format!("key {:?}: {field} must be more than 0", key.name)));
            }
        }
        for (field, value) in [("daily_spend_usd", key.daily_spend_usd), ("monthly_spend_usd", key.monthly_spend_usd)] {
            if value.is_some_and(|usd| !(usd.is_finite() && usd > 0.0)) {
                return Err(invalid(None, format!("key {:?}: {field} must be a number more than 0", key.name)));
            }
        }
        let spend_budget = key.daily_spend_usd.is_some() || key.monthly_spend_usd.is_some();
        if spend_budget && !config.providers.iter().any(|p| p.models.values().any(|m| m.input_usd_per_mtok.is_some())) {
            return Err(invalid(
                None,
                format!(
                    "key {:?} has a spend budget but no model has a price: set input_usd_per_mtok and \
                     output_usd_per_mtok under [providers.models.\"MODEL\"]",
                    key.name
                ),
            ));
        }
        for route in key.routes.iter().flatten() {
            let known =
                config.routes.iter().any(|r| r.model.get_ref() == route || r.aliases.iter().any(|a| a == route));
            if !known {
                return Err(invalid(
                    None,
                    format!("key {:?}: routes names {route:?}, which is no route's model or alias", key.name),
                ));
            }
        }
        if !names.insert(key.name.as_str()) {
            return Err(invalid(None, format!("key {:?} is configured twice", key.name)));
        }
        if !hashes.insert(hex.to_ascii_lowercase()) {
            return Err(invalid(None, format!("key {:?}: the same key hash is configured twice", key.name)));
        }
    }
    if let Ok(listen) = config.listen.parse::<std::net::SocketAddr>()
        && !listen.ip().is_loopback()
        && config.keys.is_empty()
        && !config.open_gateway
    {
        return Err(invalid(
            None,
            format!(
                "listen = \"{listen}\" is not a loopback address and no [[keys]] are configured: anyone who can reach it \
                 would spend the provider keys. Add gateway keys (`switchyard keys new NAME`) or set open_gateway = true"
            ),
        ));
    }
    if config.max_body_bytes == 0 {
        return Err(invalid(None, "max_body_bytes must be more than 0".into()));
    }
    let p = &config.policy;
    if p.decision_timeout_ms == 0 || p.decision_timeout_ms > 1000 {
        return Err(invalid(None, "policy.decision_timeout_ms must be 1..=1000".into()));
    }
    for key in &config.policy.trusted_keys {
        let bytes = key.strip_prefix("ed25519:").map(|b| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.decode(b.trim()).map(|k| k.len())
        });
        if !matches!(bytes, Some(Ok(32))) {
            return Err(invalid(
                None,
                format!(
                    "policy.trusted_keys: {key:?} is not an Ed25519 public key written \"ed25519:<base64 of 32 bytes>\" (`switchyard policy keygen` prints one)"
                ),
            ));
        }
    }
    let rate = |r: f64| r > 0.0 && r <= 1.0;
    if !rate(p.rollback_failure_rate) || !rate(p.rollback_request_failure_rate) || p.rollback_min_decisions == 0 {
        return Err(invalid(
            None,
            "policy.rollback_failure_rate and rollback_request_failure_rate must be above 0 and at most 1 (1: off), rollback_min_decisions above 0"
                .into(),
        ));
    }
    if !(0.0..=1.0).contains(&p.canary_share) || p.canary_window_ms == 0 {
        return Err(invalid(None, "policy.canary_share must be within 0..=1 and canary_window_ms above 0".into()));
    }
    if p.decision_fuel.is_some_and(|fuel| fuel < 10_000) {
        return Err(invalid(None, "policy.decision_fuel must be at least 10000".into()));
    }
    if p.memory_limit_mib == 0 || p.memory_limit_mib > 4096 {
        return Err(invalid(None, "policy.memory_limit_mib must be 1..=4096".into()));
    }
    if p.default.is_empty() {
        return Err(invalid(None, "policy.default must name a policy".into()));
    }
    let b = &config.breaker;
    if b.failures == 0 || !(0.0..=1.0).contains(&b.error_rate) || b.half_open_probes == 0 {
        return Err(invalid(
            None,
            "breaker: failures and half_open_probes must be at least 1, error_rate within 0..=1".into(),
        ));
    }
    if b.cool_down_ms == 0 || b.max_cool_down_ms() < b.cool_down_ms {
        return Err(invalid(None, "breaker: cool_down_ms must be at least 1 and at most max_cool_down_ms".into()));
    }
    let r = &config.retry_budget;
    if !(r.ratio >= 0.0 && r.ratio.is_finite()) || r.window_ms == 0 {
        return Err(invalid(None, "retry_budget: ratio must be 0 or more, window_ms at least 1".into()));
    }

    let mut names = HashSet::new();
    for provider in &config.providers {
        let name = provider.name.get_ref();
        if !names.insert(name.as_str()) {
            return Err(invalid(Some(provider.name.span().start), format!("provider {name:?} is defined twice")));
        }
        let url = provider.base_url.get_ref();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(invalid(
                Some(provider.base_url.span().start),
                format!("provider {name:?}: base_url {url:?} must start with http:// or https://"),
            ));
        }
        if let Some(var) = &provider.api_key_env
            && var.is_empty()
        {
            return Err(invalid(Some(provider.name.span().start), format!("provider {name:?}: api_key_env is empty")));
        }
        let quotas = std::iter::once((String::new(), provider.quota()))
            .chain(provider.models.iter().map(|(model, m)| (format!(" model {model:?}"), m.quota())));
        for (whose, quota) in quotas {
            for (field, value) in [("rpm", quota.rpm), ("tpm", quota.tpm), ("max_concurrency", quota.max_concurrency)] {
                if value == Some(0) {
                    return Err(invalid(
                        Some(provider.name.span().start),
                        format!("provider {name:?}{whose}: {field} must be more than 0"),
                    ));
                }
            }
        }
        for (model, m) in &provider.models {
            let prices = [("input_usd_per_mtok", m.input_usd_per_mtok), ("output_usd_per_mtok", m.output_usd_per_mtok)];
            for (field, price) in prices {
                if price.is_some_and(|usd| !(usd.is_finite() && usd >= 0.0)) {
                    return Err(invalid(
                        Some(provider.name.span().start),
                        format!("provider {name:?} model {model:?}: {field} must be a number, 0 or more"),
                    ));
                }
            }
        }
    }
    if config.queue.max_waiting == 0 || config.queue.max_wait_ms == 0 || config.queue.max_concurrency == Some(0) {
        return Err(invalid(None, "queue: max_waiting, max_wait_ms and max_concurrency must be more than 0".into()));
    }
    let t = &config.timeouts;
    let limits = [
        ("first_token_timeout_ms", t.first_token_timeout_ms),
        ("first_token_floor_ms", t.first_token_floor_ms),
        ("idle_timeout_ms", t.idle_timeout_ms),
        ("answer_timeout_ms", t.answer_timeout_ms),
    ];
    for (name, ms) in limits {
        if ms == 0 || ms > MAX_LIMIT_MS {
            return Err(invalid(None, format!("timeouts.{name} must be 1..={MAX_LIMIT_MS}")));
        }
    }
    if t.first_token_floor_ms > t.first_token_timeout_ms {
        return Err(invalid(None, "timeouts.first_token_floor_ms is larger than first_token_timeout_ms".into()));
    }
    let mut models = HashSet::new();
    if config.routes.is_empty() {
        return Err(invalid(None, "no [[routes]]: the gateway would have nothing to serve".into()));
    }
    for route in &config.routes {
        let model = route.model.get_ref();
        let at = Some(route.model.span().start);
        if !models.insert(model.as_str()) {
            return Err(invalid(at, format!("route {model:?} is defined twice")));
        }
        for alias in &route.aliases {
            if alias == "*" || alias.is_empty() || !models.insert(alias.as_str()) {
                return Err(invalid(
                    at,
                    format!("route {model:?}: alias {alias:?} is empty, `*`, or another route's name"),
                ));
            }
        }
        if route.targets.is_empty() {
            return Err(invalid(at, format!("route {model:?} has no targets")));
        }
        if route.timeout_ms == 0 {
            return Err(invalid(at, format!("route {model:?}: timeout_ms must be more than 0")));
        }
        let limits = [
            ("first_token_timeout_ms", route.first_token_timeout_ms),
            ("idle_timeout_ms", route.idle_timeout_ms),
            ("answer_timeout_ms", route.answer_timeout_ms),
            ("connect_timeout_ms", route.connect_timeout_ms),
        ];
        for (name, ms) in limits {
            if ms == Some(0) || ms.is_some_and(|ms| ms > MAX_LIMIT_MS) {
                return Err(invalid(at, format!("route {model:?}: {name} must be 1..={MAX_LIMIT_MS}")));
            }
        }
        for target in &route.targets {
            let provider = target.provider.get_ref();
            if !names.contains(provider.as_str()) {
                return Err(invalid(
                    Some(target.provider.span().start),
                    format!("route {model:?} names provider {provider:?}, which no [[providers]] defines"),
                ));
            }
        }
    }
    Ok(config)
}

impl Config {
    /// The settings of policy `name` as the JSON string its `init` receives.
    pub fn policy_settings_json(&self, name: &str) -> String {
        match self.policies.get(name) {
            Some(table) => serde_json::to_string(table).unwrap_or_else(|_| "{}".into()),
            None => "{}".into(),
        }
    }

    /// The watched policy folder, resolved against the config file.
    pub fn policy_dir(&self) -> std::path::PathBuf {
        self.base_dir.join(&self.policy.dir)
    }

    /// The compiled-policy cache folder, resolved against the config file.
    pub fn policy_cache_dir(&self) -> std::path::PathBuf {
        match &self.policy.cache_dir {
            Some(dir) => self.base_dir.join(dir),
            None => self.policy_dir().join(".cache"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
listen = "127.0.0.1:0"
[policies.failover]
max_attempts = 3
[[providers]]
name = "a"
api = "openai"
base_url = "http://127.0.0.1:1"
[[routes]]
model = "m"
targets = [{ provider = "a", model = "m1" }]
"#;

    #[test]
    fn good_config_loads_with_defaults() {
        let c = from_str(GOOD, "t.toml").unwrap();
        assert_eq!(c.policy.decision_timeout_ms, 5);
        assert_eq!(c.routes[0].timeout_ms, 30_000);
        assert_eq!(c.policy_settings_json("failover"), r#"{"max_attempts":3}"#);
        assert_eq!(c.policy_settings_json("other"), "{}");
    }

    #[test]
    fn unknown_provider_is_reported_with_its_line() {
        let bad = GOOD.replace(r#"provider = "a""#, r#"provider = "nope""#);
        let err = from_str(&bad, "t.toml").unwrap_err().to_string();
        assert_eq!(err, r#"t.toml:11: route "m" names provider "nope", which no [[providers]] defines"#);
    }

    #[test]
    fn unknown_field_is_reported_with_its_line() {
        let bad = GOOD.replace("listen =", "listne =");
        let err = from_str(&bad, "t.toml").unwrap_err().to_string();
        assert!(err.starts_with("t.toml:2: unknown field `listne`"), "{err}");
    }

    #[test]
    fn bad_url_scheme_is_refused() {
        let bad = GOOD.replace("http://127", "ftp://127");
        let err = from_str(&bad, "t.toml").unwrap_err().to_string();
        assert!(err.contains("must start with http:// or https://"), "{err}");
    }
}
