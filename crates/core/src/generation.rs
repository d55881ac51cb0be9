//! One config generation: everything built from one version of the config
//! file. A reload builds the next generation beside the serving one and
//! carries over what did not change — a provider with the same address,
//! key and TLS roots keeps its connection pool; a target of such a provider
//! keeps its health, breaker and in-flight count; the policy host (with its
//! warm instances and policy state) is kept when routes, targets, policy
//! settings and limits are all the same; the retry budget, the response
//! cache and the access log when their settings are.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchyard_config::{Api, Config};
use switchyard_policy_host::{BreakerConfig, HealthBook, HostOptions, PolicyError, PolicyHost, PolicyWatcher};
use tokio_util::sync::CancellationToken;

use crate::gateway::{Env, GatewayError, RouteEntry, Shared, policy_host_options, topology};
use crate::upstream::Provider;
use switchyard_telemetry::Telemetry;

/// What makes two provider definitions the same connection pool.
#[derive(PartialEq)]
struct ProviderPrint {
    api: Api,
    base_url: String,
    key: Option<String>,
    connect_timeout_ms: u64,
    ca: Option<Vec<u8>>,
}

pub(crate) struct Generation {
    pub shared: Arc<Shared>,
    pub config: Config,
    providers: HashMap<String, (ProviderPrint, Arc<Provider>)>,
    watcher: Arc<PolicyWatcher>,
    _probes: crate::probe::Probes,
    routes_down: Arc<Mutex<HashSet<String>>>,
}

/// What a generation took over from the one before (for the reload event).
#[derive(Debug, Default)]
pub(crate) struct Carried {
    pub providers_kept: usize,
    pub providers_new: usize,
    pub targets_kept: usize,
    pub targets_new: usize,
    pub policy_host_kept: bool,
}

fn breaker_config(config: &Config) -> BreakerConfig {
    let b = &config.breaker;
    BreakerConfig {
        failures: b.failures,
        error_rate: b.error_rate as f32,
        min_requests: b.min_requests as usize,
        cool_down: Duration::from_millis(b.cool_down_ms),
        max_cool_down: Duration::from_millis(b.max_cool_down_ms()),
        half_open_probes: b.half_open_probes,
    }
}

/// Every provider of `config`, the unchanged ones taken from `before`.
fn providers(
    config: &Config,
    env: &Env,
    before: Option<&Generation>,
    carried: &mut Carried,
    simulation: Option<&crate::simulation::Simulation>,
) -> Result<HashMap<String, (ProviderPrint, Arc<Provider>)>, GatewayError> {
    let mut keys = Vec::new();
    for p in &config.providers {
        keys.push(match &p.api_key_env {
            Some(var) => Some(
                env(var)
                    .ok_or_else(|| GatewayError::MissingKey { provider: p.name.get_ref().clone(), var: var.clone() })?,
            ),
            None => None,
        });
    }
    let secrets = Arc::new(crate::secrets::Secrets::new(keys.iter().flatten().map(String::as_str)));
    let mut providers = HashMap::new();
    for (p, key) in config.providers.iter().zip(keys) {
        let name = p.name.get_ref().clone();
        let ca = match &p.ca_file {
            Some(file) => {
                let path = config.base_dir.join(file);
                Some(std::fs::read(&path).map_err(|e| GatewayError::Provider {
                    provider: name.clone(),
                    reason: format!("ca_file {}: {e}", path.display()),
                })?)
            }
            None => None,
        };
        let print = ProviderPrint {
            api: p.api,
            base_url: p.base_url.get_ref().clone(),
            key,
            connect_timeout_ms: p.connect_timeout_ms,
            ca,
        };
        if let Some((_, kept)) = before.and_then(|b| b.providers.get(&name)).filter(|(old, _)| *old == print) {
            carried.providers_kept += 1;
            providers.insert(name, (print, kept.clone()));
            continue;
        }
        carried.providers_new += 1;
        let api = match p.api {
            Api::Anthropic => switchyard_wire::Api::Anthropic,
            Api::Openai => switchyard_wire::Api::OpenAi,
        };
        let provider = Provider::new(
            &name,
            api,
            &print.base_url,
            print.key.clone(),
            Duration::from_millis(p.connect_timeout_ms),
            print.ca.as_deref(),
            secrets.clone(),
            simulation.map(|s| s.dial.clone()),
        )
        .map_err(|reason| GatewayError::Provider { provider: name.clone(), reason })?;
        providers.insert(name, (print, Arc::new(provider)));
    }
    Ok(providers)
}

impl Generation {
    /// Builds the generation of `config`, carrying over from `before` what
    /// did not change; nothing of `before` is touched, so a failure leaves
    /// it serving as it was.
    pub async fn build(
        config: Config,
        env: &Env,
        telemetry: &Arc<Telemetry>,
        closing: &CancellationToken,
        sharing: Option<&crate::sharing::Sharing>,
        simulation: Option<&crate::simulation::Simulation>,
        before: Option<&Generation>,
    ) -> Result<(Generation, Carried), GatewayError> {
        let mut carried = Carried::default();
        let topology = Arc::new(topology(&config));
        let providers = providers(&config, env, before, &mut carried, simulation)?;
        let target_provider: Vec<Arc<Provider>> =
            topology.targets.iter().map(|t| providers[&t.provider].1.clone()).collect();

        // A target keeps its health when its provider is the same pool.
        let kept_target = |t: &switchyard_policy_host::Target| -> Option<u32> {
            let before = before?;
            let (print, _) = before.providers.get(&t.provider)?;
            if Some(print) != providers.get(&t.provider).map(|(p, _)| p) {
                return None;
            }
            before.shared.topology.targets.iter().position(|old| old == t).map(|i| i as u32)
        };
        let map: Vec<Option<u32>> = topology.targets.iter().map(kept_target).collect();
        carried.targets_kept = map.iter().flatten().count();
        carried.targets_new = map.len() - carried.targets_kept;

        let mut options = policy_host_options(&config);
        options.random_seed = simulation.map(|s| s.seed);
        let breaker = breaker_config(&config);
        // The policy host and its health book are kept together: the host's
        // policies read that book.
        let keep_host = before.filter(|b| {
            // (A simulation's seed is the gateway's, the same for every generation.)
            HostOptions { random_seed: options.random_seed, ..policy_host_options(&b.config) } == options
                && breaker_config(&b.config) == breaker
                && b.config.policy_dir() == config.policy_dir()
                && b.config.policy.rescan_interval_ms == config.policy.rescan_interval_ms
                && map.iter().enumerate().all(|(i, old)| *old == Some(i as u32))
        });
        let (health, policies, watcher) = match keep_host {
            Some(b) => {
                carried.policy_host_kept = true;
                (b.shared.health.clone(), b.shared.policies.clone(), b.watcher.clone())
            }
            None => {
                let (observer, breaker_watch) = telemetry.breaker_observer(topology.clone());
                let book = match before {
                    Some(b) => HealthBook::carrying(&b.shared.health, &map, breaker),
                    None => HealthBook::with_breaker(topology.targets.len(), breaker),
                };
                let book = book.with_observer(observer);
                let book = match sharing {
                    Some(sharing) => book.with_publisher(sharing.publisher(&topology)),
                    None => book,
                };
                let health = Arc::new(book);
                let routes_down = before.map(|b| b.routes_down.clone()).unwrap_or_default();
                breaker_watch.start(Arc::downgrade(&health), routes_down);
                let policies = PolicyHost::new(options, health.clone())?;
                if let Some(sharing) = sharing {
                    policies.share_state(sharing.policy_state.clone());
                }
                policies.observe(telemetry.clone());
                telemetry.follow_policies(policies.events());
                // The default policy decides for routes whose own policy is not
                // loaded, so it is loaded even when no route names it.
                // ...and so are shadow candidates, which no route needs to name.
                let in_use = config
                    .routes
                    .iter()
                    .map(|r| r.policy_name(&config.policy))
                    .chain([config.policy.default.as_str()])
                    .chain(config.policy.shadows.values().map(String::as_str));
                policies.load_embedded(in_use).await.map_err(|e| match e {
                    PolicyError::ConfigRejected(reason) => GatewayError::PolicySettings { reason },
                    other => GatewayError::Policy(other),
                })?;
                let every = Duration::from_millis(config.policy.rescan_interval_ms.max(100));
                let watcher = Arc::new(policies.watch(&config.policy_dir(), every).await?);
                (health, policies, watcher)
            }
        };

        let probes: Vec<crate::probe::Probe> = config
            .providers
            .iter()
            .filter_map(|p| {
                let kind = p.probe?;
                let name = p.name.get_ref();
                let targets = (0..topology.targets.len() as u32)
                    .filter(|&t| topology.targets[t as usize].provider == *name)
                    .map(|t| (t, topology.targets[t as usize].model.clone()))
                    .collect();
                Some(crate::probe::Probe {
                    provider: providers[name].1.clone(),
                    kind,
                    interval: Duration::from_millis(p.probe_interval_ms.max(10)),
                    targets,
                })
            })
            .collect();

        let routes: Vec<RouteEntry> = config
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| RouteEntry {
                index: i as u32,
                policy: r.policy_name(&config.policy).to_owned(),
                timeout: Duration::from_millis(r.timeout_ms),
                limits: crate::limits::RouteLimits::from_route(r),
                name: Arc::new(r.model.get_ref().clone()),
            })
            .collect();
        for route in &routes {
            if policies.current(&route.policy).is_none() {
                tracing::warn!(
                    policy = %route.policy,
                    "no policy of this name is embedded or in the policy folder: {} until one is dropped in",
                    policies.serving_description(&route.policy)
                );
            }
        }
        let routes_by_model: HashMap<String, usize> = config
            .routes
            .iter()
            .enumerate()
            .flat_map(|(i, r)| {
                std::iter::once(r.model.get_ref().clone()).chain(r.aliases.iter().cloned()).map(move |m| (m, i))
            })
            .collect();
        let models = crate::models::ModelsList::new(routes_by_model.keys());
        let wildcard = config.routes.iter().position(|r| r.model.get_ref() == "*");
        let metrics = switchyard_telemetry::metrics::Metrics::new(
            telemetry.registry.clone(),
            topology.targets.iter().map(|t| format!("{}/{}", t.provider, t.model)).collect(),
            routes.iter().map(|r| r.name.clone()).collect(),
            &telemetry.history,
            health.clone(),
        );
        let same = |f: &dyn Fn(&Config) -> bool| before.filter(|b| f(&b.config));
        let budget = match same(&|b| b.retry_budget == config.retry_budget) {
            Some(b) => b.shared.budget.clone(),
            None => Arc::new(crate::budget::RetryBudget::new(
                config.retry_budget.ratio,
                config.retry_budget.min_retries,
                Duration::from_millis(config.retry_budget.window_ms),
            )),
        };
        let cache = match same(&|b| b.cache == config.cache) {
            Some(b) => b.shared.cache.clone(),
            None => {
                let local = crate::cache::MemoryCache::new(crate::cache::CacheLimits {
                    ttl: Duration::from_millis(config.cache.ttl_ms),
                    max_entries: config.cache.max_entries,
                    max_body_bytes: config.cache.max_body_bytes,
                    max_bytes: config.cache.max_bytes,
                });
                let cache: Arc<dyn crate::cache::ResponseCache> = match sharing {
                    Some(s) => Arc::new(crate::shared_cache::SharedCache::new(local, s.cache.clone())),
                    None => Arc::new(local),
                };
                cache
            }
        };
        let access_log = match same(&|b| b.access_log() == config.access_log()) {
            Some(b) => b.shared.access_log.clone(),
            None => switchyard_telemetry::access_log::AccessLog::open(&config.access_log())?,
        };
        let shared_rates = sharing.map(|s| s.rates.clone() as Arc<dyn switchyard_access::shared::SharedRates>);
        let quotas =
            crate::quota::Quotas::new(&config, &topology, before.map(|b| &b.shared.quotas), shared_rates.clone());
        let shared = Shared {
            routes,
            routes_by_model,
            models,
            wildcard,
            target_provider,
            topology,
            policies,
            health,
            budget,
            cache,
            cache_enabled: config.cache.ttl_ms > 0 && config.cache.max_entries > 0 && config.cache.max_bytes > 0,
            max_body_bytes: config.max_body_bytes,
            timeouts: crate::limits::Defaults::from(&config.timeouts),
            access_log,
            metrics,
            telemetry: telemetry.clone(),
            closing: closing.clone(),
            keys: switchyard_access::KeyRing::new(&config, before.map(|b| &b.shared.keys)),
            quotas,
            shared_rates,
        };
        let probes = crate::probe::start(probes, &shared.health, sharing.map(|s| s.probe_leases.clone()));
        let routes_down = before.map(|b| b.routes_down.clone()).unwrap_or_default();
        telemetry.registry.set_enabled(config.metrics.enabled);
        let generation =
            Generation { shared: Arc::new(shared), config, providers, watcher, _probes: probes, routes_down };
        Ok((generation, carried))
    }
}
