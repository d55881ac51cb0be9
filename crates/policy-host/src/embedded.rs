//! Policies built from `plugins/` and embedded in the binary, so the gateway
//! decides through a real component even with an empty policy folder.

macro_rules! artifact {
    ($file:literal) => {
        include_bytes!(concat!(env!("SWITCHYARD_PLUGIN_ARTIFACTS"), "/", $file, ".wasm"))
    };
}

/// `(name, component bytes)` of every embedded policy: every policy shipped
/// in `plugins/` (and the weighted-split and tenant-tiers examples), usable by name in a route
/// without building anything; a file of the same name in the policy folder
/// overrides it.
pub const EMBEDDED: &[(&str, &[u8])] = &[
    ("failover", artifact!("failover")),
    ("resilient", artifact!("resilient")),
    ("least-latency", artifact!("least_latency")),
    ("p2c", artifact!("p2c")),
    ("weighted-split", artifact!("weighted_split")),
    ("tenant-tiers", artifact!("tenant_tiers")),
];

/// The folder the build wrote every component of `plugins/` to (fixtures and
/// examples included): for tests, the bench and `switchyard demo`.
pub const PLUGIN_ARTIFACTS: &str = env!("SWITCHYARD_PLUGIN_ARTIFACTS");

/// The embedded component named `name`.
pub fn embedded(name: &str) -> Option<&'static [u8]> {
    EMBEDDED.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}
