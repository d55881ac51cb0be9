//! Provider quotas on the request path: each target's gates (its model's
//! `[providers.models."M"]` quota, then its provider's, then the gateway's
//! `[queue] max_concurrency`), the route queues
//! that bound how many requests wait at them, and the targets' prices.
//! Gates whose quota did not change are carried over a reload, with the
//! requests in flight and waiting at them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use switchyard_access::gate::{Gate, Permit, Shed, Waiting};
use switchyard_config::{Config, Priority};
use switchyard_policy_host::Topology;
use switchyard_wire::usage::Usage;

/// The gates, queues and prices of one config generation.
pub(crate) struct Quotas {
    /// Per target index: the gates an attempt there passes, model first.
    per_target: Vec<Vec<Arc<Gate>>>,
    /// Per target index: US dollars per million (input, output) tokens.
    prices: Vec<(f64, f64)>,
    /// Per route index: its requests waiting at any gate.
    pub waiting: Vec<Arc<Waiting>>,
    /// `[queue] max_wait_ms`.
    pub max_wait: Duration,
    /// By provider, and by provider + model: the gates, for a reload and the admin API.
    providers: HashMap<String, Arc<Gate>>,
    models: HashMap<(String, String), Arc<Gate>>,
    /// `[queue] max_concurrency`: every attempt's last gate.
    gateway: Option<Arc<Gate>>,
}

/// The places an attempt holds at its target's gates (none when the target
/// has no quota); dropping it lets the next waiters in.
#[derive(Debug, Default)]
pub(crate) struct Permits {
    _held: Vec<Permit>,
}

impl Quotas {
    pub fn new(config: &Config, topology: &Topology, before: Option<&Quotas>) -> Quotas {
        let carried = |gate: Option<&Arc<Gate>>, quota: switchyard_config::Quota| match gate {
            Some(g) if g.quota() == quota => g.clone(),
            _ => Gate::new(quota),
        };
        let mut providers = HashMap::new();
        let mut models = HashMap::new();
        for p in &config.providers {
            let name = p.name.get_ref();
            if !p.quota().is_unlimited() {
                let gate = carried(before.and_then(|b| b.providers.get(name)), p.quota());
                providers.insert(name.clone(), gate);
            }
            for (model, settings) in p.models.iter().filter(|(_, m)| !m.quota().is_unlimited()) {
                let key = (name.clone(), model.clone());
                let gate = carried(before.and_then(|b| b.models.get(&key)), settings.quota());
                models.insert(key, gate);
            }
        }
        let gateway = config.queue.max_concurrency.map(|max| {
            let quota = switchyard_config::Quota { max_concurrency: Some(max), ..Default::default() };
            carried(before.and_then(|b| b.gateway.as_ref()), quota)
        });
        let settings = |t: &switchyard_policy_host::Target| {
            config.providers.iter().find(|p| p.name.get_ref() == &t.provider).and_then(|p| p.models.get(&t.model))
        };
        let per_target = topology
            .targets
            .iter()
            .map(|t| {
                let model = models.get(&(t.provider.clone(), t.model.clone()));
                model.into_iter().chain(providers.get(&t.provider)).chain(gateway.as_ref()).cloned().collect()
            })
            .collect();
        let prices = topology
            .targets
            .iter()
            .map(|t| {
                let m = settings(t);
                let price = |f: fn(&switchyard_config::ModelSettings) -> Option<f64>| m.and_then(f).unwrap_or(0.0);
                (price(|m| m.input_usd_per_mtok), price(|m| m.output_usd_per_mtok))
            })
            .collect();
        let waiting = config.routes.iter().map(|_| Arc::new(Waiting::new(config.queue.max_waiting))).collect();
        Quotas {
            per_target,
            prices,
            waiting,
            max_wait: Duration::from_millis(config.queue.max_wait_ms),
            providers,
            models,
            gateway,
        }
    }

    /// Waits (up to `wait`) for a place at each of `target`'s gates, for a
    /// request of `route` with `tokens` estimated input tokens.
    pub async fn enter(
        &self,
        target: u32,
        route: usize,
        priority: Priority,
        tokens: u32,
        wait: Duration,
    ) -> Result<Permits, Shed> {
        let gates = &self.per_target[target as usize];
        if gates.is_empty() {
            return Ok(Permits::default());
        }
        let waiting = &self.waiting[route];
        let until = tokio::time::Instant::now() + wait;
        let mut held = Vec::with_capacity(gates.len());
        for gate in gates {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            held.push(gate.enter(priority, tokens, left, waiting).await?);
        }
        Ok(Permits { _held: held })
    }

    /// A place at each of `target`'s gates now, or `None` (never waits).
    pub fn try_enter(&self, target: u32, priority: Priority, tokens: u32) -> Option<Permits> {
        let held: Option<Vec<Permit>> =
            self.per_target[target as usize].iter().map(|g| g.try_enter(priority, tokens)).collect();
        held.map(|held| Permits { _held: held })
    }

    /// Corrects `target`'s token rates by the answer's real tokens.
    pub fn settle(&self, target: u32, estimate: u32, usage: Usage) {
        let real = usage.input.unwrap_or(0) + usage.output.unwrap_or(0);
        if real == 0 {
            return;
        }
        for gate in &self.per_target[target as usize] {
            gate.settle(i64::try_from(real).unwrap_or(i64::MAX) - i64::from(estimate));
        }
    }

    /// What `usage` at `target` cost, in US dollars.
    pub fn price(&self, target: u32, usage: Usage) -> f64 {
        let (input, output) = self.prices[target as usize];
        (usage.input.unwrap_or(0) as f64 * input + usage.output.unwrap_or(0) as f64 * output) / 1e6
    }

    /// Each gate's state, for the admin API: (name, quota, in flight, waiting).
    pub fn gates(&self) -> Vec<(String, switchyard_config::Quota, u32, usize)> {
        let providers = self.providers.iter().map(|(p, g)| (p.clone(), g));
        let models = self.models.iter().map(|((p, m), g)| (format!("{p}/{m}"), g));
        let gateway = self.gateway.iter().map(|g| ("(gateway)".to_owned(), g));
        let mut out: Vec<_> = providers
            .chain(models)
            .chain(gateway)
            .map(|(name, gate)| {
                let (inflight, waiting) = gate.load();
                (name, gate.quota(), inflight, waiting)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// What an attempt holds while it runs: its place in the target's in-flight
/// count (a half-open breaker's probe slot with it) and its quota places.
pub(crate) struct Hold {
    _inflight: switchyard_policy_host::health::InflightGuard,
    _permits: Permits,
}

impl Hold {
    pub fn new(inflight: switchyard_policy_host::health::InflightGuard, permits: Permits) -> Hold {
        Hold { _inflight: inflight, _permits: permits }
    }
}
