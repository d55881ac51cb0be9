//! `switchyard simulate` and `switchyard mock --scenario` as a user runs
//! them: a shipped scenario, as it is; two policies side by side; a
//! scenario's providers served for real clients.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use switchyard_testkit::plugin_artifact;

fn switchyard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
}

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/scenarios").join(name)
}

#[test]
fn a_shipped_scenario_runs_as_it_is_and_writes_its_report_as_text_json_and_a_chart() {
    let dir = tempfile::tempdir().unwrap();
    let (json, html) = (dir.path().join("report.json"), dir.path().join("report.html"));
    let out = switchyard()
        .args(["simulate", "--scenario"])
        .arg(scenario("all-down-cached.toml"))
        .arg("--json")
        .arg(&json)
        .arg("--html")
        .arg(&html)
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("requests 2,399") && stdout.contains("cached 1,200") && stdout.contains("failed 0"),
        "{stdout}"
    );
    assert!(stderr.contains("simulated requests per wall second"), "the speed goes to stderr: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["degraded"]["cached"], 1200);
    assert_eq!(report["timeline"]["steps"].as_array().unwrap().len(), 60);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg") && page.contains("all-down-cached") && !page.contains("<script"), "self-contained");
}

#[test]
fn two_policies_compare_side_by_side_on_the_same_scenario() {
    let out = switchyard()
        .args(["simulate", "--scenario"])
        .arg(scenario("all-down-cached.toml"))
        .arg("--compare")
        .arg(plugin_artifact("failover"))
        .arg(plugin_artifact("resilient"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let header = stdout.lines().nth(1).unwrap_or_default();
    assert!(header.contains("failover@") && header.contains("resilient@"), "{stdout}");
    // The same traffic for both: the same requests answered before the
    // outage; in it, `resilient` (its settings from the scenario) serves
    // every request from the cache, `failover` a few fewer.
    let row = |name: &str| -> Vec<String> {
        let line = stdout.lines().find(|l| l.trim_start().starts_with(name)).unwrap();
        line.trim_start()[name.len()..].split_whitespace().map(str::to_owned).collect()
    };
    assert_eq!(row("answered by a provider"), ["1,199", "1,199"], "{stdout}");
    assert_eq!(row("degraded")[1], "1,200", "{stdout}");
    assert_eq!(row("failed")[1], "0", "{stdout}");
    assert_ne!(row("failed")[0], "0", "{stdout}");
}

#[test]
fn a_missing_scenario_or_policy_is_a_usage_error() {
    let out = switchyard().args(["simulate", "--scenario", "/nonexistent.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.toml"));
    let out = switchyard()
        .args(["simulate", "--scenario"])
        .arg(scenario("all-down-cached.toml"))
        .args(["--policy", "/nonexistent.wasm"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn mock_serves_a_scenarios_providers_with_their_faults_in_real_time() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("outage.toml");
    std::fs::write(
        &file,
        r#"
duration = "1h"
[traffic]
rate = 1
[[providers]]
name = "down"
latency_ms = 10
[[providers.fault]]
from = "0s"
to = "1h"
kind = "rate_limited"
retry_after_s = 12
[[providers]]
name = "claude"
api = "anthropic"
latency_ms = 10
first_token_ms = 10
"#,
    )
    .unwrap();
    let mut child = switchyard()
        .args(["mock", "--scenario"])
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut urls = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(url) = line.split("base_url = \"").nth(1) {
            urls.push(url.trim_end_matches('"').to_owned());
        }
        if line.starts_with("The fault timelines run") {
            break;
        }
    }
    assert_eq!(urls.len(), 2, "one URL per provider");
    let limited = switchyard_testkit::post_chat(&urls[0], "gpt-4o-mini").await;
    assert_eq!(limited.status.as_u16(), 429);
    assert_eq!(limited.header("retry-after"), "12");
    let answered = switchyard_testkit::post_messages(&urls[1], "claude-haiku").await;
    assert_eq!(answered.status.as_u16(), 200, "{}", answered.body);
    assert_eq!(answered.json()["type"], "message", "Anthropic's wire: {}", answered.body);
    assert!(answered.body.contains("Answer from claude"), "{}", answered.body);
    let stream = switchyard_testkit::post_messages_stream(&urls[1], "claude-haiku").await;
    let text = stream.rest(std::time::Duration::from_secs(5)).await;
    assert!(text.contains("event: message_stop"), "{text}");
    child.kill().unwrap();
    let _ = child.wait();
}
