//! Building a gateway from a config, and running it.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use switchyard_config::Config;
use switchyard_policy_host::{HealthBook, HostOptions, Limits, PolicyError, PolicyHost, RouteInfo, Target, Topology};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::generation::Generation;
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
    /// The access log, a webhook or the trace exporter cannot start.
    #[error("{0}")]
    Telemetry(#[from] switchyard_telemetry::TelemetryError),
    /// `[tls]`: the certificate or key cannot be used.
    #[error("{0}")]
    Tls(String),
    /// `[state]`: the shared state cannot be set up.
    #[error("[state]: {0}")]
    State(String),
}

/// One route as the request path needs it.
pub(crate) struct RouteEntry {
    pub index: u32,
    pub policy: String,
    pub timeout: Duration,
    /// The route's own attempt limits.
    pub limits: crate::limits::RouteLimits,
    /// Its name (the client-facing model), as a metrics label.
    pub name: switchyard_telemetry::metrics::Name,
}

/// Everything a request handler reads; shared by all connections. One per
/// config generation: a request keeps the one it started on to its end.
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
    pub budget: Arc<crate::budget::RetryBudget>,
    pub cache: Arc<dyn crate::cache::ResponseCache>,
    pub cache_enabled: bool,
    pub max_body_bytes: usize,
    /// `[timeouts]`: attempt limits a route or plan does not set.
    pub timeouts: crate::limits::Defaults,
    /// One JSON line per request (`[log] access`).
    pub access_log: Arc<switchyard_telemetry::access_log::AccessLog>,
    /// Prometheus metrics (this generation's view), served on the admin listener.
    pub metrics: switchyard_telemetry::metrics::Metrics,
    /// Events, history, decision times: for the gateway's whole life.
    pub telemetry: Arc<switchyard_telemetry::Telemetry>,
    /// Fired when the shutdown grace period is over: what is still open ends
    /// with a clean error (a stream: its API's error event).
    pub closing: CancellationToken,
    /// The gateway keys clients must send (empty: an open gateway).
    pub keys: switchyard_access::KeyRing,
    /// Provider quotas, route queues, target prices.
    pub quotas: crate::quota::Quotas,
    /// Gateway keys' rates counted across instances (`[state] backend = "redis"`).
    pub shared_rates: Option<Arc<dyn switchyard_access::shared::SharedRates>>,
}

/// How provider keys (and webhook URLs) are read: the process environment
/// when serving, a map in tests.
pub(crate) type Env = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// What lives as long as the gateway: the serving generation (swapped on a
/// reload), telemetry, the shutdown signal.
pub(crate) struct Live {
    generation: ArcSwap<Generation>,
    pub telemetry: Arc<switchyard_telemetry::Telemetry>,
    pub env: Env,
    /// The config file reloads read (`None`: reload only from a `Config`).
    pub config_path: std::sync::Mutex<Option<PathBuf>>,
    /// One reload at a time.
    pub reloading: tokio::sync::Mutex<()>,
    pub closing: CancellationToken,
    _webhooks: switchyard_telemetry::webhooks::Webhooks,
    /// TLS on `listen` (`[tls]`; set at start: a change needs a restart,
    /// a renewed certificate does not).
    pub door: Option<crate::tls::Door>,
    /// `[state] backend = "redis"` (set at start: a change needs a restart).
    pub sharing: Option<crate::sharing::Sharing>,
    /// Set when the gateway runs inside `switchyard simulate`.
    pub simulation: Option<Arc<crate::simulation::Simulation>>,
}

impl Live {
    /// What a request starting now runs on.
    pub fn shared(&self) -> Arc<Shared> {
        self.generation.load().shared.clone()
    }

    pub fn generation(&self) -> Arc<Generation> {
        self.generation.load_full()
    }

    pub fn swap(&self, next: Generation) {
        self.generation.store(Arc::new(next));
    }
}

/// A configured gateway, ready to serve.
pub struct Gateway {
    live: Arc<Live>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("routes", &self.live.shared().routes.len()).finish()
    }
}

pub(crate) fn topology(config: &Config) -> Topology {
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
        limits: {
            let mut limits = Limits::new(
                Duration::from_millis(config.policy.decision_timeout_ms),
                (config.policy.memory_limit_mib as usize) << 20,
            );
            if let Some(fuel) = config.policy.decision_fuel {
                limits.decision_fuel = fuel;
            }
            limits
        },
        cache_dir: Some(config.policy_cache_dir()),
        default_policy: Some(config.policy.default.clone()),
        random_seed: None,
        // Checked by the config's validation.
        trusted_keys: config
            .policy
            .trusted_keys
            .iter()
            .filter_map(|k| switchyard_policy_host::signature::TrustedKey::parse(k).ok())
            .collect(),
        shadows: config.policy.shadows.clone(),
        rollback: Some(switchyard_policy_host::RollbackRule {
            min_decisions: config.policy.rollback_min_decisions,
            max_failure_rate: config.policy.rollback_failure_rate,
            max_request_failure_rate: config.policy.rollback_request_failure_rate,
        }),
        canary: (config.policy.canary_share > 0.0).then(|| switchyard_policy_host::Canary {
            share: config.policy.canary_share,
            window: Duration::from_millis(config.policy.canary_window_ms),
        }),
    }
}

impl Gateway {
    /// Builds the gateway: reads provider keys through `env`, starts the
    /// policy host, loads the embedded policies and the policy folder, and
    /// starts watching the folder.
    pub async fn new(
        config: &Config,
        env: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Result<Gateway, GatewayError> {
        Self::build(config, Arc::new(env), None).await
    }

    /// A gateway for `switchyard simulate`: `config` without what reaches
    /// outside the process (webhooks, traces, shared state, the access
    /// log), its providers reached through `simulation.dial`. Every
    /// provider key variable reads as set. Serve it with [`Gateway::serve_io`].
    pub async fn simulated(
        config: &Config,
        simulation: crate::simulation::Simulation,
    ) -> Result<Gateway, GatewayError> {
        let config = crate::simulation::confine(config);
        Self::build(&config, Arc::new(|_: &str| Some("simulated-key".to_owned())), Some(Arc::new(simulation))).await
    }

    async fn build(
        config: &Config,
        env: Env,
        simulation: Option<Arc<crate::simulation::Simulation>>,
    ) -> Result<Gateway, GatewayError> {
        let tls = || {
            crate::upstream::tls_config(None)
                .map_err(|reason| GatewayError::Provider { provider: "telemetry".into(), reason })
        };
        let traces = switchyard_telemetry::traces::Traces::start(&config.traces, tls()?)?;
        let telemetry = switchyard_telemetry::Telemetry::new(traces);
        let closing = CancellationToken::new();
        let webhooks = switchyard_telemetry::webhooks::Webhooks::start(&config.webhooks, &*env, tls()?, &telemetry)?;
        let door = match &config.tls {
            Some(tls) => Some(
                crate::tls::Door::open(config.base_dir.join(&tls.cert_file), config.base_dir.join(&tls.key_file))
                    .map_err(GatewayError::Tls)?,
            ),
            None => None,
        };
        let sharing = crate::sharing::start(config, &env)?;
        if let Some(sharing) = &sharing {
            sharing.report_to(&telemetry);
        }
        let (generation, _) = Generation::build(
            config.clone(),
            &env,
            &telemetry,
            &closing,
            sharing.as_ref(),
            simulation.as_deref(),
            None,
        )
        .await?;
        let live = Live {
            simulation,
            sharing,
            door,
            generation: ArcSwap::from_pointee(generation),
            telemetry,
            env,
            config_path: Default::default(),
            reloading: Default::default(),
            closing,
            _webhooks: webhooks,
        };
        let live = Arc::new(live);
        if let Some(sharing) = &live.sharing {
            sharing.attach(&live);
        }
        Ok(Gateway { live })
    }

    /// The policy host serving now (for status, events and tests).
    pub fn policies(&self) -> Arc<PolicyHost> {
        self.live.shared().policies.clone()
    }

    /// Reloads read `path` (`POST /admin/reload`, SIGHUP, and a change of
    /// the file when [`Gateway::watch_config`] runs).
    pub fn set_config_path(&self, path: &Path) {
        *self.live.config_path.lock().unwrap_or_else(|p| p.into_inner()) = Some(path.to_owned());
    }

    /// Reloads the config file (see [`crate::reload`]): the whole file is
    /// checked and built first; on any error the running config keeps serving.
    pub async fn reload(&self) -> Result<crate::reload::Reloaded, crate::reload::ReloadError> {
        crate::reload::from_file(&self.live).await
    }

    /// Reloads the config file whenever it changes, until dropped.
    pub fn watch_config(&self) -> Result<crate::reload::ConfigWatcher, crate::reload::ReloadError> {
        crate::reload::watch(&self.live)
    }

    /// A handle for reloading from elsewhere (a signal handler).
    pub fn reloader(&self) -> Reloader {
        Reloader { live: self.live.clone() }
    }

    /// Serves the admin endpoints (`GET /metrics`, ...) on `listener`; every
    /// request must carry `token` when there is one. Runs until dropped.
    pub fn admin(&self, listener: TcpListener, token: Option<String>) -> impl Future<Output = ()> + use<> {
        crate::admin::serve(self.live.clone(), listener, token)
    }

    /// Serves one client connection over `io` (HTTP/1.1, or HTTP/2 with
    /// prior knowledge) until the client closes it: an in-memory
    /// connection in a simulation.
    pub async fn serve_io<I>(&self, io: I)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        crate::server::serve_connection(self.live.clone(), io).await;
    }

    /// Serves `listener` until `shutdown` resolves, then drains: open
    /// requests and streams get `shutdown_grace_ms` to finish; what is left
    /// then ends with a clean error.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        crate::server::serve(self.live.clone(), listener, shutdown).await;
        drop(self);
    }
}

/// Reloads a gateway's config file from anywhere (see [`Gateway::reloader`]).
#[derive(Clone)]
pub struct Reloader {
    live: Arc<Live>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").finish()
    }
}

impl Reloader {
    /// Like [`Gateway::reload`].
    pub async fn reload(&self) -> Result<crate::reload::Reloaded, crate::reload::ReloadError> {
        crate::reload::from_file(&self.live).await
    }
}
