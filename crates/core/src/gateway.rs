//! Building a gateway from a config, and running it.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use switchyard_config::{Api, Config};
use switchyard_policy_host::{
    BreakerConfig, HealthBook, HostOptions, Limits, PolicyError, PolicyHost, PolicyWatcher, RouteInfo, Target, Topology,
};
use tokio::net::TcpListener;

use crate::upstream::Provider;

/// Why a gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A provider's key variable is named but not set.
    #[error("provider {provider:?}: environment variable {var} (api_key_env) is not set")]
    MissingKey {
        /// Provider name.
        provider: String,
        /// The variable.
        var: String,
    },
    /// A provider cannot be used.
    #[error("provider {provider:?}: {reason}")]
    Provider {
        /// Provider name.
        provider: String,
        /// Why.
        reason: String,
    },
    /// An embedded policy refused its `[policies.NAME]` settings.
    #[error("policy settings: {reason}")]
    PolicySettings {
        /// The policy's own words.
        reason: String,
    },
    /// The policy host failed to start or an embedded policy failed to load.
    #[error("policy host: {0}")]
    Policy(#[from] PolicyError),
    /// The access log file cannot be opened.
    #[error("[log] access: {0}")]
    AccessLog(std::io::Error),
}

/// One route as the request path needs it.
pub(crate) struct RouteEntry {
    pub index: u32,
    pub policy: String,
    pub timeout: Duration,
    /// The route's own attempt limits.
    pub limits: crate::limits::RouteLimits,
    /// Its name (the client-facing model), as a metrics label.
    pub name: crate::metrics::Name,
}

/// Everything a request handler reads; shared by all connections.
pub(crate) struct Shared {
    pub routes: Vec<RouteEntry>,
    pub routes_by_model: HashMap<String, usize>,
    /// `GET /v1/models`: every client-facing model name and alias.
    pub models: crate::models::ModelsList,
    pub wildcard: Option<usize>,
    /// Per target index: its provider.
    pub target_provider: Vec<Arc<Provider>>,
    pub topology: Arc<Topology>,
    pub policies: Arc<PolicyHost>,
    pub health: Arc<HealthBook>,
    pub budget: crate::budget::RetryBudget,
    pub cache: Arc<dyn crate::cache::ResponseCache>,
    pub cache_enabled: bool,
    pub max_body_bytes: usize,
    /// `[timeouts]`: attempt limits a route or plan does not set.
    pub timeouts: crate::limits::Defaults,
    /// One JSON line per request (`[log] access`).
    pub access_log: Arc<crate::access_log::AccessLog>,
    /// Prometheus metrics, served on the admin listener.
    pub metrics: crate::metrics::Metrics,
}

/// A configured gateway, ready to serve.
pub struct Gateway {
    shared: Arc<Shared>,
    _watcher: PolicyWatcher,
    _probes: crate::probe::Probes,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("routes", &self.shared.routes.len()).finish()
    }
}

fn topology(config: &Config) -> Topology {
    let mut targets: Vec<Target> = Vec::new();
    let routes = config
        .routes
        .iter()
        .map(|route| RouteInfo {
            model: route.model.get_ref().clone(),
            targets: route
                .targets
                .iter()
                .map(|t| {
                    let target = Target { provider: t.provider.get_ref().clone(), model: t.model.clone() };
                    let index = targets.iter().position(|x| *x == target).unwrap_or_else(|| {
                        targets.push(target);
                        targets.len() - 1
                    });
                    index as u32
                })
                .collect(),
        })
        .collect();
    Topology { targets, routes }
}

/// What the policy host needs from a config: topology, settings per policy
/// name, limits and the compile cache.
pub fn policy_host_options(config: &Config) -> HostOptions {
    let names =
        config.policies.keys().cloned().chain(config.routes.iter().map(|r| r.policy_name(&config.policy).to_owned()));
    let settings: BTreeMap<String, String> = names
        .map(|name| {
            let json = config.policy_settings_json(&name);
            (name, json)
        })
        .collect();
    HostOptions {
        topology: topology(config),
        settings,
        limits: Limits {
            decision_timeout: Duration::from_millis(config.policy.decision_timeout_ms),
            memory_limit_bytes: (config.policy.memory_limit_mib as usize) << 20,
        },
        cache_dir: Some(config.policy_cache_dir()),
        default_policy: Some(config.policy.default.clone()),
    }
}

impl Gateway {
    /// Builds the gateway: reads provider keys through `env`, starts the
    /// policy host, loads the embedded policies and the policy folder, and
    /// starts watching the folder.
    pub async fn new(config: &Config, env: impl Fn(&str) -> Option<String>) -> Result<Gateway, GatewayError> {
        let topology = topology(config);
        let mut keys = Vec::new();
        for p in &config.providers {
            keys.push(match &p.api_key_env {
                Some(var) => Some(env(var).ok_or_else(|| GatewayError::MissingKey {
                    provider: p.name.get_ref().clone(),
                    var: var.clone(),
                })?),
                None => None,
            });
        }
        let secrets = Arc::new(crate::secrets::Secrets::new(keys.iter().flatten().map(String::as_str)));
        let mut providers: HashMap<String, Arc<Provider>> = HashMap::new();
        for (p, key) in config.providers.iter().zip(keys) {
            let name = p.name.get_ref().clone();
            let extra_roots = match &p.ca_file {
                Some(file) => {
                    let path = config.base_dir.join(file);
                    Some(std::fs::read(&path).map_err(|e| GatewayError::Provider {
                        provider: name.clone(),
                        reason: format!("ca_file {}: {e}", path.display()),
                    })?)
                }
                None => None,
            };
            let connect_timeout = Duration::from_millis(p.connect_timeout_ms);
            let api = match p.api {
                Api::Anthropic => switchyard_wire::Api::Anthropic,
                Api::Openai => switchyard_wire::Api::OpenAi,
            };
            let provider = Provider::new(
                &name,
                api,
                p.base_url.get_ref(),
                key,
                connect_timeout,
                extra_roots.as_deref(),
                secrets.clone(),
            )
            .map_err(|reason| GatewayError::Provider { provider: name.clone(), reason })?;
            providers.insert(name, Arc::new(provider));
        }
        let target_provider: Vec<Arc<Provider>> =
            topology.targets.iter().map(|t| providers[&t.provider].clone()).collect();
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
                    provider: providers[name].clone(),
                    kind,
                    interval: Duration::from_millis(p.probe_interval_ms.max(10)),
                    targets,
                })
            })
            .collect();

        let options = policy_host_options(config);
        let b = &config.breaker;
        let breaker = BreakerConfig {
            failures: b.failures,
            error_rate: b.error_rate as f32,
            min_requests: b.min_requests as usize,
            cool_down: Duration::from_millis(b.cool_down_ms),
            max_cool_down: Duration::from_millis(b.max_cool_down_ms()),
            half_open_probes: b.half_open_probes,
        };
        let health = Arc::new(HealthBook::with_breaker(topology.targets.len(), breaker));
        let policies = PolicyHost::new(options, health.clone())?;
        // The default policy decides for routes whose own policy is not
        // loaded, so it is loaded even when no route names it.
        let in_use =
            config.routes.iter().map(|r| r.policy_name(&config.policy)).chain([config.policy.default.as_str()]);
        policies.load_embedded(in_use).await.map_err(|e| match e {
            PolicyError::ConfigRejected(reason) => GatewayError::PolicySettings { reason },
            other => GatewayError::Policy(other),
        })?;
        let watcher = policies
            .watch(&config.policy_dir(), Duration::from_millis(config.policy.rescan_interval_ms.max(100)))
            .await?;

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
        let metrics = crate::metrics::Metrics::new(
            topology.targets.iter().map(|t| format!("{}/{}", t.provider, t.model)).collect(),
            health.clone(),
        );
        let shared = Shared {
            routes,
            routes_by_model,
            models,
            wildcard,
            target_provider,
            topology: Arc::new(topology),
            policies,
            health,
            budget: crate::budget::RetryBudget::new(
                config.retry_budget.ratio,
                config.retry_budget.min_retries,
                Duration::from_millis(config.retry_budget.window_ms),
            ),
            cache: Arc::new(crate::cache::MemoryCache::new(crate::cache::CacheLimits {
                ttl: Duration::from_millis(config.cache.ttl_ms),
                max_entries: config.cache.max_entries,
                max_body_bytes: config.cache.max_body_bytes,
                max_bytes: config.cache.max_bytes,
            })),
            cache_enabled: config.cache.ttl_ms > 0 && config.cache.max_entries > 0 && config.cache.max_bytes > 0,
            max_body_bytes: config.max_body_bytes,
            timeouts: crate::limits::Defaults::from(&config.timeouts),
            access_log: crate::access_log::AccessLog::open(&config.access_log()).map_err(GatewayError::AccessLog)?,
            metrics,
        };
        let probes = crate::probe::start(probes, &shared.health);
        Ok(Gateway { shared: Arc::new(shared), _watcher: watcher, _probes: probes })
    }

    /// The policy host (for status, events and tests).
    pub fn policies(&self) -> &Arc<PolicyHost> {
        &self.shared.policies
    }

    /// Serves the admin endpoints (`GET /metrics`, ...) on `listener`; every
    /// request must carry `token` when there is one. Runs until dropped.
    pub fn admin(&self, listener: TcpListener, token: Option<String>) -> impl Future<Output = ()> + use<> {
        crate::admin::serve(self.shared.clone(), listener, token)
    }

    /// Serves `listener` until `shutdown` resolves, then lets open requests finish.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        crate::server::serve(self.shared.clone(), listener, shutdown).await;
        drop(self);
    }
}
