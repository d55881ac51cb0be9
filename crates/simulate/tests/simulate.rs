//! `switchyard simulate` as its users rely on it: one seed, one report;
//! outcomes that can be worked out by hand come out exactly; time is
//! virtual; every shipped scenario runs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use switchyard_simulate::{Options, Report, Scenario, simulate};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/scenarios")
}

/// A brown-out and a 429 burst on the primary; `explore` keeps the
/// policy's random draws in play.
const BROWN_OUT: &str = r#"
name = "brown-out"
duration = "4m"
[traffic]
rate = 4
stream_share = 0.5
anthropic_share = 0.25
prompt_tokens = [50, 300]
[[providers]]
name = "primary"
latency_ms = 700
[[providers.fault]]
from = "1m"
to = "2m"
kind = "status"
status = 502
share = 0.5
[[providers.fault]]
from = "2m30s"
to = "3m"
kind = "rate_limited"
retry_after_s = 10
share = 0.8
[[providers]]
name = "backup"
api = "anthropic"
latency_ms = 1100
[gateway.policy]
default = "resilient"
[gateway.policies.resilient]
explore = 0.2
[[gateway.providers]]
name = "primary"
[[gateway.providers]]
name = "backup"
[[gateway.routes]]
model = "m"
targets = [{ provider = "primary", model = "m" }, { provider = "backup", model = "claude-m" }]
"#;

fn run(scenario: &Scenario, seed: u64) -> Report {
    simulate(scenario, &Options { seed: Some(seed), ..Options::default() }).expect("the scenario runs")
}

#[test]
fn the_same_seed_gives_the_same_report_and_another_seed_another() {
    let scenario = Scenario::parse(BROWN_OUT, "brown-out").unwrap();
    let first = run(&scenario, 7);
    let again = run(&scenario, 7);
    assert_eq!(first, again, "same scenario, same seed: the same report, field for field");
    assert_eq!(first.text(), again.text());
    let other = run(&scenario, 8);
    assert_ne!(first.providers, other.providers, "another seed draws other arrivals and other faulted requests");
    // The brown-out happened, and the gateway rode it out.
    let primary = &first.providers[0];
    assert!(primary.faulted["status"] > 0 && primary.faulted["rate_limited"] > 0, "{primary:?}");
    assert!(first.providers[1].healthy > 0, "the backup (Anthropic wire, translated) answered");
    assert!(first.success_rate > 0.95, "{}", first.text());
}

#[test]
fn every_provider_down_for_ten_minutes_with_a_cache_serves_exactly_those_minutes_from_it() {
    // 2 requests a second, evenly spaced: requests 1..=1199 arrive in the
    // first ten minutes and are answered; both providers fail from minute
    // 10 on, so the 1,200 arriving in the last ten get cached answers.
    let scenario = Scenario::load(&examples().join("all-down-cached.toml")).unwrap();
    let report = run(&scenario, scenario.seed);
    assert_eq!(report.requests, 2399);
    assert_eq!(report.answered, 1199, "{}", report.text());
    assert_eq!(report.degraded.get("cached"), Some(&1200), "{}", report.text());
    assert_eq!(report.failed, 0);
    let last_ten: u64 = report.timeline.steps.iter().filter(|s| s.t_s >= 600.0).map(|s| s.answered).sum();
    assert_eq!(last_ten, 0, "no provider answered after minute 10");
}

#[test]
fn an_hour_of_hanging_providers_passes_in_virtual_time() {
    // Every request hangs 47 s at the primary before a 504: an hour of it
    // in real time would take an hour.
    let text = r#"
duration = "1h"
[traffic]
rate = 0.5
stream_share = 0.0
[[providers]]
name = "primary"
[[providers.fault]]
from = "0s"
to = "1h"
kind = "hang"
delay_ms = 47000
[[providers]]
name = "backup"
[gateway.policy]
default = "failover"
[[gateway.providers]]
name = "primary"
[[gateway.providers]]
name = "backup"
[[gateway.routes]]
model = "m"
timeout_ms = 60000
targets = [{ provider = "primary", model = "m" }, { provider = "backup", model = "m" }]
"#;
    let scenario = Scenario::parse(text, "hangs").unwrap();
    let started = Instant::now();
    let report = run(&scenario, 1);
    let wall = started.elapsed();
    assert!(report.requests > 1700, "{}", report.text());
    assert!(report.providers[0].faulted["hang"] > 0);
    assert!(
        wall < Duration::from_secs(180),
        "an hour of simulated time took {wall:?}: the clock is not virtual (or the machine is very slow)"
    );
}

#[test]
fn every_shipped_scenario_runs_as_it_is() {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(examples()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let mut scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // Its first minutes, thinly: the full runs are the README's and the bench's.
        scenario.duration = scenario.duration.min(Duration::from_secs(120));
        scenario.traffic.rate = scenario.traffic.rate.min(2.0);
        let report = run(&scenario, scenario.seed);
        assert!(report.requests > 100 && report.success_rate > 0.5, "{}:\n{}", path.display(), report.text());
        names.push(path.file_stem().unwrap().to_string_lossy().into_owned());
    }
    names.sort();
    assert_eq!(names, ["429-storm", "all-down-cached", "multi-hour-5xx", "stream-cuts", "timeouts-47s"]);
}

#[test]
fn a_scenario_with_a_mistake_is_refused_with_its_reason() {
    let cases = [
        ("duration = \"5 minutes\"\n[traffic]\nrate = 1\n[[providers]]\nname = \"p\"", "unknown unit"),
        ("duration = \"5m\"\n[traffic]\nrate = 0\n[[providers]]\nname = \"p\"", "traffic.rate"),
        (
            "duration = \"5m\"\n[traffic]\nrate = 1\n[[providers]]\nname = \"p\"\n[[providers.fault]]\nfrom = \"2m\"\nto = \"1m\"\nkind = \"status\"",
            "ends before it starts",
        ),
        ("duration = \"5m\"\n[traffic]\nrate = 1\n[[providers]]\nname = \"p\"\nspeed = 3", "unknown field"),
    ];
    for (text, reason) in cases {
        let err = Scenario::parse(text, "bad.toml").unwrap_err().to_string();
        assert!(err.contains(reason) && err.contains("bad.toml"), "{err}");
    }
    // A gateway provider the scenario does not describe.
    let text = BROWN_OUT.replace("[[providers]]\nname = \"backup\"\napi = \"anthropic\"\nlatency_ms = 1100\n", "");
    let scenario = Scenario::parse(&text, "missing").unwrap();
    let err = simulate(&scenario, &Options::default()).unwrap_err().to_string();
    assert!(err.contains("\"backup\" has no [[providers]] entry"), "{err}");
}
