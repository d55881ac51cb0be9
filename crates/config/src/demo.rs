//! The config `switchyard demo` runs: the `resilient` policy in front of a
//! flaky primary and a healthy backup, both local mock providers.

/// Demo config; `{primary}` and `{backup}` are replaced by the mock
/// providers' base URLs and `{listen}` by the listen address.
pub const DEMO_TOML: &str = r#"
listen = "{listen}"

[policy]
dir = "{policy_dir}"
default = "resilient"

[policies.resilient]
max_attempts = 4
base_backoff_ms = 50
max_backoff_ms = 500
per_try_timeout_ms = 2000

[[providers]]
name = "primary"
api = "openai"
base_url = "{primary}"

[[providers]]
name = "backup"
api = "openai"
base_url = "{backup}"

[[routes]]
model = "gpt-4o-mini"
timeout_ms = 10000
targets = [
  { provider = "primary", model = "gpt-4o-mini" },
  { provider = "backup", model = "gpt-4o-mini" },
]

[[routes]]
model = "*"
timeout_ms = 10000
targets = [
  { provider = "backup", model = "gpt-4o-mini" },
]
"#;

/// The demo config with its placeholders filled in.
pub fn demo_config(listen: &str, primary: &str, backup: &str, policy_dir: &str) -> String {
    DEMO_TOML
        .replace("{listen}", listen)
        .replace("{primary}", primary)
        .replace("{backup}", backup)
        .replace("{policy_dir}", &policy_dir.replace('\\', "/"))
}
