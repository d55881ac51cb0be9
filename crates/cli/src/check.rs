//! `switchyard policy check FILE.wasm`: load a component with the gateway's
//! real host (same limits, same linker) and say whether it can serve.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use switchyard_policy_host::{HealthBook, HostOptions, Limits, PolicyHost, PolicyOrigin, RouteInfo, Target, Topology};
use switchyard_wire::text::truncate;

use crate::EXIT_CONFIG;

pub(crate) async fn check(file: &Path, settings: Option<&str>, cache_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
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
        settings: [(name.clone(), settings)].into(),
        cache_dir,
        ..HostOptions::new(topology, Limits::new(Duration::from_millis(5), 64 << 20))
    };
    let host = PolicyHost::new(options, Arc::new(HealthBook::new(3)))?;
    let started = std::time::Instant::now();
    let size = bytes.len();
    let (version, from_cache) = match host.prepare(&name, bytes, PolicyOrigin::File(file.to_owned())).await {
        Ok(loaded) => loaded,
        Err(e) => {
            say!("{}: REJECTED ({}) — {e}", file.display(), e.reason());
            return Ok(ExitCode::FAILURE);
        }
    };
    let loaded = started.elapsed();
    say!("{}: {} ({} KiB)", file.display(), version.label(), size.div_ceil(1024));
    if !switchyard_policy_host::host::conventional_name(&name) {
        say!("  name       hint: {}", switchyard_policy_host::host::name_hint(&name));
    }
    say!("  world      switchyard:policy/policy@{} — satisfied", switchyard_policy_host::world_version());
    let imports = version.imports();
    say!("  imports    {}", if imports.is_empty() { "none".to_owned() } else { imports.join(", ") });
    let how = if from_cache { "from the compile cache" } else { "compile" };
    say!("  load       {} ms ({how}, link, init, load-time checks)", loaded.as_millis());
    let report = host.conformance(&version).await;
    say!("  scenarios");
    for s in &report.scenarios {
        if s.passed {
            say!("    ok   {} — {}", s.name, truncate(&s.detail, 160));
        } else {
            // A failure in full: a trap's frames and what the policy wrote.
            say!("    FAIL {} — {}", s.name, s.detail.replace('\n', "\n      "));
        }
    }
    let us = |d: std::time::Duration| format!("{:.1} µs", d.as_secs_f64() * 1e6);
    say!("  instantiate {} (fresh instance + init, median)", us(report.instantiate));
    say!("  route       p50 {} p99 {}", us(report.route.0), us(report.route.1));
    say!("  on-attempt  p50 {} p99 {}", us(report.on_attempt.0), us(report.on_attempt.1));
    say!(
        "  memory      {} KiB high-water (limit 64 MiB) per instance; {} instance(s) alive",
        report.memory_high_water / 1024,
        report.instances
    );
    let (mean, max, budget) = report.fuel;
    say!(
        "  fuel        {mean} instructions per decision on average, {max} at most (budget {budget}: {:.1} %)",
        max as f64 * 100.0 / budget.max(1) as f64
    );
    if report.passed() {
        say!("ok");
        Ok(ExitCode::SUCCESS)
    } else {
        say!("FAILED: {} scenario(s)", report.scenarios.iter().filter(|s| !s.passed).count());
        Ok(ExitCode::FAILURE)
    }
}

fn serde_json_is_invalid(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text).is_err()
}
