//! The gateway's Prometheus metrics: one registry per gateway (so several
//! gateways in one process never mix), names prefixed `switchyard_`, labels
//! only from config names (route, target, policy) and small enums, never
//! from client input. Counters and histograms move on the request path (a
//! hash of the label set and an atomic add); gauges of state the health book
//! already keeps (breaker, in flight) are read when scraped.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use switchyard_policy_host::{BreakerState, HealthBook, OutcomeKind};
use switchyard_wire::Api;
use switchyard_wire::usage::Usage;

/// A route's name as a label (shared, so a label set clones cheaply).
pub(crate) type Name = Arc<String>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub route: Name,
    pub api: &'static str,
    pub status: u16,
    pub degraded: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteLabels {
    pub route: Name,
    pub api: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct AttemptLabels {
    pub target: Name,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TargetLabels {
    pub target: Name,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TokenLabels {
    pub target: Name,
    pub direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct BreakLabels {
    pub target: Name,
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RecoveryLabels {
    pub how: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CacheLabels {
    pub result: &'static str,
}

fn latency_histogram() -> Histogram {
    // 1 ms to ~9 min.
    Histogram::new(exponential_buckets(0.001, 2.0, 20))
}

/// Every metric of one gateway.
pub(crate) struct Metrics {
    registry: Registry,
    /// Per target index: its label (`provider/model`).
    targets: Vec<Name>,
    health: Arc<HealthBook>,
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
}

fn api_label(api: Api) -> &'static str {
    match api {
        Api::OpenAi => "openai",
        Api::Anthropic => "anthropic",
    }
}

impl Metrics {
    /// The metrics of a gateway whose targets are `targets` (labels, by index).
    pub fn new(targets: Vec<String>, health: Arc<HealthBook>) -> Metrics {
        let mut registry = Registry::with_prefix("switchyard");
        let m = Metrics {
            targets: targets.into_iter().map(Arc::new).collect(),
            health,
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
            registry: Registry::default(),
        };
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
        Metrics { registry, ..m }
    }

    fn target(&self, target: u32) -> Name {
        self.targets.get(target as usize).cloned().unwrap_or_else(|| Arc::new("unknown".into()))
    }

    /// A chat request was answered (`latency`: to the answer, or a stream's end).
    pub fn request(&self, route: &Name, api: Api, status: u16, degraded: Option<&'static str>, latency: Duration) {
        let api = api_label(api);
        let labels = RequestLabels { route: route.clone(), api, status, degraded: degraded.unwrap_or("no") };
        self.requests.get_or_create(&labels).inc();
        let route = RouteLabels { route: route.clone(), api };
        self.request_duration.get_or_create(&route).observe(latency.as_secs_f64());
    }

    pub fn first_token(&self, route: &Name, api: Api, after: Duration) {
        let labels = RouteLabels { route: route.clone(), api: api_label(api) };
        self.first_token.get_or_create(&labels).observe(after.as_secs_f64());
    }

    pub fn attempt(&self, target: u32, kind: OutcomeKind, took: Duration) {
        let target = self.target(target);
        let outcome = crate::access_log::outcome_name(kind);
        self.attempts.get_or_create(&AttemptLabels { target: target.clone(), outcome }).inc();
        if kind == OutcomeKind::Success {
            self.upstream_latency.get_or_create(&TargetLabels { target }).observe(took.as_secs_f64());
        }
    }

    pub fn tokens(&self, target: u32, usage: Usage) {
        let target = self.target(target);
        for (direction, n) in [("in", usage.input), ("out", usage.output)] {
            if let Some(n) = n {
                self.tokens.get_or_create(&TokenLabels { target: target.clone(), direction }).inc_by(n);
            }
        }
    }

    pub fn stream_break(&self, target: u32, kind: &'static str) {
        self.stream_breaks.get_or_create(&BreakLabels { target: self.target(target), kind }).inc();
    }

    pub fn recovery(&self, how: &'static str) {
        self.recoveries.get_or_create(&RecoveryLabels { how }).inc();
    }

    pub fn cache_lookup(&self, hit: bool) {
        self.cache.get_or_create(&CacheLabels { result: if hit { "hit" } else { "miss" } }).inc();
    }

    /// The text a scrape gets (OpenMetrics), with the state gauges read now
    /// (`retry_budget`: the retries the budget allows now).
    pub fn render(&self, retry_budget: u32) -> String {
        self.retry_budget.set(i64::from(retry_budget));
        for (i, target) in self.targets.iter().enumerate() {
            let Some(h) = self.health.get(i as u32) else { continue };
            let state = match h.breaker {
                BreakerState::Closed => 0,
                BreakerState::HalfOpen => 1,
                BreakerState::Open => 2,
            };
            let labels = TargetLabels { target: target.clone() };
            self.breaker.get_or_create(&labels).set(state);
            self.inflight.get_or_create(&labels).set(i64::from(h.inflight));
        }
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
