//! [`Telemetry`]: the metrics registry, the event log, each target's last
//! hour, the policies' decision times and the tracer, for the gateway's
//! whole life; and what turns the policy host's and the health book's news
//! into events and metrics.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use switchyard_policy_host::{BreakerState, DecisionObserver, FallbackTo, HealthBook, Hook, PolicyEvent, Topology};

use crate::events::{Events, Severity};

/// Decision times kept per policy for the admin API's p50/p99.
const DECISION_SAMPLES: usize = 1024;
/// A policy's fallbacks make at most one event per reason this often.
const FALLBACK_EVENT_EVERY: Duration = Duration::from_secs(60);

/// The latest decision times of one policy, µs.
#[derive(Default)]
struct Samples(Mutex<VecDeque<f32>>);

pub struct Telemetry {
    pub events: Arc<Events>,
    pub registry: Arc<crate::metrics::Registry>,
    pub history: crate::history::History,
    /// OpenTelemetry traces (`None`: off).
    pub traces: Option<Arc<crate::traces::Traces>>,
    decisions: RwLock<HashMap<String, Arc<Samples>>>,
    fallbacks: Mutex<HashMap<(String, &'static str), FallbackTally>>,
}

/// Per (policy, reason): when the last event about it went out, and how many so far.
type FallbackTally = (Option<Instant>, u64);

/// A policy's decision times: (p50, p99) in µs, and how many were sampled.
#[derive(Debug, Clone, Copy)]
pub struct DecisionTimes {
    pub p50_us: f32,
    pub p99_us: f32,
    pub samples: usize,
}

impl Telemetry {
    pub fn new(traces: Option<Arc<crate::traces::Traces>>) -> Arc<Telemetry> {
        Arc::new(Telemetry {
            events: Events::new(),
            registry: crate::metrics::Registry::new(),
            history: Default::default(),
            traces,
            decisions: Default::default(),
            fallbacks: Default::default(),
        })
    }

    /// The recent decision times of `policy`, if it decided.
    pub fn decision_times(&self, policy: &str) -> Option<DecisionTimes> {
        let samples = self.decisions.read().unwrap_or_else(|p| p.into_inner()).get(policy)?.clone();
        let mut sorted: Vec<f32> = samples.0.lock().unwrap_or_else(|p| p.into_inner()).iter().copied().collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f32::total_cmp);
        let at = |q: f32| sorted[((sorted.len() - 1) as f32 * q).round() as usize];
        Some(DecisionTimes { p50_us: at(0.5), p99_us: at(0.99), samples: sorted.len() })
    }

    /// Fallbacks of `policy` so far, all reasons.
    pub fn fallbacks_of(&self, policy: &str) -> u64 {
        let fallbacks = self.fallbacks.lock().unwrap_or_else(|p| p.into_inner());
        fallbacks.iter().filter(|((p, _), _)| p == policy).map(|(_, (_, n))| n).sum()
    }

    /// Turns a policy host's news into events and counts, until the host is gone.
    pub fn follow_policies(self: &Arc<Self>, mut news: tokio::sync::broadcast::Receiver<PolicyEvent>) {
        let telemetry = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let event = match news.recv().await {
                    Ok(event) => event,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                let Some(telemetry) = telemetry.upgrade() else { return };
                telemetry.policy_news(event);
            }
        });
    }

    fn policy_news(&self, event: PolicyEvent) {
        let (events, registry) = (&self.events, &self.registry);
        match event {
            PolicyEvent::Loaded { name, label, load_ms, from_cache } => {
                registry.policy_load(&name, "loaded");
                let cached = if from_cache { ", compiled artifact from the cache" } else { "" };
                events.emit(
                    "policy_loaded",
                    Severity::Info,
                    name,
                    format!("{label} serves (loaded in {load_ms} ms{cached})"),
                );
            }
            PolicyEvent::Rejected { name, path, error, serving } => {
                registry.policy_load(&name, "rejected");
                let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
                events.emit("policy_rejected", Severity::Warning, name, format!("{file} refused: {error}; {serving}"));
            }
            PolicyEvent::Demoted { name, label, reason } => {
                registry.policy_load(&name, "demoted");
                events.emit(
                    "policy_demoted",
                    Severity::Warning,
                    name,
                    format!("{label} is no longer called: {reason}"),
                );
            }
            PolicyEvent::CanaryStarted { name, label, serving, share, window_ms } => {
                registry.policy_load(&name, "canary");
                events.emit(
                    "policy_canary",
                    Severity::Info,
                    name,
                    format!(
                        "{label} decides for {:.0} % of requests for {} s; {serving} for the rest",
                        share * 100.0,
                        window_ms / 1000
                    ),
                );
            }
            PolicyEvent::CanaryPromoted { name, label } => {
                registry.policy_load(&name, "promoted");
                events.emit(
                    "policy_promoted",
                    Severity::Info,
                    name,
                    format!("{label} passed its canary window: it serves every request"),
                );
            }
            PolicyEvent::Removed { name, now } => {
                registry.policy_load(&name, "removed");
                let now = now
                    .map_or("the default policy or the native fallback decides".to_owned(), |l| format!("{l} serves"));
                events.emit("policy_removed", Severity::Info, name, format!("its file was removed; {now}"));
            }
        }
    }

    /// A breaker observer for a health book of `topology`'s targets: each
    /// move becomes an event, and so does a route losing its last healthy
    /// target (`route_down`) or getting one back (`route_recovered`).
    pub fn breaker_observer(
        self: &Arc<Self>,
        topology: Arc<Topology>,
    ) -> (switchyard_policy_host::BreakerObserver, BreakerWatch) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<(u32, BreakerState, BreakerState)>();
        let observer: switchyard_policy_host::BreakerObserver = Arc::new(move |target, from, to| {
            let _ = tx.send((target, from, to));
        });
        (observer, BreakerWatch { telemetry: Arc::downgrade(self), topology, moves: rx })
    }
}

/// Follows one health book's breaker moves (see [`Telemetry::breaker_observer`]).
pub struct BreakerWatch {
    telemetry: Weak<Telemetry>,
    topology: Arc<Topology>,
    moves: tokio::sync::mpsc::UnboundedReceiver<(u32, BreakerState, BreakerState)>,
}

fn state_name(state: BreakerState) -> &'static str {
    match state {
        BreakerState::Closed => "closed",
        BreakerState::HalfOpen => "half-open",
        BreakerState::Open => "open",
    }
}

impl BreakerWatch {
    /// Runs until the health book is gone. `routes_down` starts with the
    /// routes a previous generation had down (by name), so a reload neither
    /// repeats nor loses an outage.
    pub fn start(mut self, health: Weak<HealthBook>, routes_down: Arc<Mutex<std::collections::HashSet<String>>>) {
        tokio::spawn(async move {
            while let Some((target, from, to)) = self.moves.recv().await {
                let (Some(telemetry), Some(health)) = (self.telemetry.upgrade(), health.upgrade()) else { return };
                let name = self.topology.targets.get(target as usize).map(|t| format!("{}/{}", t.provider, t.model));
                let name = name.unwrap_or_default();
                let h = health.get(target);
                let forced = health.forced(target);
                let (kind, severity, message) = match (forced, to) {
                    (Some(_), state) => (
                        "breaker_forced",
                        Severity::Warning,
                        format!("an operator forced the breaker {} (was {})", state_name(state), state_name(from)),
                    ),
                    (None, BreakerState::Open) => (
                        "breaker_opened",
                        Severity::Warning,
                        match h {
                            Some(h) => format!(
                                "no traffic until a probe succeeds: {} failures in a row, error rate {:.0}%",
                                h.consecutive_failures,
                                h.error_rate * 100.0
                            ),
                            None => "no traffic until a probe succeeds".to_owned(),
                        },
                    ),
                    (None, BreakerState::Closed) => {
                        ("breaker_closed", Severity::Info, format!("traffic flows again (was {})", state_name(from)))
                    }
                    (None, BreakerState::HalfOpen) => continue,
                };
                telemetry.events.emit(kind, severity, name, message);
                self.check_routes(&telemetry, &health, target, &routes_down);
            }
        });
    }

    /// The routes of `target`: any with no target admitting traffic is down.
    fn check_routes(
        &self,
        telemetry: &Telemetry,
        health: &HealthBook,
        target: u32,
        down: &Mutex<std::collections::HashSet<String>>,
    ) {
        for route in self.topology.routes.iter().filter(|r| r.targets.contains(&target)) {
            let healthy = route.targets.iter().any(|&t| health.get(t).is_some_and(|h| h.breaker != BreakerState::Open));
            let mut down = down.lock().unwrap_or_else(|p| p.into_inner());
            if !healthy && down.insert(route.model.clone()) {
                telemetry.events.emit(
                    "route_down",
                    Severity::Critical,
                    route.model.clone(),
                    "no healthy target: every breaker of the route is open; clients get degraded answers or 503 with Retry-After",
                );
            } else if healthy && down.remove(&route.model) {
                telemetry.events.emit(
                    "route_recovered",
                    Severity::Info,
                    route.model.clone(),
                    "a target of the route takes traffic again",
                );
            }
        }
    }
}

impl DecisionObserver for Telemetry {
    fn decided(&self, policy: &str, hook: Hook, took: Duration) {
        self.registry.decision(policy, hook.name(), took);
        let samples = self.decisions.read().unwrap_or_else(|p| p.into_inner()).get(policy).cloned();
        let samples = samples.unwrap_or_else(|| {
            self.decisions.write().unwrap_or_else(|p| p.into_inner()).entry(policy.to_owned()).or_default().clone()
        });
        let mut samples = samples.0.lock().unwrap_or_else(|p| p.into_inner());
        if samples.len() == DECISION_SAMPLES {
            samples.pop_front();
        }
        samples.push_back(took.as_secs_f32() * 1e6);
    }

    fn instances_retired(&self, policy: &str, count: u64) {
        self.registry.instances_retired(policy, count);
    }

    fn fell_back(&self, policy: &str, hook: Hook, reason: &'static str, to: FallbackTo) {
        self.registry.fallback(policy, reason, to.name());
        let tell = {
            let mut fallbacks = self.fallbacks.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let entry = fallbacks.entry((policy.to_owned(), reason)).or_insert((None, 0));
            entry.1 += 1;
            let due = entry.0.is_none_or(|last| now.duration_since(last) >= FALLBACK_EVENT_EVERY);
            if due {
                entry.0 = Some(now);
            }
            due.then_some(entry.1)
        };
        if let Some(count) = tell {
            self.events.emit(
                "policy_fallback",
                Severity::Warning,
                policy,
                format!(
                    "{} failed ({reason}); the {} answered instead ({count} such fallbacks so far; at most one event a minute)",
                    hook.name(),
                    match to {
                        FallbackTo::LastGood => "last good version",
                        FallbackTo::Embedded => "embedded version",
                        FallbackTo::Native => "native fallback",
                    }
                ),
            );
        }
    }
}
