//! The gateway's Prometheus metrics: one registry per gateway (so several
//! gateways in one process never mix), names prefixed `switchyard_`, labels
//! only from config names (route, target, policy) and small enums, never
//! from client input. Counters and histograms move on the request path (a
//! hash of the label set and an atomic add); gauges of state the health book
//! already keeps (breaker, in flight) are read when scraped.
//!
//! [`Registry`] lives as long as the gateway (counters survive config
//! reloads); [`Metrics`] is one config generation's view of it (its target
//! names by index, its health book, its targets' history).

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use switchyard_policy_host::{BreakerState, HealthBook, OutcomeKind};
use switchyard_wire::Api;
use switchyard_wire::usage::Usage;

use crate::cells::{RouteCells, TargetCells};

/// A route's name as a label (shared, so a label set clones cheaply).
pub type Name = Arc<String>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: Name,
    pub api: &'static str,
    pub status: u16,
    pub degraded: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: Name,
    pub api: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    pub target: Name,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteOnly {
    pub route: Name,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeyLabels {
    pub key: Name,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeyTokenLabels {
    pub key: Name,
    pub direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SpendLabels {
    pub key: Name,
    pub route: Name,
    pub target: Name,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShedLabels {
    pub route: Name,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    pub target: Name,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub target: Name,
    pub direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BreakLabels {
    pub target: Name,
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RecoveryLabels {
    pub how: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub policy: String,
    pub hook: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FallbackLabels {
    pub policy: String,
    pub reason: &'static str,
    pub to: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabel {
    pub policy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LoadLabels {
    pub policy: String,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyInfoLabels {
    pub policy: String,
    pub version: String,
    pub origin: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

fn latency_histogram() -> Histogram {
    // 1 ms to ~9 min.
    Histogram::new(exponential_buckets(0.001, 2.0, 20))
}

fn decision_histogram() -> Histogram {
    // 5 us to ~2.6 s.
    Histogram::new(exponential_buckets(0.000_005, 2.0, 20))
}

/// Every metric family of one gateway, for its whole life.
pub struct Registry {
    registry: prometheus_client::registry::Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    first_token: Family<RouteLabels, Histogram, fn() -> Histogram>,
    attempts: Family<AttemptLabels, Counter>,
    upstream_latency: Family<TargetLabels, Histogram, fn() -> Histogram>,
    tokens: Family<TokenLabels, Counter>,
    stream_breaks: Family<BreakLabels, Counter>,
    recoveries: Family<RecoveryLabels, Counter>,
    cache: Family<CacheLabels, Counter>,
    breaker: Family<TargetLabels, Gauge>,
    inflight: Family<TargetLabels, Gauge>,
    retry_budget: Gauge,
    decisions: Family<DecisionLabels, Histogram, fn() -> Histogram>,
    fallbacks: Family<FallbackLabels, Counter>,
    retired: Family<PolicyLabel, Counter>,
    loads: Family<LoadLabels, Counter>,
    policy_info: Family<PolicyInfoLabels, Gauge>,
    reloads: Family<ResultLabels, Counter>,
    webhooks: Family<ResultLabels, Counter>,
    key_requests: Family<KeyLabels, Counter>,
    key_tokens: Family<KeyTokenLabels, Counter>,
    spend: Family<SpendLabels, Counter<f64, std::sync::atomic::AtomicU64>>,
    shed: Family<ShedLabels, Counter>,
    queue_wait: Family<RouteOnly, Histogram, fn() -> Histogram>,
    /// `[metrics] enabled`: the request path counts only when set.
    enabled: std::sync::atomic::AtomicBool,
    /// The shared state's figures, once there is a shared state.
    state: Arc<std::sync::OnceLock<crate::state_metrics::StateSource>>,
    /// Shadow mode's reports, as of the scrape being encoded.
    shadows: Arc<std::sync::Mutex<Vec<switchyard_policy_host::shadow::ShadowReport>>>,
}

/// One config generation's view of the [`Registry`].
pub struct Metrics {
    registry: Arc<Registry>,
    /// Per target index: its label (`provider/model`).
    targets: Vec<Name>,
    /// Per target index: its series on the request path.
    target_cells: Vec<TargetCells>,
    /// Per route index: its name and its series on the request path.
    routes: Vec<(Name, RouteCells)>,
    /// Per target index: its last hour, for the status page.
    history: Vec<Arc<crate::history::TargetHistory>>,
    health: Arc<HealthBook>,
}

/// Index of `api` in the per-API cells.
fn api_index(api: Api) -> usize {
    match api {
        Api::OpenAi => 0,
        Api::Anthropic => 1,
    }
}

fn api_label(api: Api) -> &'static str {
    match api {
        Api::OpenAi => "openai",
        Api::Anthropic => "anthropic",
    }
}

impl Registry {
    /// From now on `/metrics` shows the shared state's figures, read from
    /// `source` at each scrape (`[state] backend = "redis"`; set once).
    pub fn follow_state(&self, source: crate::state_metrics::StateSource) {
        let _ = self.state.set(source);
    }

    /// Every family, registered.
    pub fn new() -> Arc<Registry> {
        let mut registry = prometheus_client::registry::Registry::with_prefix("switchyard");
        let m = Registry {
            requests: Family::default(),
            request_duration: Family::new_with_constructor(latency_histogram),
            first_token: Family::new_with_constructor(latency_histogram),
            attempts: Family::default(),
            upstream_latency: Family::new_with_constructor(latency_histogram),
            tokens: Family::default(),
            stream_breaks: Family::default(),
            recoveries: Family::default(),
            cache: Family::default(),
            breaker: Family::default(),
            inflight: Family::default(),
            retry_budget: Gauge::default(),
            decisions: Family::new_with_constructor(decision_histogram),
            fallbacks: Family::default(),
            retired: Family::default(),
            loads: Family::default(),
            policy_info: Family::default(),
            reloads: Family::default(),
            webhooks: Family::default(),
            key_requests: Family::default(),
            key_tokens: Family::default(),
            spend: Family::default(),
            shed: Family::default(),
            queue_wait: Family::new_with_constructor(latency_histogram),
            enabled: std::sync::atomic::AtomicBool::new(true),
            state: Arc::default(),
            shadows: Arc::default(),
            registry: prometheus_client::registry::Registry::default(),
        };
        registry.register_collector(Box::new(crate::state_metrics::StateCollector(m.state.clone())));
        registry.register_collector(Box::new(crate::shadow_metrics::ShadowCollector(m.shadows.clone())));
        registry.register(
            "requests",
            "Chat requests answered, by route, client API, status and degradation",
            m.requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "From a chat request's arrival to its answer (a stream: to its end)",
            m.request_duration.clone(),
        );
        registry.register(
            "time_to_first_token_seconds",
            "From a streamed request's arrival to its first content reaching the client",
            m.first_token.clone(),
        );
        registry.register(
            "attempts",
            "Upstream attempts, by target and outcome (the policy world's outcome-kind)",
            m.attempts.clone(),
        );
        registry.register(
            "upstream_latency_seconds",
            "An attempt's time to its answer (a stream: to its first token)",
            m.upstream_latency.clone(),
        );
        registry.register(
            "tokens",
            "Tokens the providers counted, by target and direction (in, out)",
            m.tokens.clone(),
        );
        registry.register(
            "stream_breaks",
            "Streams that broke after reaching the client, by target and kind",
            m.stream_breaks.clone(),
        );
        registry.register(
            "stream_recoveries",
            "What was done about broken streams (continue, restart, end)",
            m.recoveries.clone(),
        );
        registry.register("cache_lookups", "Response cache lookups by degraded requests (hit, miss)", m.cache.clone());
        registry.register(
            "breaker_state",
            "A target's circuit breaker: 0 closed, 1 half-open, 2 open",
            m.breaker.clone(),
        );
        registry.register("inflight", "Attempts in flight per target", m.inflight.clone());
        registry.register(
            "retry_budget_remaining",
            "Retries the gateway-wide retry budget still allows in its window",
            m.retry_budget.clone(),
        );
        registry.register(
            "policy_decision_seconds",
            "Time a policy component took to decide, by policy and hook (route, on-attempt, on-stream-break)",
            m.decisions.clone(),
        );
        registry.register(
            "policy_fallbacks",
            "Decisions a policy version failed (by reason: trap, deadline_exceeded, invalid_decision, ...) and who answered instead (last_good, embedded, native)",
            m.fallbacks.clone(),
        );
        registry.register(
            "policy_instances_retired",
            "Warm policy instances dropped after a call because their linear memory had grown 2 MiB past init (a fresh one from the shared image replaces each)",
            m.retired.clone(),
        );
        registry.register(
            "policy_loads",
            "Policy versions by what became of them: loaded, rejected, demoted, removed",
            m.loads.clone(),
        );
        registry.register(
            "policy_info",
            "The version serving each policy name (1), with its origin (embedded, file)",
            m.policy_info.clone(),
        );
        registry.register("config_reloads", "Config reloads: ok or rejected", m.reloads.clone());
        registry.register(
            "webhook_deliveries",
            "Incident webhook posts: delivered, failed (after every retry), dropped (queue full)",
            m.webhooks.clone(),
        );
        registry.register(
            "key_requests",
            "Chat requests per gateway key, by result: admitted, or refused (route, concurrency, requests, tokens, budget)",
            m.key_requests.clone(),
        );
        registry.register(
            "key_tokens",
            "Tokens per gateway key as providers counted them, by direction (in, out)",
            m.key_tokens.clone(),
        );
        registry.register(
            "spend_usd",
            "US dollars spent, by gateway key, route and target (the targets' configured prices)",
            m.spend.clone(),
        );
        registry.register(
            "queue_shed",
            "Requests shed while waiting for a provider's quota, by route and reason (queue_full, expired)",
            m.shed.clone(),
        );
        registry.register(
            "queue_wait_seconds",
            "How long requests waited for a provider's quota before being sent, by route",
            m.queue_wait.clone(),
        );
        Arc::new(Registry { registry, ..m })
    }

    /// Turns counting on the request path on or off (`[metrics] enabled`).
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    fn on(&self) -> bool {
        self.enabled.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn decision(&self, policy: &str, hook: &'static str, took: Duration) {
        if !self.on() {
            return;
        }
        let labels = DecisionLabels { policy: policy.to_owned(), hook };
        self.decisions.get_or_create(&labels).observe(took.as_secs_f64());
    }

    pub fn fallback(&self, policy: &str, reason: &'static str, to: &'static str) {
        if !self.on() {
            return;
        }
        self.fallbacks.get_or_create(&FallbackLabels { policy: policy.to_owned(), reason, to }).inc();
    }

    pub fn instances_retired(&self, policy: &str, count: u64) {
        self.retired.get_or_create(&PolicyLabel { policy: policy.to_owned() }).inc_by(count);
    }

    pub fn policy_load(&self, policy: &str, result: &'static str) {
        self.loads.get_or_create(&LoadLabels { policy: policy.to_owned(), result }).inc();
    }

    pub fn reload(&self, ok: bool) {
        self.reloads.get_or_create(&ResultLabels { result: if ok { "ok" } else { "rejected" } }).inc();
    }

    pub fn webhook(&self, result: &'static str) {
        self.webhooks.get_or_create(&ResultLabels { result }).inc();
    }
}

impl Metrics {
    /// The view of `registry` for a generation whose targets are `targets`
    /// and whose routes are `routes` (labels, by index).
    pub fn new(
        registry: Arc<Registry>,
        targets: Vec<String>,
        routes: Vec<Name>,
        history: &crate::history::History,
        health: Arc<HealthBook>,
    ) -> Metrics {
        let history = targets.iter().map(|t| history.of(t)).collect();
        let target_cells = targets.iter().map(|_| TargetCells::default()).collect();
        let routes = routes.into_iter().map(|r| (r, RouteCells::default())).collect();
        Metrics {
            registry,
            targets: targets.into_iter().map(Arc::new).collect(),
            target_cells,
            routes,
            history,
            health,
        }
    }

    /// Target `index`'s last hour.
    pub fn history(&self, index: u32) -> Option<&Arc<crate::history::TargetHistory>> {
        self.history.get(index as usize)
    }

    fn target(&self, target: u32) -> Name {
        self.targets.get(target as usize).cloned().unwrap_or_else(|| Arc::new("unknown".into()))
    }

    /// A chat request to route `route` (its index) was answered (`latency`:
    /// to the answer, or a stream's end).
    pub fn request(&self, route: usize, api: Api, status: u16, degraded: Option<&'static str>, latency: Duration) {
        if !self.registry.on() {
            return;
        }
        let Some((name, cells)) = self.routes.get(route) else { return };
        let (i, api) = (api_index(api), api_label(api));
        let requests = |status, degraded: Option<&'static str>| {
            let labels = RequestLabels { route: name.clone(), api, status, degraded: degraded.unwrap_or("no") };
            self.registry.requests.get_or_create_owned(&labels)
        };
        match (status, degraded) {
            (200, None) => cells.answered[i].get(|| requests(200, None)).inc(),
            _ => requests(status, degraded).inc(),
        };
        let duration = || self.registry.request_duration.get_or_create_owned(&RouteLabels { route: name.clone(), api });
        cells.duration[i].get(duration).observe(latency.as_secs_f64());
    }

    pub fn first_token(&self, route: usize, api: Api, after: Duration) {
        if !self.registry.on() {
            return;
        }
        let Some((name, cells)) = self.routes.get(route) else { return };
        let (i, api) = (api_index(api), api_label(api));
        let make = || self.registry.first_token.get_or_create_owned(&RouteLabels { route: name.clone(), api });
        cells.first_token[i].get(make).observe(after.as_secs_f64());
    }

    pub fn attempt(&self, target_index: u32, kind: OutcomeKind, took: Duration) {
        let target = self.target(target_index);
        let cells = self.target_cells.get(target_index as usize);
        let outcome = crate::access_log::outcome_name(kind);
        let attempts =
            || self.registry.attempts.get_or_create_owned(&AttemptLabels { target: target.clone(), outcome });
        match cells.filter(|_| kind == OutcomeKind::Success) {
            Some(cells) => cells.success.get(attempts).inc(),
            None => attempts().inc(),
        };
        // The status page's hour is kept even with metrics off.
        if let Some(history) = self.history.get(target_index as usize) {
            history.record(kind == OutcomeKind::Success, took);
        }
        if !self.registry.on() {
            return;
        }
        if let (OutcomeKind::Success, Some(cells)) = (kind, cells) {
            let make = || self.registry.upstream_latency.get_or_create_owned(&TargetLabels { target: target.clone() });
            cells.latency.get(make).observe(took.as_secs_f64());
        }
    }

    pub fn tokens(&self, target: u32, usage: Usage) {
        if !self.registry.on() {
            return;
        }
        let Some(cells) = self.target_cells.get(target as usize) else { return };
        for (i, (direction, n)) in [("in", usage.input), ("out", usage.output)].into_iter().enumerate() {
            if let Some(n) = n {
                let make = || {
                    let labels = TokenLabels { target: self.target(target), direction };
                    self.registry.tokens.get_or_create_owned(&labels)
                };
                cells.tokens[i].get(make).inc_by(n);
            }
        }
    }

    /// A gateway key's request, let in (`"admitted"`) or refused (why).
    pub fn key_request(&self, key: &Name, result: &'static str) {
        if self.registry.on() {
            self.registry.key_requests.get_or_create(&KeyLabels { key: key.clone(), result }).inc();
        }
    }

    /// What a key's request used: tokens, and dollars at `target` on `route`.
    pub fn key_usage(&self, key: &Name, route: &Name, target: u32, usage: Usage, spend_usd: f64) {
        if !self.registry.on() {
            return;
        }
        for (direction, n) in [("in", usage.input), ("out", usage.output)] {
            if let Some(n) = n {
                self.registry.key_tokens.get_or_create(&KeyTokenLabels { key: key.clone(), direction }).inc_by(n);
            }
        }
        if spend_usd > 0.0 {
            let labels = SpendLabels { key: key.clone(), route: route.clone(), target: self.target(target) };
            self.registry.spend.get_or_create(&labels).inc_by(spend_usd);
        }
    }

    /// A request shed from `route`'s queue (`queue_full`, `expired`).
    pub fn shed(&self, route: &Name, reason: &'static str) {
        if self.registry.on() {
            self.registry.shed.get_or_create(&ShedLabels { route: route.clone(), reason }).inc();
        }
    }

    /// A request of `route` waited `took` for a quota.
    pub fn queue_wait(&self, route: &Name, took: Duration) {
        if self.registry.on() {
            self.registry.queue_wait.get_or_create(&RouteOnly { route: route.clone() }).observe(took.as_secs_f64());
        }
    }

    pub fn stream_break(&self, target: u32, kind: &'static str) {
        if !self.registry.on() {
            return;
        }
        self.registry.stream_breaks.get_or_create(&BreakLabels { target: self.target(target), kind }).inc();
    }

    pub fn recovery(&self, how: &'static str) {
        if !self.registry.on() {
            return;
        }
        self.registry.recoveries.get_or_create(&RecoveryLabels { how }).inc();
    }

    pub fn cache_lookup(&self, hit: bool) {
        if !self.registry.on() {
            return;
        }
        self.registry.cache.get_or_create(&CacheLabels { result: if hit { "hit" } else { "miss" } }).inc();
    }

    /// The text a scrape gets (OpenMetrics), with the state gauges read now
    /// (`retry_budget`: the retries the budget allows now; `policies`: what
    /// serves each policy name; `shadows`: shadow mode's comparisons).
    pub fn render(
        &self,
        retry_budget: u32,
        policies: &[switchyard_policy_host::SlotView],
        shadows: Vec<switchyard_policy_host::shadow::ShadowReport>,
    ) -> String {
        *self.registry.shadows.lock().unwrap_or_else(|p| p.into_inner()) = shadows;
        // Gauges of this generation only: a target or version gone with a
        // reload leaves no stale series.
        self.registry.breaker.clear();
        self.registry.inflight.clear();
        self.registry.policy_info.clear();
        for view in policies {
            let Some(current) = &view.current else { continue };
            let origin = match current.origin() {
                switchyard_policy_host::PolicyOrigin::Embedded => "embedded",
                switchyard_policy_host::PolicyOrigin::File(_) => "file",
            };
            let version = current.sha256().get(..12).unwrap_or_default().to_owned();
            self.registry
                .policy_info
                .get_or_create(&PolicyInfoLabels { policy: view.name.clone(), version, origin })
                .set(1);
        }
        self.registry.retry_budget.set(i64::from(retry_budget));
        for (i, target) in self.targets.iter().enumerate() {
            let Some(h) = self.health.get(i as u32) else { continue };
            let state = match h.breaker {
                BreakerState::Closed => 0,
                BreakerState::HalfOpen => 1,
                BreakerState::Open => 2,
            };
            let labels = TargetLabels { target: target.clone() };
            self.registry.breaker.get_or_create(&labels).set(state);
            self.registry.inflight.get_or_create(&labels).set(i64::from(h.inflight));
        }
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry.registry);
        out
    }
}

/// The classic Prometheus text format (0.0.4) of an OpenMetrics text: what
/// `promtool check metrics` and scrapers that do not ask for OpenMetrics
/// read. Counters' HELP and TYPE name the `_total` series, and there is no
/// `# EOF`.
pub fn classic_text(open_metrics: &str) -> String {
    let mut out = String::with_capacity(open_metrics.len());
    let mut help: Option<&str> = None;
    for line in open_metrics.lines() {
        if line == "# EOF" {
            continue;
        }
        if line.starts_with("# HELP ") {
            help = Some(line);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let name = if kind == "counter" { format!("{name}_total") } else { name.to_owned() };
            if let Some(help) = help.take() {
                let text = help.splitn(4, ' ').nth(3).unwrap_or_default();
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_classic_format_names_counters_total_and_has_no_eof() {
        let open = "# HELP x_requests Requests.\n# TYPE x_requests counter\nx_requests_total{a=\"b\"} 2\n# HELP x_up Up.\n# TYPE x_up gauge\nx_up 1\n# EOF\n";
        assert_eq!(
            classic_text(open),
            "# HELP x_requests_total Requests.\n# TYPE x_requests_total counter\nx_requests_total{a=\"b\"} 2\n# HELP x_up Up.\n# TYPE x_up gauge\nx_up 1\n"
        );
    }
}
