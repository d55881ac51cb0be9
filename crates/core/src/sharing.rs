//! `[state] backend = "redis"`: this gateway's side of the state its
//! instances share (`crates/state`). Each generation's health book tells
//! its moves to [`Sharing::publisher`]; what other instances publish is
//! applied to the serving generation's book by [`LiveHealth`]. Requests read
//! only their own book.

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use switchyard_config::{Config, StateBackend};
use switchyard_policy_host::{HealthPublisher, SharedMove, Topology};
use switchyard_state::{HealthShare, HealthSink, LinkOptions, RedisLink, SharedTrip};

use crate::gateway::{Env, GatewayError, Live};

/// The shared state of a gateway whose `[state]` backend is Redis.
pub(crate) struct Sharing {
    pub link: Arc<RedisLink>,
    pub health: Arc<HealthShare>,
    /// The response cache's shared store.
    pub cache: Arc<switchyard_state::CacheStore>,
    /// The policies' shared state (`state-*` imports).
    pub policy_state: Arc<switchyard_state::RedisPolicyState>,
    /// Gateway keys' request and token rates.
    pub rates: Arc<switchyard_state::RedisRates>,
    /// Active probes, one instance at a time.
    pub probe_leases: Arc<switchyard_state::ProbeLeases>,
    live: Arc<OnceLock<Weak<Live>>>,
}

/// Connects to the shared state `config` names, or `None` for the
/// in-memory backend. Fails on a missing or unusable URL; a Redis that is
/// down does not fail it (the instance serves on its own state meanwhile).
pub(crate) fn start(config: &Config, env: &Env) -> Result<Option<Sharing>, GatewayError> {
    let state = &config.state;
    if state.backend == StateBackend::Memory {
        return Ok(None);
    }
    let url = env(&state.url_env).ok_or_else(|| {
        GatewayError::State(format!("environment variable {} (state.url_env) is not set", state.url_env))
    })?;
    let ca_pem = match &state.ca_file {
        Some(file) => {
            let path = config.base_dir.join(file);
            Some(std::fs::read(&path).map_err(|e| GatewayError::State(format!("ca_file {}: {e}", path.display())))?)
        }
        None => None,
    };
    let options =
        LinkOptions { url, prefix: state.prefix.clone(), timeout: Duration::from_millis(state.timeout_ms), ca_pem };
    // The URL (it may hold a password) is never part of the error.
    let link = RedisLink::connect(&options).map_err(|_| {
        GatewayError::State(format!(
            "the URL in {} is not a redis://, rediss:// (TLS) or valkey:// URL, or ca_file is not a PEM certificate",
            state.url_env
        ))
    })?;
    let live = Arc::new(OnceLock::new());
    // Together the instances trip a breaker on as many failures as one
    // would, counted over the window a breaker's error rate looks back on.
    let trip = SharedTrip { failures: config.breaker.failures.max(1), window: Duration::from_secs(30) };
    let health = HealthShare::start(link.clone(), Arc::new(LiveHealth(live.clone())), trip);
    let cache = Arc::new(switchyard_state::CacheStore::new(link.clone()));
    let policy_state = Arc::new(switchyard_state::RedisPolicyState::new(link.clone()));
    let rates = switchyard_state::RedisRates::new(link.clone());
    let probe_leases = Arc::new(switchyard_state::ProbeLeases::new(link.clone()));
    Ok(Some(Sharing { link, health, cache, policy_state, rates, probe_leases, live }))
}

impl Sharing {
    /// From now on, what other instances publish is applied to `live`'s
    /// serving generation.
    pub fn attach(&self, live: &Arc<Live>) {
        let _ = self.live.set(Arc::downgrade(live));
    }

    /// `/metrics` shows the link's and the health news' figures.
    pub fn report_to(&self, telemetry: &switchyard_telemetry::Telemetry) {
        let (link, health) = (self.link.clone(), self.health.clone());
        telemetry.registry.follow_state(Arc::new(move || {
            let (l, h) = (link.counts(), health.counts());
            switchyard_telemetry::state_metrics::StateFigures {
                up: l.up,
                failures: l.failures,
                reconnects: l.reconnects,
                news_sent: h.sent,
                news_applied: h.applied,
                news_dropped: h.dropped,
            }
        }));
    }

    /// What a health book built for `topology` tells its moves to.
    pub fn publisher(&self, topology: &Topology) -> HealthPublisher {
        let names: Vec<String> = topology.targets.iter().map(|t| target_name(&t.provider, &t.model)).collect();
        let share = self.health.clone();
        Arc::new(move |target, shared| {
            if let Some(name) = names.get(target as usize) {
                share.tell(name, shared);
            }
        })
    }
}

/// How instances name a target to each other: `provider/model`.
fn target_name(provider: &str, model: &str) -> String {
    format!("{provider}/{model}")
}

/// Applies other instances' moves to the serving generation's health book.
struct LiveHealth(Arc<OnceLock<Weak<Live>>>);

impl LiveHealth {
    /// The serving generation and `target`'s index in it, if it has it.
    fn find(&self, target: &str) -> Option<(Arc<crate::gateway::Shared>, u32)> {
        let live = self.0.get().and_then(Weak::upgrade)?;
        let serving = live.shared();
        let index = serving.topology.targets.iter().position(|t| {
            target.strip_prefix(t.provider.as_str()).and_then(|rest| rest.strip_prefix('/')) == Some(t.model.as_str())
        })?;
        Some((serving, index as u32))
    }
}

impl HealthSink for LiveHealth {
    fn apply(&self, target: &str, shared: SharedMove) {
        if let Some((serving, index)) = self.find(target) {
            serving.health.apply_shared(index, shared);
        }
    }

    fn trip(&self, target: &str) {
        if let Some((serving, index)) = self.find(target) {
            serving.health.trip_shared(index);
        }
    }
}
