//! `switchyard serve` and `switchyard validate`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use switchyard_core::Gateway;
use switchyard_policy_host::embedded;

use crate::{EXIT_CONFIG, shutdown_signal};

pub(crate) async fn serve(path: &Path) -> anyhow::Result<ExitCode> {
    let config = match switchyard_config::load_file(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    let gateway = match Gateway::new(&config, |var| std::env::var(var).ok()).await {
        Ok(g) => g,
        Err(e @ switchyard_core::GatewayError::MissingKey { .. })
        | Err(e @ switchyard_core::GatewayError::Provider { .. }) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
        Err(e) => return Err(e).context("starting the gateway"),
    };
    let listener =
        tokio::net::TcpListener::bind(&config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(listen = %config.listen, policy_dir = %config.policy_dir().display(), "switchyard serving");
    gateway.serve(listener, shutdown_signal()).await;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn validate(path: &Path) -> anyhow::Result<ExitCode> {
    let config = match switchyard_config::load_file(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    let dir = config.policy_dir();
    println!("{}: ok", path.display());
    println!("  listen {}; policy folder {}", config.listen, dir.display());
    for p in &config.providers {
        let key = match &p.api_key_env {
            Some(var) if std::env::var_os(var).is_some() => format!("key from ${var}"),
            Some(var) => format!("WARNING: ${var} is not set; `serve` will refuse to start"),
            None => "no key".into(),
        };
        println!("  provider {:?} ({:?}) at {} — {key}", p.name.get_ref(), p.api, p.base_url.get_ref());
    }
    for r in &config.routes {
        let policy = r.policy_name(&config.policy);
        let source = if dir.join(format!("{policy}.wasm")).exists() {
            "from the policy folder".to_owned()
        } else if embedded::embedded(policy).is_some() {
            "embedded".to_owned()
        } else {
            "WARNING: not found; the built-in fallback will decide until it is dropped in".to_owned()
        };
        let targets: Vec<String> = r.targets.iter().map(|t| format!("{}/{}", t.provider.get_ref(), t.model)).collect();
        println!(
            "  route {:?} → [{}] policy {policy:?} ({source}), deadline {} ms",
            r.model.get_ref(),
            targets.join(", "),
            r.timeout_ms
        );
    }
    Ok(ExitCode::SUCCESS)
}
