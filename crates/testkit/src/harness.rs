//! A real gateway on `127.0.0.1:0`, configured from TOML like a user would.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use switchyard_core::Gateway;
use switchyard_policy_host::PolicyHost;
use tokio::sync::oneshot;

/// Builds the TOML of a gateway config.
#[derive(Debug, Clone, Default)]
pub struct ConfigBuilder {
    providers: Vec<String>,
    routes: Vec<String>,
    policies: Vec<String>,
    top: Vec<String>,
    policy_section: Vec<String>,
    /// `[log] access`, when set.
    log: Option<String>,
}

impl ConfigBuilder {
    /// An empty config.
    pub fn new() -> Self {
        Self::default()
    }

    /// A top-level line, e.g. `max_body_bytes = 1024`.
    pub fn top(mut self, line: &str) -> Self {
        self.top.push(line.to_owned());
        self
    }

    /// `[log] access = VALUE` (`"off"`, `"stdout"`, or a file path).
    pub fn access_log(mut self, value: &str) -> Self {
        self.log = Some(value.to_owned());
        self
    }

    /// A line of the `[policy]` table, e.g. `decision_timeout_ms = 5`.
    pub fn policy(mut self, line: &str) -> Self {
        self.policy_section.push(line.to_owned());
        self
    }

    /// An OpenAI-wire provider.
    pub fn provider(mut self, name: &str, base_url: &str) -> Self {
        self.providers.push(format!(
            "[[providers]]\nname = {name:?}\napi = \"openai\"\nbase_url = {base_url:?}\nconnect_timeout_ms = 500\n"
        ));
        self
    }

    /// An OpenAI-wire provider with extra `key = value` lines (e.g. `probe = "models"`).
    pub fn provider_with(mut self, name: &str, base_url: &str, lines: &[&str]) -> Self {
        self.providers.push(format!(
            "[[providers]]\nname = {name:?}\napi = \"openai\"\nbase_url = {base_url:?}\nconnect_timeout_ms = 500\n{}\n",
            lines.join("\n")
        ));
        self
    }

    /// A provider speaking Anthropic's Messages API.
    pub fn anthropic_provider(mut self, name: &str, base_url: &str) -> Self {
        self.providers.push(format!(
            "[[providers]]\nname = {name:?}\napi = \"anthropic\"\nbase_url = {base_url:?}\nconnect_timeout_ms = 500\n"
        ));
        self
    }

    /// A provider speaking Anthropic's Messages API whose key is read from `env_var`.
    pub fn anthropic_provider_with_key(mut self, name: &str, base_url: &str, env_var: &str) -> Self {
        self.providers.push(format!(
            "[[providers]]\nname = {name:?}\napi = \"anthropic\"\nbase_url = {base_url:?}\napi_key_env = {env_var:?}\n"
        ));
        self
    }

    /// A provider that trusts the root certificates in `ca_file` (PEM).
    pub fn provider_with_ca(mut self, name: &str, base_url: &str, ca_file: &Path) -> Self {
        self.providers.push(format!(
            "[[providers]]\nname = {name:?}\napi = \"openai\"\nbase_url = {base_url:?}\nca_file = {:?}\n",
            ca_file.display().to_string()
        ));
        self
    }

    /// A provider whose key is read from `env_var`.
    pub fn provider_with_key(mut self, name: &str, base_url: &str, env_var: &str) -> Self {
        self.providers.push(format!(
            "[[providers]]\nname = {name:?}\napi = \"openai\"\nbase_url = {base_url:?}\napi_key_env = {env_var:?}\n"
        ));
        self
    }

    /// A route for `model` over `providers` (each asked for `model`), decided by `policy`.
    pub fn route(mut self, model: &str, policy: Option<&str>, timeout_ms: u64, providers: &[&str]) -> Self {
        let targets: Vec<String> =
            providers.iter().map(|p| format!("{{ provider = {p:?}, model = {model:?} }}")).collect();
        let policy = policy.map(|p| format!("policy = {p:?}\n")).unwrap_or_default();
        self.routes.push(format!(
            "[[routes]]\nmodel = {model:?}\n{policy}timeout_ms = {timeout_ms}\ntargets = [{}]\n",
            targets.join(", ")
        ));
        self
    }

    /// A route (a model group) reached by `model` or any of `aliases`, over
    /// `targets` as `(provider, model)` pairs, with the default policy.
    pub fn group(mut self, model: &str, aliases: &[&str], timeout_ms: u64, targets: &[(&str, &str)]) -> Self {
        let targets: Vec<String> =
            targets.iter().map(|(p, m)| format!("{{ provider = {p:?}, model = {m:?} }}")).collect();
        self.routes.push(format!(
            "[[routes]]\nmodel = {model:?}\naliases = {aliases:?}\ntimeout_ms = {timeout_ms}\ntargets = [{}]\n",
            targets.join(", ")
        ));
        self
    }

    /// Adds `key = value` lines to the route added last (e.g. its
    /// `first_token_timeout_ms`).
    pub fn route_lines(mut self, lines: &[&str]) -> Self {
        let route = self.routes.last_mut().expect("a route to add lines to");
        let at = route.find("targets = ").expect("a route's targets");
        route.insert_str(at, &format!("{}\n", lines.join("\n")));
        self
    }

    /// `[policies.NAME]` with these `key = value` lines.
    pub fn settings(mut self, name: &str, lines: &[&str]) -> Self {
        self.policies.push(format!("[policies.{name:?}]\n{}\n", lines.join("\n")));
        self
    }

    /// The TOML text, with the policy folder set to `policy_dir`.
    pub fn build(&self, policy_dir: &Path) -> String {
        let mut out = String::from("listen = \"127.0.0.1:0\"\n");
        for line in &self.top {
            out.push_str(line);
            out.push('\n');
        }
        out.push_str(&format!("[policy]\ndir = {:?}\nrescan_interval_ms = 500\n", policy_dir.display().to_string()));
        // A 5 ms wall-clock deadline can be overrun by a preempted thread on a
        // loaded 2-core CI machine; tests about deadlines set their own.
        if !self.policy_section.iter().any(|l| l.trim_start().starts_with("decision_timeout_ms")) {
            out.push_str("decision_timeout_ms = 50\n");
        }
        for line in &self.policy_section {
            out.push_str(line);
            out.push('\n');
        }
        for part in self.policies.iter().chain(&self.providers).chain(&self.routes) {
            out.push_str(part);
        }
        if let Some(access) = &self.log {
            out.push_str(&format!("[log]\naccess = {access:?}\n"));
        }
        out
    }
}

/// A running gateway; shuts down when dropped.
pub struct TestGateway {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where its admin listener listens.
    pub admin_addr: SocketAddr,
    admin: tokio::task::JoinHandle<()>,
    policies: Arc<PolicyHost>,
    reloader: switchyard_core::Reloader,
    /// The config file the gateway reloads (`POST /admin/reload`, [`TestGateway::reload`]).
    pub config_path: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// The policy folder (a temp dir the gateway watches).
    pub policy_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for TestGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestGateway").field("addr", &self.addr).finish()
    }
}

impl TestGateway {
    /// Starts a gateway from `config` with a fresh temporary policy folder.
    pub async fn start(config: &ConfigBuilder) -> TestGateway {
        Self::start_with_env(config, |_| None).await
    }

    /// Like [`TestGateway::start`], reading provider keys through `env`.
    pub async fn start_with_env(
        config: &ConfigBuilder,
        env: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> TestGateway {
        let temp = tempfile::tempdir().expect("temp dir");
        let policy_dir = temp.path().join("policies");
        std::fs::create_dir_all(&policy_dir).expect("policy dir");
        let mut gw = Self::start_in(&config.build(&policy_dir), temp.path(), env).await;
        gw._temp = Some(temp);
        gw
    }

    /// Starts a gateway from TOML text; relative paths resolve against `base_dir`.
    pub async fn start_in(
        toml: &str,
        base_dir: &Path,
        env: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> TestGateway {
        // Written where reloads read it, as a deployment would have it.
        let config_path = base_dir.join("switchyard.toml");
        std::fs::write(&config_path, toml).expect("write the config file");
        let config = switchyard_config::load_file(&config_path).unwrap_or_else(|e| panic!("{e}\n{toml}"));
        let policy_dir = config.policy_dir();
        let gateway = Gateway::new(&config, env).await.unwrap_or_else(|e| panic!("gateway failed to start: {e}"));
        gateway.set_config_path(&config_path);
        let policies = gateway.policies();
        let reloader = gateway.reloader();
        // The admin listener, always, on a port of its own (tokenless: loopback).
        let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
        let admin_addr = admin_listener.local_addr().expect("admin addr");
        let admin = tokio::spawn(gateway.admin(admin_listener, None));
        let listener = switchyard_core::listen("127.0.0.1:0").await.expect("bind gateway");
        let addr = listener.local_addr().expect("gateway addr");
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(gateway.serve(listener, async {
            let _ = rx.await;
        }));
        TestGateway {
            addr,
            admin_addr,
            admin,
            policies,
            reloader,
            config_path,
            shutdown: Some(tx),
            task: Some(task),
            policy_dir,
            _temp: None,
        }
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://ADDR` of the admin listener (`/metrics`, ...).
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin_addr)
    }

    /// Reloads the config file (as SIGHUP does).
    pub async fn reload(&self) -> Result<switchyard_core::reload::Reloaded, switchyard_core::reload::ReloadError> {
        self.reloader.reload().await
    }

    /// The gateway's policy host (the one it started with).
    pub fn policies(&self) -> &Arc<PolicyHost> {
        &self.policies
    }

    /// Stops accepting, lets open requests finish, and waits for that.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.admin.abort();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
