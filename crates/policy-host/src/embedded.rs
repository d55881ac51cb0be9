//! Policies built from `plugins/` and embedded in the binary, so the gateway
//! decides through a real component even with an empty policy folder.

/// `(name, component bytes)` of every embedded policy.
pub const EMBEDDED: &[(&str, &[u8])] =
    &[("failover", include_bytes!(concat!(env!("SWITCHYARD_PLUGIN_ARTIFACTS"), "/failover.wasm")))];

/// The folder the build wrote every component of `plugins/` to (fixtures and
/// examples included): for tests, the bench and `switchyard demo`.
pub const PLUGIN_ARTIFACTS: &str = env!("SWITCHYARD_PLUGIN_ARTIFACTS");

/// The embedded component named `name`.
pub fn embedded(name: &str) -> Option<&'static [u8]> {
    EMBEDDED.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}
