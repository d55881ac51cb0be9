//! The config `switchyard demo` runs: the `resilient` policy in front of a
//! flaky OpenAI-wire primary, a flaky Anthropic-wire "claude" and a healthy
//! OpenAI-wire backup, all local mock providers.

/// Demo config; `{primary}`, `{claude}` and `{backup}` are replaced by the
/// mock providers' base URLs and `{listen}` by the listen address.
pub const DEMO_TOML: &str = r#"
listen = "{listen}"

[policy]
dir = "{policy_dir}"
default = "resilient"

[policies.resilient]
max_attempts = 4
base_backoff_ms = 50
max_backoff_ms = 500

# Local mocks answer in milliseconds: a silent one is caught in 2 s.
[timeouts]
first_token_timeout_ms = 2000
first_token_floor_ms = 1000
idle_timeout_ms = 2000
answer_timeout_ms = 10000

[[providers]]
name = "primary"
api = "openai"
base_url = "{primary}"

[[providers]]
name = "claude"
api = "anthropic"
base_url = "{claude}"

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

# Anthropic and OpenAI clients alike: Claude first, GPT when Claude is overloaded.
[[routes]]
model = "claude-sonnet-4-5"
aliases = ["smart"]
timeout_ms = 10000
targets = [
  { provider = "claude", model = "claude-sonnet-4-5" },
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
pub fn demo_config(listen: &str, primary: &str, claude: &str, backup: &str, policy_dir: &str) -> String {
    DEMO_TOML
        .replace("{listen}", listen)
        .replace("{primary}", primary)
        .replace("{claude}", claude)
        .replace("{backup}", backup)
        .replace("{policy_dir}", &policy_dir.replace('\\', "/"))
}
