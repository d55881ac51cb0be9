//! `switchyard serve` and `switchyard validate`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use std::sync::Arc;

use switchyard_core::gateway::policy_host_options;
use switchyard_core::{Gateway, GatewayError};
use switchyard_policy_host::embedded;
use switchyard_policy_host::{HealthBook, PolicyHost, PolicyOrigin};

use crate::{EXIT_CONFIG, shutdown_signal};

/// The config at `path`, or `None` after saying what is wrong with it.
/// A route's attempt limits, as `validate` prints them.
fn limits(t: &switchyard_config::TimeoutsSection, r: &switchyard_config::Route) -> String {
    let s = |ms: u64| format!("{} s", ms as f64 / 1000.0);
    let first_token = match r.first_token_timeout_ms {
        Some(ms) => s(ms),
        None if t.first_token_floor_ms >= t.first_token_timeout_ms => s(t.first_token_timeout_ms),
        None => format!(
            "{} (then 4 × the target's p95, {}–{})",
            s(t.first_token_timeout_ms),
            s(t.first_token_floor_ms),
            s(t.first_token_timeout_ms)
        ),
    };
    format!(
        "first token {first_token}, idle {}, whole answer {}",
        s(r.idle_timeout_ms.unwrap_or(t.idle_timeout_ms)),
        s(r.answer_timeout_ms.unwrap_or(t.answer_timeout_ms))
    )
}

fn load(path: &Path) -> Option<switchyard_config::Config> {
    switchyard_config::load_file(path).map_err(|e| eprintln!("error: {e}")).ok()
}

pub(crate) async fn serve(path: &Path) -> anyhow::Result<ExitCode> {
    let Some(config) = load(path) else { return Ok(ExitCode::from(EXIT_CONFIG)) };
    let gateway = match Gateway::new(&config, |var| std::env::var(var).ok()).await {
        Ok(g) => g,
        Err(
            e @ (GatewayError::MissingKey { .. } | GatewayError::Provider { .. } | GatewayError::PolicySettings { .. }),
        ) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
        Err(e) => return Err(e).context("starting the gateway"),
    };
    // Reloads: SIGHUP, a change of the file, POST /admin/reload.
    gateway.set_config_path(path);
    let _config_watcher = match gateway.watch_config() {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(
                "not watching the config file for changes ({e}); SIGHUP and POST /admin/reload still reload"
            );
            None
        }
    };
    #[cfg(unix)]
    {
        let reloader = gateway.reloader();
        let mut hangups =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).context("listening for SIGHUP")?;
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                match reloader.reload().await {
                    Ok(_) => tracing::info!("SIGHUP: config reloaded"),
                    Err(e) => tracing::error!("SIGHUP: the new config was refused, the running one keeps serving: {e}"),
                }
            }
        });
    }
    if let Some(admin) = &config.admin_listen {
        let token = match &config.admin.token_env {
            Some(var) => Some(std::env::var(var).ok().filter(|t| !t.is_empty()).with_context(|| {
                format!("[admin] token_env names {var}, which is not set: the admin listener needs its token")
            })?),
            None => None,
        };
        let listener =
            tokio::net::TcpListener::bind(admin).await.with_context(|| format!("binding admin_listen {admin}"))?;
        tracing::info!(%admin, "admin listener: GET /metrics, GET /status, /admin/...");
        tokio::spawn(gateway.admin(listener, token));
    }
    let listener =
        switchyard_core::listen(&config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(listen = %config.listen, policy_dir = %config.policy_dir().display(), "switchyard serving");
    gateway.serve(listener, shutdown_signal()).await;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn validate(path: &Path) -> anyhow::Result<ExitCode> {
    let Some(config) = load(path) else { return Ok(ExitCode::from(EXIT_CONFIG)) };
    let dir = config.policy_dir();
    say!("{}: ok", path.display());
    say!("  listen {}; policy folder {}", config.listen, dir.display());
    for p in &config.providers {
        let key = match &p.api_key_env {
            Some(var) if std::env::var_os(var).is_some() => format!("key from ${var}"),
            Some(var) => format!("WARNING: ${var} is not set; `serve` will refuse to start"),
            None => "no key".into(),
        };
        let api = match p.api {
            switchyard_config::Api::Openai => "OpenAI API",
            switchyard_config::Api::Anthropic => "Anthropic API",
        };
        let quota = p.quota();
        let limits: Vec<String> = [("rpm", quota.rpm), ("tpm", quota.tpm), ("max_concurrency", quota.max_concurrency)]
            .iter()
            .filter_map(|(name, v)| v.map(|v| format!("{name} {v}")))
            .collect();
        let limits = if limits.is_empty() { String::new() } else { format!("; {}", limits.join(", ")) };
        say!("  provider {:?} ({api}) at {} — {key}{limits}", p.name.get_ref(), p.base_url.get_ref());
    }
    if let Some(tls) = &config.tls {
        let (cert, key) = (config.base_dir.join(&tls.cert_file), config.base_dir.join(&tls.key_file));
        match (cert.exists(), key.exists()) {
            (true, true) => say!("  tls {} + {} (HTTP/2 or HTTP/1.1 by ALPN)", cert.display(), key.display()),
            _ => say!(
                "  tls WARNING: {} or {} does not exist; `serve` will refuse to start",
                cert.display(),
                key.display()
            ),
        }
    }
    for k in &config.keys {
        say!("  key {:?}: priority {}", k.name, k.priority.as_str());
    }
    if config.state.backend == switchyard_config::StateBackend::Redis {
        let var = &config.state.url_env;
        let url = match std::env::var_os(var) {
            Some(_) => format!("URL from ${var}"),
            None => format!("WARNING: ${var} is not set; `serve` will refuse to start"),
        };
        say!("  state shared through redis under {:?} — {url}", config.state.prefix);
    }
    // Load every policy a route uses, with its settings, exactly as `serve` would.
    let options = policy_host_options(&config);
    let health = Arc::new(HealthBook::new(options.topology.targets.len()));
    let host = PolicyHost::new(options, health)?;
    let mut refused = false;
    for r in &config.routes {
        let policy = r.policy_name(&config.policy);
        let file = dir.join(format!("{policy}.wasm"));
        let (origin, bytes) = if file.exists() {
            (
                "from the policy folder",
                Some(std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?),
            )
        } else {
            ("embedded", embedded::embedded(policy).map(<[u8]>::to_vec))
        };
        let verdict = match bytes {
            None => "WARNING: not found; the built-in fallback will decide until it is dropped in".to_owned(),
            Some(bytes) => match host.prepare(policy, bytes, PolicyOrigin::File(file)).await {
                Ok((version, _)) => format!("{} ({origin}), settings accepted", version.label()),
                Err(e) => {
                    refused = true;
                    format!("ERROR ({origin}): {e}")
                }
            },
        };
        let targets: Vec<String> = r.targets.iter().map(|t| format!("{}/{}", t.provider.get_ref(), t.model)).collect();
        say!(
            "  route {:?} → [{}] deadline {} ms, {}, policy {policy:?}: {verdict}",
            r.model.get_ref(),
            targets.join(", "),
            r.timeout_ms,
            limits(&config.timeouts, r)
        );
    }
    Ok(if refused { ExitCode::from(EXIT_CONFIG) } else { ExitCode::SUCCESS })
}
