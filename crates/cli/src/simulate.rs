//! `switchyard simulate` and `switchyard mock --scenario`: a scenario file
//! run against the real gateway in virtual time, or served as mock
//! providers in real time for a staging gateway and real clients.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use switchyard_simulate::{Options, Report, Scenario, SimulateError};

use crate::EXIT_CONFIG;

/// What `switchyard simulate` was asked.
pub(crate) struct Args {
    pub scenario: PathBuf,
    pub config: Option<PathBuf>,
    pub policy: Option<PathBuf>,
    pub seed: Option<u64>,
    pub compare: Vec<PathBuf>,
    pub json: Option<PathBuf>,
    pub html: Option<PathBuf>,
}

fn mistake(e: &SimulateError) -> bool {
    matches!(e, SimulateError::Scenario(_) | SimulateError::Config(_) | SimulateError::Policy(_))
}

/// Runs the scenario (twice with `--compare`); the report on stdout, the
/// wall time on stderr (so that the same seed prints the same report).
pub(crate) fn simulate(args: Args) -> anyhow::Result<ExitCode> {
    let scenario = match Scenario::load(&args.scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    let policies: Vec<Option<PathBuf>> = if args.compare.is_empty() {
        vec![args.policy.clone()]
    } else {
        args.compare.iter().cloned().map(Some).collect()
    };
    let mut reports = Vec::new();
    for policy in policies {
        let options = Options { seed: args.seed, config: args.config.clone(), policy };
        let started = Instant::now();
        let report = match switchyard_simulate::simulate(&scenario, &options) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(ExitCode::from(if mistake(&e) { EXIT_CONFIG } else { 1 }));
            }
        };
        let wall = started.elapsed().as_secs_f64();
        eprintln!(
            "{}: {} requests over {:.0} simulated seconds in {wall:.1} s of wall time ({:.0} simulated requests per wall second)",
            report.policy,
            report.requests,
            report.simulated_seconds,
            report.requests as f64 / wall.max(1e-9)
        );
        reports.push(report);
    }
    write_outputs(&args, &reports)?;
    if args.json.as_deref() != Some(Path::new("-")) {
        match reports.as_slice() {
            [a, b] => say!("{}", switchyard_simulate::compare_text(a, b)),
            _ => {
                for r in &reports {
                    say!("{}", r.text());
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn write_outputs(args: &Args, reports: &[Report]) -> anyhow::Result<()> {
    if let Some(path) = &args.json {
        let json = match reports {
            [one] => serde_json::to_string_pretty(one)?,
            many => serde_json::to_string_pretty(many)?,
        };
        if path == Path::new("-") {
            say!("{json}");
        } else {
            std::fs::write(path, json + "\n").map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        }
    }
    if let Some(path) = &args.html {
        let all: Vec<&Report> = reports.iter().collect();
        std::fs::write(path, switchyard_simulate::html(&all))
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// `switchyard mock --scenario FILE`: the scenario's providers on loopback,
/// their fault timelines running from now, until Ctrl-C.
pub(crate) async fn mock(scenario: &Path, seed: Option<u64>) -> anyhow::Result<ExitCode> {
    let scenario = match Scenario::load(scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    let seed = seed.unwrap_or(scenario.seed);
    let mut running = Vec::new();
    for plan in &scenario.providers {
        let (name, api, faults) = (plan.name.clone(), plan.api.clone(), plan.faults.len());
        let mock = switchyard_mock::MockProvider::start_planned(plan.clone(), seed)
            .await
            .map_err(|e| anyhow::anyhow!("provider {name:?}: cannot listen on port {}: {e}", plan.port))?;
        say!("provider {name} ({api} wire, {faults} faults): base_url = \"{}\"", mock.url());
        running.push(mock);
    }
    say!(
        "The fault timelines run from now for {} (seed {seed}). Point a gateway's providers at the URLs above; Ctrl-C stops.",
        switchyard_simulate::report::clock(scenario.duration.as_secs_f64())
    );
    crate::shutdown_signal().await;
    drop(running);
    Ok(ExitCode::SUCCESS)
}
