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
use switchyard_access::shared::{RateAnswer, RateAsk, SharedRates};
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
    /// Per target index: the rates of its gates counted across instances
    /// (`[state] backend = "redis"`).
    shared_rates: Vec<Vec<SharedQuota>>,
    shared: Option<Arc<dyn SharedRates>>,
}

/// A quota's rates as instances count them together: (name, rpm, tpm).
type SharedQuota = (String, Option<u32>, Option<u32>);

/// The places an attempt holds at its target's gates (none when the target
/// has no quota); dropping it lets the next waiters in.
#[derive(Debug, Default)]
pub(crate) struct Permits {
    _held: Vec<Permit>,
}

impl Quotas {
    pub fn new(
        config: &Config,
        topology: &Topology,
        before: Option<&Quotas>,
        shared: Option<Arc<dyn SharedRates>>,
    ) -> Quotas {
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
        let rated = |name: String, quota: switchyard_config::Quota| {
            (quota.rpm.is_some() || quota.tpm.is_some()).then_some((name, quota.rpm, quota.tpm))
        };
        let shared_rates = topology
            .targets
            .iter()
            .map(|t| {
                let model = config
                    .providers
                    .iter()
                    .find(|p| p.name.get_ref() == &t.provider)
                    .and_then(|p| p.models.get(&t.model))
                    .and_then(|m| rated(format!("model:{}/{}", t.provider, t.model), m.quota()));
                let provider = config
                    .providers
                    .iter()
                    .find(|p| p.name.get_ref() == &t.provider)
                    .and_then(|p| rated(format!("provider:{}", t.provider), p.quota()));
                model.into_iter().chain(provider).collect()
            })
            .collect();
        Quotas {
            shared_rates,
            shared,
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
        if let Some(shared) = &self.shared {
            let members = shared.members();
            for gate in gates {
                gate.share(members);
            }
        }
        let until = tokio::time::Instant::now() + wait;
        let mut held = Vec::with_capacity(gates.len());
        for gate in gates {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            held.push(gate.enter(priority, tokens, left, waiting).await?);
        }
        self.enter_shared(target, tokens, until).await?;
        Ok(Permits { _held: held })
    }

    /// With instances sharing state: the target's provider and model rates
    /// across the cluster, one round trip each; over one, waits until it
    /// refills (within `until`). Redis not answering: this instance's
    /// gates (already passed) decide alone.
    async fn enter_shared(&self, target: u32, tokens: u32, until: tokio::time::Instant) -> Result<(), Shed> {
        let Some(shared) = &self.shared else { return Ok(()) };
        for (name, rpm, tpm) in &self.shared_rates[target as usize] {
            let ask = RateAsk { requests_per_minute: *rpm, tokens_per_minute: *tpm, tokens };
            loop {
                let limited = match shared.take(name, ask).await {
                    Some(RateAnswer::Requests(l) | RateAnswer::Tokens(l)) => l,
                    Some(RateAnswer::Admitted { .. }) | None => break,
                };
                let left = until.saturating_duration_since(tokio::time::Instant::now());
                if limited.retry_after >= left {
                    return Err(Shed::Expired { retry_after: limited.retry_after.max(Duration::from_secs(1)) });
                }
                tokio::time::sleep(limited.retry_after).await;
            }
        }
        Ok(())
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
        let delta = i64::try_from(real).unwrap_or(i64::MAX) - i64::from(estimate);
        for gate in &self.per_target[target as usize] {
            gate.settle(delta);
        }
        if let Some(shared) = &self.shared {
            for (name, _, tpm) in &self.shared_rates[target as usize] {
                if let Some(tpm) = tpm {
                    shared.settle_tokens(name, *tpm, delta);
                }
            }
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
