//! End-to-end scenarios: a real gateway, real policy components built from
//! `plugins/`, real mock providers on loopback speaking OpenAI's wire, real
//! files in a watched folder. Each test names an outage and asserts only what
//! the client sees.

mod api_errors;
mod degradation;
mod failover;
mod hot_reload;
mod plugin_misbehaves;
mod secrets;
mod streaming;
mod tls;

use std::time::Duration;

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
