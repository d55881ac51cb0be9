//! Prometheus metrics on the admin listener: exact counts after scripted
//! traffic through a failing and a healthy provider; labels only from config
//! names; no secret in a scrape; the admin token enforced.

use crate::*;

const KEY: &str = "sk-metrics-secret-0123456789";

/// The value of the sample `name{labels}` in a scrape (labels as rendered).
fn sample(scrape: &str, name_and_labels: &str) -> Option<f64> {
    scrape.lines().find_map(|l| l.strip_prefix(name_and_labels)?.trim().split(' ').next()?.parse().ok())
}

#[tokio::test]
async fn a_scrape_after_failovers_counts_every_request_attempt_and_token_exactly() {
    init_tracing();
    let primary = MockProvider::start_cycling("primary", vec![Reply::status(503)]).await;
    let backup = MockProvider::start("backup").await;
    let config = ConfigBuilder::new()
        .provider_with_key("primary", &primary.url(), "PRIMARY_KEY")
        .provider("backup", &backup.url())
        .route("m", None, 5000, &["primary", "backup"]);
    let gw = TestGateway::start_with_env(&config, |v| (v == "PRIMARY_KEY").then(|| KEY.to_owned())).await;
    for _ in 0..2 {
        assert_eq!(post_chat(&gw.url(), "m").await.status, 200);
    }
    assert_eq!(post_chat(&gw.url(), "unknown-model").await.status, 404);
    let r = get_with(&gw.admin_url(), "/metrics", &[("accept", "application/openmetrics-text; version=1.0.0")]).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").starts_with("application/openmetrics-text"), "{}", r.header("content-type"));
    let m = &r.body;
    let at = |s: &str| sample(m, s).unwrap_or_else(|| panic!("no sample {s} in:\n{m}"));
    assert_eq!(at(r#"switchyard_requests_total{route="m",api="openai",status="200",degraded="no"}"#), 2.0);
    // Each request: the primary's 503, retried once on it, then the backup.
    assert_eq!(at(r#"switchyard_attempts_total{target="primary/m",outcome="overloaded"}"#), 4.0);
    assert_eq!(at(r#"switchyard_attempts_total{target="backup/m",outcome="success"}"#), 2.0);
    assert_eq!(at(r#"switchyard_tokens_total{target="backup/m",direction="in"}"#), 10.0);
    assert_eq!(at(r#"switchyard_tokens_total{target="backup/m",direction="out"}"#), 6.0);
    assert_eq!(at(r#"switchyard_request_duration_seconds_count{route="m",api="openai"}"#), 2.0);
    assert_eq!(at(r#"switchyard_upstream_latency_seconds_count{target="backup/m"}"#), 2.0);
    assert_eq!(at(r#"switchyard_breaker_state{target="primary/m"}"#), 0.0, "4 failures: still closed");
    assert_eq!(at(r#"switchyard_inflight{target="backup/m"}"#), 0.0);
    // Four retries (two per request) out of the budget's floor of 10 per window.
    assert_eq!(at("switchyard_retry_budget_remaining"), 6.0);
    assert!(!m.contains("unknown-model"), "a client's model name never becomes a label");
    assert!(!m.contains(KEY), "no secret in a scrape");
    assert!(m.trim_end().ends_with("# EOF"), "OpenMetrics text");

    // A scraper that does not ask for OpenMetrics gets the classic text,
    // which Prometheus's own checker passes.
    let classic = get(&gw.admin_url(), "/metrics").await;
    assert!(classic.header("content-type").starts_with("text/plain; version=0.0.4"));
    assert!(classic.body.contains("# TYPE switchyard_requests_total counter"));
    assert!(!classic.body.contains("# EOF"));
    let (ok, said) = promtool(&["check", "metrics"], &classic.body);
    assert!(ok, "promtool check metrics: {said}\n{}", classic.body);
}

/// Runs Debian's `promtool` (installed by the test command) on `stdin`.
pub fn promtool(args: &[&str], stdin: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs: install Debian's `prometheus` package (./scripts/test.sh does)");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test]
async fn the_admin_listener_wants_its_token_when_one_is_set() {
    init_tracing();
    let backup = MockProvider::start("backup").await;
    let toml = ConfigBuilder::new()
        .provider("backup", &backup.url())
        .route("m", None, 5000, &["backup"])
        .build(std::path::Path::new("/nonexistent-policies"));
    let config = switchyard_config::from_str(&toml, "admin.toml").unwrap();
    let gateway = switchyard_core::Gateway::new(&config, |_| None).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let admin = tokio::spawn(gateway.admin(listener, Some("admin-token-42".into())));
    let denied = get(&url, "/metrics").await;
    assert_eq!(denied.status, 401);
    assert!(!denied.body.contains("admin-token-42"));
    let wrong = get_with(&url, "/metrics", &[("authorization", "Bearer admin-token-41")]).await;
    assert_eq!(wrong.status, 401);
    let ok = get_with(&url, "/metrics", &[("authorization", "Bearer admin-token-42")]).await;
    assert_eq!(ok.status, 200);
    assert!(ok.body.contains("switchyard_") && !ok.body.contains("admin-token-42"));
    admin.abort();
}

#[test]
fn a_non_loopback_admin_listener_without_a_token_is_refused_by_the_config() {
    let toml = r#"
admin_listen = "0.0.0.0:9090"
[[providers]]
name = "p"
api = "openai"
base_url = "http://127.0.0.1:1"
[[routes]]
model = "m"
targets = [{ provider = "p", model = "m" }]
"#;
    let err = switchyard_config::from_str(toml, "admin.toml").unwrap_err().to_string();
    assert!(err.contains("token_env"), "{err}");
    let with_token = toml.replace("[[providers]]", "[admin]\ntoken_env = \"SWITCHYARD_ADMIN_TOKEN\"\n[[providers]]");
    assert!(switchyard_config::from_str(&with_token, "admin.toml").is_ok());
}

#[tokio::test]
async fn a_breaker_forced_open_from_the_admin_api_gets_no_traffic_until_given_back() {
    init_tracing();
    let primary = MockProvider::start("primary").await;
    let backup = MockProvider::start("backup").await;
    let gw = TestGateway::start(&two_providers(&primary.url(), &backup.url())).await;
    let force = |state: &'static str| {
        let body = serde_json::json!({"target": "primary/m", "state": state}).to_string();
        let url = gw.admin_url();
        async move { post_raw(&url, "/admin/breaker", body, &[]).await }
    };
    let r = force("open").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!((r.json()["breaker"].as_str(), r.json()["forced"].as_str()), (Some("open"), Some("open")));
    for _ in 0..5 {
        let answer = post_chat(&gw.url(), "m").await;
        assert_eq!((answer.status.as_u16(), answer.header("x-switchyard-provider")), (200, "backup"));
    }
    assert_eq!(primary.received(), 0, "a forced-open target gets nothing, not even probes");
    let targets = get(&gw.admin_url(), "/admin/targets").await.json();
    let listed = targets.as_array().unwrap().iter().find(|t| t["target"] == "primary/m").unwrap().clone();
    assert_eq!(listed["forced"], "open");
    let routes = get(&gw.admin_url(), "/admin/routes").await.json();
    assert_eq!(routes[0]["targets"], serde_json::json!(["primary/m", "backup/m"]));
    assert!(routes[0]["serving"].as_str().unwrap().starts_with("failover@"), "{routes}");
    assert_eq!(force("auto").await.json()["forced"], serde_json::Value::Null);
    assert_eq!(post_chat(&gw.url(), "m").await.header("x-switchyard-provider"), "primary");
    assert_eq!(
        post_raw(&gw.admin_url(), "/admin/breaker", "{\"target\":\"nope/x\",\"state\":\"open\"}", &[]).await.status,
        404
    );
    assert_eq!(post_raw(&gw.admin_url(), "/admin/breaker", "not json", &[]).await.status, 400);
}

#[tokio::test]
async fn the_operator_examples_pass_promtool_and_query_only_metrics_a_scrape_has() {
    init_tracing();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/operations");
    for args in [["check", "config", "prometheus.yml"], ["check", "rules", "alerts.yml"]] {
        let out = std::process::Command::new("promtool").args(args).current_dir(&dir).output().expect("promtool runs");
        assert!(out.status.success(), "promtool {args:?}: {}", String::from_utf8_lossy(&out.stdout));
    }
    let backup = MockProvider::start("backup").await;
    let gw =
        TestGateway::start(&ConfigBuilder::new().provider("backup", &backup.url()).route("m", None, 5000, &["backup"]))
            .await;
    assert_eq!(post_chat(&gw.url(), "m").await.status, 200);
    let scrape = get(&gw.admin_url(), "/metrics").await.body;
    let mut queried = std::collections::BTreeSet::new();
    for file in ["alerts.yml", "grafana-dashboard.json"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        if file.ends_with(".json") {
            let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
            assert!(dashboard["panels"].as_array().is_some_and(|p| p.len() >= 10));
        }
        let mut rest = text.as_str();
        while let Some(at) = rest.find("switchyard_") {
            let name: String = rest[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            rest = &rest[at + name.len()..];
            queried.insert(name);
        }
    }
    assert!(queried.len() >= 12, "{queried:?}");
    // A family shows in a scrape once it has a sample; the others are
    // checked against what the gateway registers.
    let source = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/telemetry/src/metrics.rs"),
    )
    .unwrap();
    let registered: Vec<String> = source
        .split("registry.register(")
        .skip(1)
        .filter_map(|call| Some(format!("switchyard_{}", call.split('"').nth(1)?)))
        .collect();
    assert!(registered.len() >= 18, "{registered:?}");
    for name in &queried {
        let family =
            ["_bucket", "_count", "_sum", "_total"].iter().fold(name.as_str(), |n, s| n.strip_suffix(s).unwrap_or(n));
        let scraped = scrape.contains(&format!("# TYPE {name} ")) || scrape.contains(&format!("# TYPE {family} "));
        assert!(
            scraped || registered.iter().any(|r| r == family),
            "{name} is queried but the gateway has no such metric"
        );
    }
    assert!(scrape.contains("# TYPE switchyard_requests_total counter"));
}
