use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

/// The whole config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Format version of this file; only `1` exists. Default 1.
    #[serde(default = "one")]
    pub version: u32,
    /// Address the gateway listens on. Default `127.0.0.1:8080`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Address of the admin listener (`GET /metrics`, ...); off unless set.
    /// Not a loopback address: `[admin] token_env` is required.
    #[serde(default)]
    pub admin_listen: Option<String>,
    /// The admin listener's access.
    #[serde(default)]
    pub admin: AdminSection,
    /// Gateway keys clients must send (`Authorization: Bearer` or
    /// `x-api-key`); none configured and a loopback `listen`: an open gateway.
    #[serde(default)]
    pub keys: Vec<GatewayKey>,
    /// Serve a non-loopback `listen` with no `[[keys]]`: anyone who reaches
    /// the port may spend the provider keys. Default false (refused).
    #[serde(default)]
    pub open_gateway: bool,
    /// Larger request bodies are refused with 413. Default 4 MiB.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Where policies come from and the limits they run under.
    #[serde(default)]
    pub policy: PolicySection,
    /// Each target's circuit breaker.
    #[serde(default)]
    pub breaker: BreakerSection,
    /// How many retries the whole gateway may make, relative to its traffic.
    #[serde(default)]
    pub retry_budget: RetryBudgetSection,
    /// The response cache policies degrade to (`degrade: cached`).
    #[serde(default)]
    pub cache: CacheSection,
    /// Limits of each attempt, gateway-wide; a route may set each of its own.
    #[serde(default)]
    pub timeouts: TimeoutsSection,
    /// Where the access log goes.
    #[serde(default)]
    pub log: LogSection,
    /// On SIGTERM/SIGINT the gateway stops accepting and lets open requests
    /// and streams finish for this long, then ends what is left with a clean
    /// error (a stream gets its API's error event). Default 30000.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace_ms: u64,
    /// Prometheus metrics (`GET /metrics` on the admin listener).
    #[serde(default)]
    pub metrics: MetricsSection,
    /// OpenTelemetry traces (OTLP over HTTP, JSON); off unless an endpoint is set.
    #[serde(default)]
    pub traces: TracesSection,
    /// Incident webhooks: each gets a JSON POST per event it wants.
    #[serde(default)]
    pub webhooks: Vec<Webhook>,
    /// Requests waiting for a provider's quota.
    #[serde(default)]
    pub queue: QueueSection,
    /// TLS on `listen` (HTTP/2 or HTTP/1.1 by ALPN); plain HTTP when absent.
    #[serde(default)]
    pub tls: Option<TlsSection>,
    /// Where health, limits, the cache and policy state live: this
    /// process's memory, or a Redis shared by several instances.
    #[serde(default)]
    pub state: StateSection,
    /// Settings per policy name, handed to that policy's `init` as JSON.
    #[serde(default)]
    pub policies: BTreeMap<String, toml::Table>,
    /// Upstream LLM providers.
    #[serde(default)]
    pub providers: Vec<Provider>,
    /// Client-facing models and where they may go.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Directory the config file is in; relative paths resolve against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// `[policy]`: the watched folder and the limits of every decision.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySection {
    /// Watched folder of `*.wasm` policies, relative to the config file.
    /// Default `policies`.
    pub dir: PathBuf,
    /// Policy (file stem) of routes that name none. Default `failover`.
    pub default: String,
    /// A decision's nominal time: its fuel budget is this much of a
    /// policy's own work (unless `decision_fuel` says otherwise), and its
    /// wall-clock backstop 20 times this. Default 5.
    pub decision_timeout_ms: u64,
    /// Fuel (wasm instructions) one decision may burn; past it the decision
    /// is stopped and the fallback answers. Deterministic: the same work is
    /// stopped at the same point on an idle or a saturated machine.
    /// Default: `decision_timeout_ms` worth (6,000,000 a millisecond).
    pub decision_fuel: Option<u64>,
    /// Memory one policy instance may grow to. Default 64.
    pub memory_limit_mib: u64,
    /// Where compiled policies are cached, relative to the config file.
    /// Default `<dir>/.cache`.
    pub cache_dir: Option<PathBuf>,
    /// Rescan the folder this often in case a file event was missed. Default 2000.
    pub rescan_interval_ms: u64,
    /// Public keys (`ed25519:<base64>`) policy files must be signed by
    /// (`NAME.wasm.sig`, made by `switchyard policy sign`); unsigned or
    /// wrongly signed files are refused. Default none: no signatures needed.
    pub trusted_keys: Vec<String>,
    /// A new file version of a policy that already serves first decides for
    /// this share of requests (0..1) for `canary_window_ms`, then for all.
    /// Default 0: at once for all.
    pub canary_share: f64,
    /// How long a canary serves its share. Default 300000 (5 minutes).
    pub canary_window_ms: u64,
    /// Automatic rollback: a version whose share of failed decisions (traps,
    /// its own deadline or fuel overruns, memory, invalid answers) exceeds
    /// the version before's by more than this is demoted to it. Default
    /// 0.05; 1 turns it off (five failures in a row still demote).
    pub rollback_failure_rate: f64,
    /// Decisions a version must have had before its rate is judged (and,
    /// for a canary, requests each side decided). Default 100.
    pub rollback_min_decisions: u64,
    /// Automatic rollback of a canary: the share of its requests the client
    /// got no answer to (a 5xx or 429 from the gateway, a stream broken for
    /// good) allowed above the serving version's over the same window
    /// (and beyond chance: by three standard errors more).
    /// Default 0.05; 1 turns it off. Needs `canary_share`: only a canary
    /// is compared with the version before under the same traffic.
    pub rollback_request_failure_rate: f64,
    /// Shadow mode: policy name → a candidate policy (loaded from the folder
    /// under its own name) asked every decision the policy makes, off the
    /// request path, and compared (`GET /admin/policies`). Default none.
    pub shadows: BTreeMap<String, String>,
}

impl Default for PolicySection {
    fn default() -> Self {
        PolicySection {
            dir: PathBuf::from("policies"),
            default: "failover".into(),
            decision_timeout_ms: 5,
            decision_fuel: None,
            memory_limit_mib: 64,
            cache_dir: None,
            rescan_interval_ms: 2000,
            trusted_keys: Vec::new(),
            canary_share: 0.0,
            canary_window_ms: 300_000,
            rollback_failure_rate: 0.05,
            rollback_min_decisions: 100,
            rollback_request_failure_rate: 0.05,
            shadows: BTreeMap::new(),
        }
    }
}

/// `[breaker]`: when a target's circuit breaker opens and how it recovers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSection {
    /// Open after this many failures in a row. Default 5.
    pub failures: u32,
    /// ...or when at least this share of the last 30 s of attempts failed. Default 0.5.
    pub error_rate: f64,
    /// ...counted only once there are this many attempts in the window. Default 20.
    pub min_requests: u32,
    /// Stay open this long before letting a probe through (longer when the
    /// provider's Retry-After is). Default 5000.
    pub cool_down_ms: u64,
    /// Each failed probe doubles the cool-down, up to this. Default 10000
    /// (or `cool_down_ms`, when that is longer): a recovered provider gets
    /// traffic back within 10 s, one still down at most a probe per 10 s.
    pub max_cool_down_ms: Option<u64>,
    /// Probes in flight at once while half-open. Default 1.
    pub half_open_probes: u32,
}

impl BreakerSection {
    /// `max_cool_down_ms`, or its default.
    pub fn max_cool_down_ms(&self) -> u64 {
        self.max_cool_down_ms.unwrap_or(self.cool_down_ms.max(10_000))
    }
}

impl Default for BreakerSection {
    fn default() -> Self {
        BreakerSection {
            failures: 5,
            error_rate: 0.5,
            min_requests: 20,
            cool_down_ms: 5000,
            max_cool_down_ms: None,
            half_open_probes: 1,
        }
    }
}

/// `[retry_budget]`: retries across the gateway may be at most `ratio` of the
/// requests of the last `window_ms` (at least `min_retries`), so an outage
/// does not multiply the load on a struggling provider.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryBudgetSection {
    /// Retries per client request allowed over the window. Default 0.5.
    pub ratio: f64,
    /// Retries always allowed per window, whatever the traffic. Default 10.
    pub min_retries: u32,
    /// The window. Default 10000.
    pub window_ms: u64,
}

impl Default for RetryBudgetSection {
    fn default() -> Self {
        RetryBudgetSection { ratio: 0.5, min_retries: 10, window_ms: 10_000 }
    }
}

/// `[cache]`: successful non-streamed answers, kept in memory for
/// `degrade: cached` (exact match on the normalised request).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSection {
    /// How long an answer may be served from the cache; 0 turns the cache off. Default 300000.
    pub ttl_ms: u64,
    /// Most answers kept (the oldest go first). Default 10000.
    pub max_entries: usize,
    /// Larger answers are not kept. Default 1 MiB.
    pub max_body_bytes: usize,
    /// Most bytes of answers kept in all (the oldest go first). Default 64 MiB.
    pub max_bytes: usize,
}

impl Default for CacheSection {
    fn default() -> Self {
        CacheSection { ttl_ms: 300_000, max_entries: 10_000, max_body_bytes: 1 << 20, max_bytes: 64 << 20 }
    }
}

/// `[state]`: this instance's memory (the default), or a Redis (or Valkey)
/// shared by every instance behind one load balancer. Decisions always read
/// local memory; what Redis carries is applied to it as it arrives.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateSection {
    /// `memory` (default) or `redis`.
    pub backend: StateBackend,
    /// Environment variable holding the Redis URL,
    /// `redis://[:password@]host:port/db`. Default `SWITCHYARD_REDIS_URL`.
    pub url_env: String,
    /// Prefix of every Redis key and channel this gateway uses; instances
    /// that should share state use the same. Default `switchyard`.
    pub prefix: String,
    /// A Redis command unanswered after this long is given up: the instance
    /// goes on with its local state. Default 50.
    pub timeout_ms: u64,
    /// With a `rediss://` URL (TLS): the CA (PEM) that signed the server's
    /// certificate, relative to the config file; the system's roots when absent.
    pub ca_file: Option<PathBuf>,
}

impl Default for StateSection {
    fn default() -> Self {
        StateSection {
            backend: StateBackend::Memory,
            url_env: "SWITCHYARD_REDIS_URL".into(),
            prefix: "switchyard".into(),
            timeout_ms: 50,
            ca_file: None,
        }
    }
}

/// Where shared state lives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateBackend {
    /// This process's memory: nothing is shared.
    #[default]
    Memory,
    /// A Redis server every instance connects to.
    Redis,
}

/// Which wire API a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// OpenAI chat completions (also Ollama, vLLM, llama.cpp server).
    Openai,
    /// Anthropic messages.
    Anthropic,
}

/// `[admin]`: who may use the admin listener.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    /// Environment variable holding the admin token; when set, every admin
    /// request must carry `Authorization: Bearer <token>`. Required when
    /// `admin_listen` is not a loopback address.
    pub token_env: Option<String>,
}

/// `[metrics]`: whether requests are counted.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Count requests, attempts, tokens, decisions. Default true; false
    /// leaves `/metrics` with the state gauges only.
    pub enabled: bool,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection { enabled: true }
    }
}

/// `[[keys]]`: a gateway key, known only by its hash.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayKey {
    /// Who holds it (a team, a service): what logs, metrics and policies see.
    pub name: String,
    /// `sha256:<64 hex>` of the key, as `switchyard keys new NAME` prints it.
    pub hash: String,
    /// Requests this key may make per minute (a burst up to it, then one
    /// per `60 s / limit`); over it, 429 with `Retry-After`. Default none.
    #[serde(default)]
    pub requests_per_minute: Option<u32>,
    /// Tokens this key may use per minute: a request's input tokens are
    /// estimated when it is let in and the count is corrected from the
    /// provider's usage (input + output) when it ends. Default none.
    #[serde(default)]
    pub tokens_per_minute: Option<u32>,
    /// Requests of this key in flight at once; one more gets 429. Default none.
    #[serde(default)]
    pub max_concurrency: Option<u32>,
    /// The routes (their `model` or an alias) this key may use; others get
    /// 403. Default: every route.
    #[serde(default)]
    pub routes: Option<Vec<String>>,
    /// Who goes first when requests wait for a provider's quota. Default `"normal"`.
    #[serde(default)]
    pub priority: Priority,
    /// Tokens (input + output, as providers report them) this key may use
    /// per UTC day / calendar month; once spent, requests get the quota error. Default none.
    #[serde(default)]
    pub daily_tokens: Option<u64>,
    /// See `daily_tokens`.
    #[serde(default)]
    pub monthly_tokens: Option<u64>,
    /// US dollars this key may spend per UTC day / calendar month, priced by
    /// the targets' `input_usd_per_mtok` / `output_usd_per_mtok`. Default none.
    #[serde(default)]
    pub daily_spend_usd: Option<f64>,
    /// See `daily_spend_usd`.
    #[serde(default)]
    pub monthly_spend_usd: Option<f64>,
}

/// A key's priority class: who is served first from a provider's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Batch work: waits behind everyone else.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Interactive or premium traffic: served first.
    High,
}

impl Priority {
    /// The class's name as configured (`"low"`, `"normal"`, `"high"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
        }
    }
}

/// How much the gateway may send to a provider, or to one model of it:
/// the provider's published limits, enforced before it has to say 429.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Quota {
    /// Requests per minute.
    pub rpm: Option<u32>,
    /// Tokens per minute.
    pub tpm: Option<u32>,
    /// Requests in flight at once.
    pub max_concurrency: Option<u32>,
}

impl Provider {
    /// The provider's own quota (all its models together).
    pub fn quota(&self) -> Quota {
        Quota { rpm: self.rpm, tpm: self.tpm, max_concurrency: self.max_concurrency }
    }
}

impl ModelSettings {
    /// The model's own quota.
    pub fn quota(&self) -> Quota {
        Quota { rpm: self.rpm, tpm: self.tpm, max_concurrency: self.max_concurrency }
    }
}

impl Quota {
    /// No limit set.
    pub fn is_unlimited(&self) -> bool {
        self.rpm.is_none() && self.tpm.is_none() && self.max_concurrency.is_none()
    }
}

/// `[providers.models."NAME"]`: one model of a provider (a target): its own
/// quota and its prices.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSettings {
    /// Requests per minute to this model, on top of the provider's limits.
    #[serde(default)]
    pub rpm: Option<u32>,
    /// Tokens per minute to this model.
    #[serde(default)]
    pub tpm: Option<u32>,
    /// Requests in flight to this model at once.
    #[serde(default)]
    pub max_concurrency: Option<u32>,
    /// US dollars per million input tokens (for spend budgets and metrics).
    #[serde(default)]
    pub input_usd_per_mtok: Option<f64>,
    /// US dollars per million output tokens.
    #[serde(default)]
    pub output_usd_per_mtok: Option<f64>,
}

/// `[tls]`: the certificate the gateway serves on `listen`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// PEM file: the certificate chain, leaf first. Relative to the config file.
    pub cert_file: PathBuf,
    /// PEM file: the private key (PKCS#8, PKCS#1 or SEC1). Relative to the config file.
    pub key_file: PathBuf,
}

/// `[queue]`: requests that wait for a provider's quota.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueSection {
    /// Requests of one route that may wait at once; one more is shed with
    /// 429. Default 1000.
    pub max_waiting: usize,
    /// Longest wait for a quota; past it (or past the route's deadline,
    /// whichever is first) the request is shed with 503. Default 10000.
    pub max_wait_ms: u64,
    /// Attempts in flight to all providers together; more wait like any
    /// quota's. Default none.
    pub max_concurrency: Option<u32>,
}

impl Default for QueueSection {
    fn default() -> Self {
        QueueSection { max_waiting: 1000, max_wait_ms: 10_000, max_concurrency: None }
    }
}

/// `[traces]`: a span per request, with child spans per attempt and per
/// policy decision, exported over OTLP/HTTP (JSON).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracesSection {
    /// The collector's traces URL, e.g. `http://127.0.0.1:4318/v1/traces`.
    /// Off unless set.
    pub otlp_endpoint: Option<String>,
    /// Share of requests traced when the client sent no `traceparent`
    /// (a client's sampled flag is honoured). Default 1.0.
    pub sample_ratio: f64,
    /// `service.name` of the spans. Default `switchyard`.
    pub service_name: String,
    /// Spans are sent in batches this often. Default 1000.
    pub export_every_ms: u64,
}

impl Default for TracesSection {
    fn default() -> Self {
        TracesSection {
            otlp_endpoint: None,
            sample_ratio: 1.0,
            service_name: "switchyard".into(),
            export_every_ms: 1000,
        }
    }
}

/// `[[webhooks]]`: where incident events are POSTed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// `http(s)://...` to POST to; or, since chat webhooks' URLs are
    /// secrets, `url_env`: the variable holding it.
    #[serde(default)]
    pub url: Option<String>,
    /// Environment variable holding the URL.
    #[serde(default)]
    pub url_env: Option<String>,
    /// Event kinds sent; default the incidents: `breaker_opened`,
    /// `breaker_closed`, `breaker_forced`, `route_down`, `route_recovered`,
    /// `policy_rejected`, `policy_demoted`, `policy_fallback`, `config_rejected`.
    #[serde(default)]
    pub events: Option<Vec<String>>,
}

/// Every event kind the gateway emits.
pub const EVENT_KINDS: &[&str] = &[
    "breaker_opened",
    "breaker_closed",
    "breaker_forced",
    "route_down",
    "route_recovered",
    "policy_loaded",
    "policy_rejected",
    "policy_demoted",
    "policy_canary",
    "policy_promoted",
    "policy_removed",
    "policy_fallback",
    "config_reloaded",
    "config_rejected",
    "draining",
];

/// The kinds a webhook gets unless it lists its own.
pub const INCIDENT_KINDS: &[&str] = &[
    "breaker_opened",
    "breaker_closed",
    "breaker_forced",
    "route_down",
    "route_recovered",
    "policy_rejected",
    "policy_demoted",
    "policy_fallback",
    "config_rejected",
];

/// `[log]`: the access log, one JSON line per request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// `"stdout"` (the default), `"off"`, or a file path (appended to;
    /// relative to the config file).
    pub access: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection { access: "stdout".into() }
    }
}

/// Where access log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    /// Nowhere.
    Off,
    /// Standard output.
    Stdout,
    /// Appended to this file.
    File(PathBuf),
}

impl Config {
    /// Where `[log] access` sends the access log.
    pub fn access_log(&self) -> AccessLogTarget {
        match self.log.access.as_str() {
            "off" => AccessLogTarget::Off,
            "stdout" | "" => AccessLogTarget::Stdout,
            path => AccessLogTarget::File(self.base_dir.join(path)),
        }
    }
}

/// `[timeouts]`: the limits of each upstream attempt, fitted to LLM traffic
/// (see docs/config.md for the numbers and why). A route's own
/// `first_token_timeout_ms`, `idle_timeout_ms`, `answer_timeout_ms` and
/// `connect_timeout_ms` override them; a policy's plan overrides both.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutsSection {
    /// Streams: longest wait for the first content-bearing event (text,
    /// tool-call or thinking delta) of a target with no history. Default 30000.
    pub first_token_timeout_ms: u64,
    /// Streams to a target with a history of first tokens: the limit is four
    /// times its recent p95, at least this and at most
    /// `first_token_timeout_ms`. Set it equal to `first_token_timeout_ms` to
    /// turn the adaptation off. Default 10000.
    pub first_token_floor_ms: u64,
    /// Streams: longest silence between two content-bearing events
    /// (heartbeats do not count). Default 30000.
    pub idle_timeout_ms: u64,
    /// Non-streamed requests: the whole answer (its headers come with it).
    /// Default 600000.
    pub answer_timeout_ms: u64,
}

impl Default for TimeoutsSection {
    fn default() -> Self {
        TimeoutsSection {
            first_token_timeout_ms: 30_000,
            first_token_floor_ms: 10_000,
            idle_timeout_ms: 30_000,
            answer_timeout_ms: 600_000,
        }
    }
}

/// `[[providers]]`: one upstream API endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// Unique name routes refer to.
    pub name: Spanned<String>,
    /// Wire API the provider speaks.
    pub api: Api,
    /// `https://...` or `http://...`, without the `/v1/...` path.
    pub base_url: Spanned<String>,
    /// Environment variable holding the API key; none for keyless local models.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Give up connecting after this long. Default 2000.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// PEM file of extra root certificates to trust for this provider (an
    /// internal CA in front of a self-hosted model), in addition to the
    /// bundled public roots. Relative to the config file. Default none.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Active health check, only while a target's breaker is open, so a
    /// recovered provider gets traffic back without a client request paying
    /// for the test: `"models"` (GET `/v1/models`, free) or `"chat"` (a chat
    /// completion with `max_tokens: 1` per model, costs a token). Default
    /// none: health checks must not burn money unasked.
    #[serde(default)]
    pub probe: Option<ProbeKind>,
    /// How often an open target is probed. Default 10000.
    #[serde(default = "default_probe_interval")]
    pub probe_interval_ms: u64,
    /// Requests per minute to this provider, all its models together. Default none.
    #[serde(default)]
    pub rpm: Option<u32>,
    /// Tokens per minute to this provider (input estimated when sent,
    /// corrected from the answer's usage). Default none.
    #[serde(default)]
    pub tpm: Option<u32>,
    /// Requests in flight to this provider at once. Default none.
    #[serde(default)]
    pub max_concurrency: Option<u32>,
    /// Per model (target) limits and prices, by the model name routes use.
    #[serde(default)]
    pub models: BTreeMap<String, ModelSettings>,
}

/// How a provider is probed while a target's breaker is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    /// `GET {base_url}/v1/models`.
    Models,
    /// `POST {base_url}/v1/chat/completions` with `max_tokens: 1`.
    Chat,
}

fn default_probe_interval() -> u64 {
    10_000
}

/// `[[routes]]`: a client-facing model and its targets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// What clients put in `model`; `*` matches any model.
    pub model: Spanned<String>,
    /// Other names clients may use for this route (`"smart"`, `"claude-sonnet"`).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Policy (file stem) deciding this route; `[policy].default` when absent.
    #[serde(default)]
    pub policy: Option<String>,
    /// How long the gateway may keep trying: no attempt, and no wait before
    /// one, starts after it, and a stream's first token must come within it.
    /// An attempt that started runs under its own limits (a long answer is
    /// not cut by it). Default 30000.
    #[serde(default = "default_route_timeout")]
    pub timeout_ms: u64,
    /// This route's `[timeouts] first_token_timeout_ms`, used as is (no adaptation).
    #[serde(default)]
    pub first_token_timeout_ms: Option<u64>,
    /// This route's `[timeouts] idle_timeout_ms`.
    #[serde(default)]
    pub idle_timeout_ms: Option<u64>,
    /// This route's `[timeouts] answer_timeout_ms`.
    #[serde(default)]
    pub answer_timeout_ms: Option<u64>,
    /// Connect limit for this route's attempts; can only shorten a provider's `connect_timeout_ms`.
    #[serde(default)]
    pub connect_timeout_ms: Option<u64>,
    /// Where requests may go, in preference order.
    pub targets: Vec<TargetRef>,
}

/// One provider+model pair a route may send to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetRef {
    /// A `[[providers]] name`.
    pub provider: Spanned<String>,
    /// The model name the provider expects.
    pub model: String,
}

impl Route {
    /// The policy deciding this route.
    pub fn policy_name<'a>(&'a self, section: &'a PolicySection) -> &'a str {
        self.policy.as_deref().unwrap_or(&section.default)
    }
}

fn one() -> u32 {
    1
}
fn default_shutdown_grace() -> u64 {
    30_000
}
fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_max_body() -> usize {
    4 * 1024 * 1024
}
fn default_connect_timeout() -> u64 {
    2000
}
fn default_route_timeout() -> u64 {
    30_000
}
