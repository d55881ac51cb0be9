//! End-to-end scenarios: a real gateway, real policy components built from
//! `plugins/`, real mock providers on loopback speaking OpenAI's or Anthropic's wire, real
//! files in a watched folder. Each test names an outage and asserts only what
//! the client sees.

mod access_log;
mod anthropic_clients;
mod api_errors;
mod attempt_limits;
mod balancing;
mod circuit_breaker;
mod classification;
mod config_reload;
mod degradation;
mod failover;
mod gateway_keys;
mod hedging;
mod hot_reload;
mod incidents;
mod key_limits;
mod metrics;
mod models;
mod official_sdks;
mod plugin_misbehaves;
mod policy_lifecycle;
mod quotas;
mod retry_budget;
mod secrets;
mod stream_recovery;
mod streaming;
mod tenant_policy;
mod tls;
mod tls_door;
mod traces;
mod translation;

use std::time::Duration;

pub use switchyard_policy_host::PolicyEvent;
pub use switchyard_testkit::*;

/// Patience for things that should happen "soon" on a loaded 2-core CI box.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Logs to the test's captured output; `SWITCHYARD_LOG=debug` for more.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SWITCHYARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

/// Two providers, one route `m` over [primary, backup] with the default policy.
pub fn two_providers(primary: &str, backup: &str) -> ConfigBuilder {
    ConfigBuilder::new().provider("primary", primary).provider("backup", backup).route(
        "m",
        None,
        5000,
        &["primary", "backup"],
    )
}

/// Route `m` over [primary, backup] decided by the embedded `resilient`
/// policy, with short backoffs and a 3 s deadline.
pub fn resilient_pair(primary: &MockProvider, backup: &MockProvider) -> ConfigBuilder {
    ConfigBuilder::new()
        .provider("primary", &primary.url())
        .provider("backup", &backup.url())
        .route("m", Some("resilient"), 3000, &["primary", "backup"])
        .settings("resilient", &["base_backoff_ms = 20", "max_backoff_ms = 100"])
}

/// `clients` clients at once, each sending `each` chat requests for `m` in a
/// row to `url`; every answer must be a 200.
pub async fn concurrent_chats(url: &str, clients: usize, each: usize) {
    let clients: Vec<_> = (0..clients)
        .map(|_| {
            let url = url.to_owned();
            tokio::spawn(async move {
                for _ in 0..each {
                    assert_eq!(post_chat(&url, "m").await.status, 200);
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
}

/// Waits (with [`PATIENCE`]) for the first policy event that `want` accepts.
pub async fn wait_for(
    events: &mut tokio::sync::broadcast::Receiver<PolicyEvent>,
    want: impl Fn(&PolicyEvent) -> bool,
) -> PolicyEvent {
    tokio::time::timeout(PATIENCE, async {
        loop {
            match events.recv().await {
                Ok(e) if want(&e) => return e,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(e) => panic!("event channel closed: {e}"),
            }
        }
    })
    .await
    .expect("the policy event never came")
}

/// Copies the built component `artifact` into the gateway's policy folder as
/// `NAME.wasm` and waits until it serves.
pub async fn install_policy(gw: &TestGateway, name: &str, artifact: &str) {
    let mut events = gw.policies().events();
    std::fs::copy(plugin_artifact(artifact), gw.policy_dir.join(format!("{name}.wasm"))).unwrap();
    wait_for(&mut events, |e| matches!(e, PolicyEvent::Loaded { name: loaded, .. } if loaded == name)).await;
}

/// Providers `a` and `b` (kept alive by the caller) and a config whose
/// route `m` (a, then b) is decided by the policy `live`, with
/// `policy_lines` in its `[policy]` table.
pub async fn live_route(policy_lines: &[&str]) -> (MockProvider, MockProvider, ConfigBuilder) {
    let (a, b) = (MockProvider::start("a").await, MockProvider::start("b").await);
    let config = policy_lines.iter().fold(ConfigBuilder::new(), |c, line| c.policy(line));
    let config = config.provider("a", &a.url()).provider("b", &b.url()).route("m", Some("live"), 5000, &["a", "b"]);
    (a, b, config)
}

/// `name@` + the first 12 hex digits of the component's sha256, as
/// `x-switchyard-policy` names a version.
pub fn label(name: &str, bytes: &[u8]) -> String {
    format!("{name}@{}", &switchyard_policy_host::sha256_hex(bytes)[..12])
}

/// The same component with a custom section appended: same behaviour, new
/// sha256 (a new version of the same policy).
pub fn rebuilt(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    // Custom section (id 0), 6 bytes: name "r" (1 + 1 byte) and a 4-byte payload.
    out.extend_from_slice(&[0, 6, 1, b'r', 1, 2, 3, 4]);
    out
}
