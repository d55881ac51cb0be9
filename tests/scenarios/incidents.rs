//! What an operator is told: a provider goes down and comes back, and the
//! incident webhook hears of it in order (retried when it refuses), the
//! event log and the admin API say the same, and the live status page shows
//! it in a real headless browser.

use crate::*;

/// A config whose single-target route `m` is on `flaky`, whose breaker opens
/// after 2 failures and probes after 300 ms, with a webhook to `hook`.
fn outage_config(flaky: &MockProvider, hook: &str) -> ConfigBuilder {
    ConfigBuilder::new()
        .top(&format!("[[webhooks]]\nurl = \"{hook}/incident\""))
        .top("[breaker]\nfailures = 2\ncool_down_ms = 300")
        .provider("flaky", &flaky.url())
        .route("m", None, 5000, &["flaky"])
}

/// Sends requests until `flaky/m`'s breaker reads `state`.
async fn until_breaker(gw: &TestGateway, state: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let targets = get(&gw.admin_url(), "/admin/targets").await.json();
        if targets[0]["breaker"] == state {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "the breaker never went {state}: {targets}");
        let _ = post_chat(&gw.url(), "m").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_webhook_hears_the_breaker_open_the_route_go_down_and_both_recover_in_order() {
    init_tracing();
    // The receiver refuses the first POST: the sender retries it.
    let hook = Receiver::start(1).await;
    let flaky = MockProvider::start_cycling("flaky", vec![Reply::status(500)]).await;
    let gw = TestGateway::start(&outage_config(&flaky, &hook.url())).await;
    until_breaker(&gw, "open").await;
    flaky.set_cycle(vec![Reply::Ok]);
    tokio::time::sleep(Duration::from_millis(400)).await;
    until_breaker(&gw, "closed").await;

    let got = hook.wait_for(PATIENCE, |got| got.len() >= 4).await;
    let kinds: Vec<String> = got.iter().map(|r| r.json()["kind"].as_str().unwrap().to_owned()).collect();
    assert_eq!(kinds, ["breaker_opened", "route_down", "breaker_closed", "route_recovered"], "{got:?}");
    assert_eq!(hook.refused(), 1, "the first POST was refused and retried");
    let opened = got[0].json();
    assert_eq!(opened["subject"], "flaky/m");
    assert_eq!(opened["severity"], "warning");
    assert!(opened["text"].as_str().unwrap().starts_with("[switchyard] warning: breaker opened (flaky/m)"), "{opened}");
    let down = got[1].json();
    assert_eq!((down["subject"].as_str(), down["severity"].as_str()), (Some("m"), Some("critical")));
    assert!(got.iter().all(|r| r.path == "/incident" && r.headers["content-type"] == "application/json"));

    // The event log says the same, and what the webhook is not sent.
    let events = get(&gw.admin_url(), "/admin/events").await.json();
    let logged: Vec<&str> = events.as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert!(logged.contains(&"policy_loaded"), "{logged:?}");
    let incidents: Vec<&str> = logged.iter().copied().filter(|k| !k.starts_with("policy_")).collect();
    assert_eq!(incidents, ["breaker_opened", "route_down", "breaker_closed", "route_recovered"]);
    let after = events[1]["id"].as_u64().unwrap();
    let later = get(&gw.admin_url(), &format!("/admin/events?after={after}&limit=2")).await.json();
    assert_eq!(later.as_array().unwrap().len(), 2);
    assert!(later[0]["id"].as_u64().unwrap() > after);
    let metrics = get(&gw.admin_url(), "/metrics").await.body;
    assert!(metrics.contains(r#"switchyard_webhook_deliveries_total{result="delivered"} 4"#), "{metrics}");
}

#[tokio::test]
async fn an_operator_forcing_a_breaker_is_an_event_and_the_policies_endpoint_says_what_serves() {
    init_tracing();
    let a = MockProvider::start("a").await;
    let b = MockProvider::start("b").await;
    let config =
        ConfigBuilder::new().provider("a", &a.url()).provider("b", &b.url()).route("m", None, 5000, &["a", "b"]);
    let gw = TestGateway::start(&config).await;
    for _ in 0..5 {
        assert_eq!(post_chat(&gw.url(), "m").await.status, 200);
    }
    let forced = post_raw(&gw.admin_url(), "/admin/breaker", r#"{"target":"a/m","state":"open"}"#, &[]).await;
    assert_eq!(forced.status, 200, "{}", forced.body);
    let before = a.received();
    assert_eq!(post_chat(&gw.url(), "m").await.header("x-switchyard-provider"), "b");
    assert_eq!(a.received(), before, "a forced-open target gets no traffic");
    let events = get(&gw.admin_url(), "/admin/events").await.json();
    let forced = events.as_array().unwrap().iter().find(|e| e["kind"] == "breaker_forced").expect("an event");
    assert_eq!(forced["subject"], "a/m");

    let policies = get(&gw.admin_url(), "/admin/policies").await.json();
    let failover = policies.as_array().unwrap().iter().find(|p| p["policy"] == "failover").expect("failover");
    assert_eq!(failover["routes"], serde_json::json!(["m"]));
    assert_eq!(failover["current"]["origin"], "embedded");
    assert!(failover["current"]["version"].as_str().unwrap().starts_with("failover@"));
    assert_eq!(failover["embedded"]["version"], failover["current"]["version"]);
    assert!(failover["current"]["loaded_at"].as_str().unwrap().ends_with('Z'));
    assert!(failover["decisions_sampled"].as_u64().unwrap() >= 6, "{failover}");
    let (p50, p99) = (failover["decision_p50_us"].as_f64().unwrap(), failover["decision_p99_us"].as_f64().unwrap());
    assert!(p50 > 0.0 && p50 <= p99, "{failover}");
    assert_eq!(failover["fallbacks"], 0);
    let metrics = get(&gw.admin_url(), "/metrics").await.body;
    assert!(metrics.contains(r#"switchyard_policy_info{policy="failover",version=""#), "{metrics}");
    assert!(metrics.contains(r#"switchyard_policy_loads_total{policy="failover",result="loaded"} 1"#));
}

/// The Chromium from Debian's packages the test command installs
/// (`SWITCHYARD_CHROMIUM` overrides the path).
fn chromium() -> String {
    let path = std::env::var("SWITCHYARD_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let found = std::process::Command::new(&path).arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "no headless browser: install Debian's `chromium` package (./scripts/test.sh does) or set SWITCHYARD_CHROMIUM"
    );
    path
}

/// Runs headless Chromium on `url` with `args`, after the page's scripts ran
/// for `budget_ms` of virtual time; returns stdout.
async fn headless(url: &str, budget_ms: u32, args: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(chromium());
    command
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .args(args)
        .arg(url);
    let out = tokio::task::spawn_blocking(move || command.output()).await.unwrap().expect("chromium runs");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn the_status_page_in_a_headless_browser_shows_a_provider_going_down() {
    init_tracing();
    let flaky = MockProvider::start_cycling("flaky", vec![Reply::status(500)]).await;
    let good = MockProvider::start("good").await;
    let config = ConfigBuilder::new()
        .top("[breaker]\nfailures = 2\ncool_down_ms = 60000")
        .provider("flaky", &flaky.url())
        .provider("good", &good.url())
        .route("m", None, 5000, &["flaky"])
        .route("n", None, 5000, &["good"]);
    let gw = TestGateway::start(&config).await;
    let page = format!("{}/status", gw.admin_url());

    // Healthy first: the page says so.
    for _ in 0..3 {
        assert_eq!(post_chat(&gw.url(), "n").await.status, 200);
    }
    let dom = headless(&page, 3000, &["--dump-dom"]).await;
    assert!(dom.contains(r#"data-target="flaky/m" data-state="closed""#), "{dom}");
    assert!(dom.contains("All targets healthy"), "{dom}");

    // flaky goes down: its breaker opens and the page shows it, with the incident.
    until_breaker(&gw, "open").await;
    let dom = headless(&page, 3000, &["--dump-dom"]).await;
    assert!(dom.contains(r#"data-target="flaky/m" data-state="open""#), "the page shows flaky/m open:\n{dom}");
    assert!(dom.contains(r#"data-target="good/n" data-state="closed""#));
    assert!(dom.contains("1 of 2 targets down"), "{dom}");
    assert!(dom.contains(r#"data-kind="breaker_opened""#) && dom.contains(r#"data-kind="route_down""#), "{dom}");
    assert!(dom.contains(r#"data-route="m""#) && dom.contains(r#"data-policy="failover""#));
    // The hour's chart has this minute's failed attempts drawn in red.
    assert!(dom.contains(r##"fill="#c62828""##), "{dom}");

    // CI keeps a screenshot as an artifact.
    let shot = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/status-page.png");
    let _ = std::fs::remove_file(&shot);
    headless(&page, 3000, &["--window-size=1280,1100", &format!("--screenshot={}", shot.display())]).await;
    let png = std::fs::read(&shot).expect("the screenshot was written");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a real screenshot ({} bytes)", png.len());
}
