//! Config hot reload: on SIGHUP, on a change of the config file, and from
//! `POST /admin/reload`. The whole file is checked (the same line-numbered
//! errors as `switchyard validate`) and the next generation built beside the
//! serving one (keys read, policies loaded with their settings); only then
//! is it swapped in. A bad file is refused, logged, counted and evented,
//! and the running config keeps serving. Requests in flight finish on the
//! generation they started on.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::gateway::{GatewayError, Live};
use crate::generation::{Carried, Generation};
use switchyard_telemetry::events::Severity;

/// Why a reload was refused (the running config keeps serving).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The gateway was not started from a file.
    #[error("no config file to reload: the gateway was started without one")]
    NoConfigFile,
    /// The file is unreadable, not TOML, or does not make sense.
    #[error("{0}")]
    Config(#[from] switchyard_config::ConfigError),
    /// The file is valid but cannot be served (a key not set, a policy refusing its settings, ...).
    #[error("{0}")]
    Build(#[from] GatewayError),
    /// The config file's folder cannot be watched for changes.
    #[error("watching the config file: {0}")]
    Watch(String),
}

/// What a reload changed.
#[derive(Debug, Clone, Serialize)]
pub struct Reloaded {
    /// Routes new in this config.
    pub routes_added: Vec<String>,
    /// Routes gone.
    pub routes_removed: Vec<String>,
    /// Routes whose targets, policy or limits changed.
    pub routes_changed: Vec<String>,
    /// Providers whose connection pools were kept.
    pub providers_kept: usize,
    /// Providers built anew (new, or address, key or TLS roots changed).
    pub providers_new: usize,
    /// Targets whose health and breaker were carried over.
    pub targets_kept: usize,
    /// Targets starting with a clean record.
    pub targets_new: usize,
    /// The policy host (warm instances, policy state) was kept.
    pub policy_host_kept: bool,
    /// Settings that only take effect on a restart, when they changed.
    pub needs_restart: Vec<&'static str>,
}

impl Reloaded {
    fn sentence(&self) -> String {
        let list = |v: &[String]| if v.is_empty() { "none".to_owned() } else { v.join(", ") };
        let mut s = format!(
            "routes added: {}; removed: {}; changed: {}; providers kept {} (pools), new {}; targets kept {} (health), new {}; policy host {}",
            list(&self.routes_added),
            list(&self.routes_removed),
            list(&self.routes_changed),
            self.providers_kept,
            self.providers_new,
            self.targets_kept,
            self.targets_new,
            if self.policy_host_kept { "kept" } else { "rebuilt" },
        );
        if !self.needs_restart.is_empty() {
            s.push_str(&format!("; changed but only applied on restart: {}", self.needs_restart.join(", ")));
        }
        s
    }
}

fn route_print(config: &switchyard_config::Config, r: &switchyard_config::Route) -> String {
    let targets: Vec<String> = r.targets.iter().map(|t| format!("{}/{}", t.provider.get_ref(), t.model)).collect();
    format!(
        "{}|{:?}|{}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        targets.join(","),
        r.aliases,
        r.policy_name(&config.policy),
        r.timeout_ms,
        r.first_token_timeout_ms,
        r.idle_timeout_ms,
        r.answer_timeout_ms,
        r.connect_timeout_ms,
        r.model.get_ref()
    )
}

fn summary(before: &switchyard_config::Config, after: &switchyard_config::Config, carried: Carried) -> Reloaded {
    let prints = |c: &switchyard_config::Config| -> std::collections::BTreeMap<String, String> {
        c.routes.iter().map(|r| (r.model.get_ref().clone(), route_print(c, r))).collect()
    };
    let (old, new) = (prints(before), prints(after));
    let mut needs_restart = Vec::new();
    if before.listen != after.listen {
        needs_restart.push("listen");
    }
    if before.admin_listen != after.admin_listen || before.admin.token_env != after.admin.token_env {
        needs_restart.push("admin_listen/[admin]");
    }
    if before.webhooks != after.webhooks {
        needs_restart.push("[[webhooks]]");
    }
    if before.traces != after.traces {
        needs_restart.push("[traces]");
    }
    if before.tls != after.tls {
        needs_restart.push("[tls]");
    }
    Reloaded {
        routes_added: new.keys().filter(|k| !old.contains_key(*k)).cloned().collect(),
        routes_removed: old.keys().filter(|k| !new.contains_key(*k)).cloned().collect(),
        routes_changed: new
            .iter()
            .filter(|(k, v)| old.get(*k).is_some_and(|o| o != *v))
            .map(|(k, _)| k.clone())
            .collect(),
        providers_kept: carried.providers_kept,
        providers_new: carried.providers_new,
        targets_kept: carried.targets_kept,
        targets_new: carried.targets_new,
        policy_host_kept: carried.policy_host_kept,
        needs_restart,
    }
}

/// Builds `config`'s generation beside the serving one and swaps it in.
pub(crate) async fn apply(live: &Live, config: switchyard_config::Config) -> Result<Reloaded, ReloadError> {
    let _one = live.reloading.lock().await;
    let before = live.generation();
    let (next, carried) = Generation::build(
        config,
        &live.env,
        &live.telemetry,
        &live.closing,
        live.sharing.as_ref(),
        live.simulation.as_deref(),
        Some(&before),
    )
    .await?;
    let reloaded = summary(&before.config, &next.config, carried);
    live.swap(next);
    Ok(reloaded)
}

/// Reloads the config file; counts and events the outcome either way.
pub(crate) async fn from_file(live: &Live) -> Result<Reloaded, ReloadError> {
    let path = live.config_path.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let result = match path {
        None => Err(ReloadError::NoConfigFile),
        Some(path) => match switchyard_config::load_file(&path) {
            Ok(config) => apply(live, config).await,
            Err(e) => Err(e.into()),
        },
    };
    let events = &live.telemetry.events;
    match &result {
        Ok(reloaded) => {
            live.telemetry.registry.reload(true);
            events.emit("config_reloaded", Severity::Info, "config", reloaded.sentence());
        }
        Err(e) => {
            live.telemetry.registry.reload(false);
            events.emit(
                "config_rejected",
                Severity::Warning,
                "config",
                format!("the new config was refused, the running one keeps serving: {e}"),
            );
        }
    }
    result
}

/// Watches the config file; dropping it stops.
pub struct ConfigWatcher {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for ConfigWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigWatcher").finish()
    }
}

impl Drop for ConfigWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Editors write a file in several steps: wait for them to settle.
const SETTLE: Duration = Duration::from_millis(200);

fn digest(path: &Path) -> Option<[u8; 32]> {
    std::fs::read(path).ok().map(|bytes| Sha256::digest(&bytes).into())
}

/// Reloads whenever the config file's content changes (not on a mere touch).
pub(crate) fn watch(live: &Arc<Live>) -> Result<ConfigWatcher, ReloadError> {
    let path: PathBuf =
        live.config_path.lock().unwrap_or_else(|p| p.into_inner()).clone().ok_or(ReloadError::NoConfigFile)?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_owned();
    let name = path.file_name().map(|n| n.to_owned());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Reading the file is an event too (open, access, close): only a
        // change counts — else each read after an event would cause the next.
        if let Ok(event) = event
            && !matches!(event.kind, notify::EventKind::Access(_))
            && event.paths.iter().any(|p| p.file_name() == name.as_deref())
        {
            let _ = tx.send(());
        }
    })
    .map_err(|e| ReloadError::Watch(e.to_string()))?;
    notify::Watcher::watch(&mut watcher, &dir, notify::RecursiveMode::NonRecursive)
        .map_err(|e| ReloadError::Watch(format!("{}: {e}", dir.display())))?;
    let live = Arc::downgrade(live);
    let task = tokio::spawn(async move {
        let mut seen = digest(&path);
        while rx.recv().await.is_some() {
            tokio::time::sleep(SETTLE).await;
            while rx.try_recv().is_ok() {}
            let now = digest(&path);
            if now.is_none() || now == seen {
                continue;
            }
            seen = now;
            let Some(live) = live.upgrade() else { return };
            match from_file(&live).await {
                Ok(_) => tracing::info!(path = %path.display(), "config file changed: reloaded"),
                Err(e) => tracing::warn!(path = %path.display(), "config file changed but was refused: {e}"),
            }
        }
    });
    Ok(ConfigWatcher { _watcher: watcher, task })
}
