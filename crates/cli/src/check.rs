//! `switchyard policy check FILE.wasm`: load a component with the gateway's
//! real host (same limits, same linker) and say whether it can serve.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use switchyard_policy_host::{HealthBook, HostOptions, Limits, PolicyHost, PolicyOrigin, RouteInfo, Target, Topology};

use crate::EXIT_CONFIG;

pub(crate) async fn check(file: &Path, settings: Option<&str>) -> anyhow::Result<ExitCode> {
    let Some(name) = switchyard_policy_host::host::policy_name(file) else {
        eprintln!("error: {} is not a NAME.wasm file", file.display());
        return Ok(ExitCode::from(EXIT_CONFIG));
    };
    let settings = settings.unwrap_or("{}").to_owned();
    if serde_json_is_invalid(&settings) {
        eprintln!("error: --config must be JSON, like '{{\"max_attempts\": 3}}'");
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let target = |provider: &str, model: &str| Target { provider: provider.into(), model: model.into() };
    let topology = Topology {
        targets: vec![target("primary", "gpt-4o-mini"), target("backup", "gpt-4o-mini"), target("local", "llama3")],
        routes: vec![
            RouteInfo { model: "gpt-4o-mini".into(), targets: vec![0, 1] },
            RouteInfo { model: "*".into(), targets: vec![2, 1, 0] },
        ],
    };
    let options = HostOptions {
        topology,
        settings: [(name.clone(), settings)].into(),
        limits: Limits { decision_timeout: Duration::from_millis(5), memory_limit_bytes: 64 << 20 },
        cache_dir: None,
    };
    let host = PolicyHost::new(options, Arc::new(HealthBook::new(3)))?;
    let started = std::time::Instant::now();
    match host.prepare(&name, bytes, PolicyOrigin::File(file.to_owned())).await {
        Ok((version, _)) => {
            println!("{}: ok — {}", file.display(), version.label());
            println!("  satisfies switchyard:policy/policy@0.1.0; imports only WASI and switchyard:policy/host");
            println!("  compiled, instantiated, init accepted its settings, sample decisions valid within 5 ms");
            println!("  load + checks took {} ms", started.elapsed().as_millis());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("{}: REJECTED ({}) — {e}", file.display(), e.reason());
            Ok(ExitCode::FAILURE)
        }
    }
}

fn serde_json_is_invalid(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text).is_err()
}
