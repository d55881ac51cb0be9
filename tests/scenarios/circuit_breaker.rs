//! A target that keeps failing trips its breaker: the gateway stops sending
//! it client traffic, lets a probe through now and then, and sends traffic
//! back once a probe succeeds.

use std::time::{Duration, Instant};

use crate::*;

/// Sends a request every `every` until the primary answers one (every answer
/// must be a 200), within `patience`; how long that took.
async fn until_the_primary_answers(gw: &TestGateway, every: Duration, patience: Duration) -> Duration {
    let recovered = Instant::now();
    loop {
        let r = post_chat(&gw.url(), "m").await;
        assert_eq!(r.status, 200);
        if r.header("x-switchyard-provider") == "primary" {
            return recovered.elapsed();
        }
        assert!(recovered.elapsed() < patience, "no traffic back on the primary within {patience:?}");
        tokio::time::sleep(every).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_storm_costs_the_primary_only_half_open_probes_and_traffic_returns_when_it_recovers() {
    init_tracing();
    let primary = MockProvider::start_cycling("primary", vec![Reply::status(503)]).await;
    let backup = MockProvider::start("backup").await;
    // Cool-downs of 200 ms doubling to 800 ms, so a 4 s outage shows the shape
    // of a longer one with the defaults (5 s doubling to 10 s).
    let config =
        two_providers(&primary.url(), &backup.url()).top("[breaker]\ncool_down_ms = 200\nmax_cool_down_ms = 800");
    let gw = TestGateway::start(&config).await;

    let outage = Instant::now();
    let mut requests = 0;
    while outage.elapsed() < Duration::from_secs(4) {
        let r = post_chat(&gw.url(), "m").await;
        assert_eq!((r.status.as_u16(), r.header("x-switchyard-provider")), (200, "backup"), "{}", r.body);
        requests += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // 5 failures open the breaker; then one probe per cool-down: 200, 400,
    // 800, 800, ... ms — about 7 in 4 s.
    let primary_attempts = primary.received();
    eprintln!("{requests} client requests during the outage; the primary saw {primary_attempts} attempts");
    assert!(requests > 100, "only {requests} requests");
    assert!(primary_attempts <= 14, "the primary saw {primary_attempts} attempts for {requests} requests");

    primary.set_cycle(vec![Reply::Ok]);
    let back_after = until_the_primary_answers(&gw, Duration::from_millis(10), PATIENCE).await;
    for _ in 0..10 {
        let r = post_chat(&gw.url(), "m").await;
        assert_eq!(r.header("x-switchyard-provider"), "primary", "the breaker closed: the primary takes traffic");
    }
    eprintln!("traffic back on the primary {back_after:?} after it recovered");
}

#[tokio::test]
async fn when_every_breaker_is_open_only_probes_go_upstream_and_the_rest_get_a_503_at_once() {
    init_tracing();
    let primary = MockProvider::start_cycling("primary", vec![Reply::status(503)]).await;
    let backup = MockProvider::start_cycling("backup", vec![Reply::status(503)]).await;
    let config = two_providers(&primary.url(), &backup.url())
        .settings("failover", &["max_attempts = 2", "same_target_retries = 0"])
        .top("[breaker]\ncool_down_ms = 3000");
    let gw = TestGateway::start(&config).await;
    // Five failures each: both breakers open.
    for _ in 0..5 {
        assert_eq!(post_chat(&gw.url(), "m").await.status, 503);
    }
    let before = primary.received() + backup.received();
    assert_eq!(before, 10);
    // The all-down storm: 200 requests inside the cool-down cost no attempt.
    let started = Instant::now();
    for _ in 0..200 {
        let r = post_chat(&gw.url(), "m").await;
        assert_eq!(r.status, 503, "{}", r.body);
        assert!(r.body.contains("circuit breaker is open"), "{}", r.body);
        let wait: u64 = r.header("retry-after").parse().unwrap();
        assert!((1..=3).contains(&wait), "Retry-After {wait}: the longest cool-down left");
    }
    assert!(started.elapsed() < Duration::from_millis(2500), "the storm outlasted the cool-down");
    assert_eq!(primary.received() + backup.received(), before, "requests reached a provider whose breaker was open");
    // Once the cool-down ends, a probe goes; the providers are back, so it succeeds.
    primary.set_cycle(vec![Reply::Ok]);
    backup.set_cycle(vec![Reply::Ok]);
    tokio::time::sleep(Duration::from_millis(3100).saturating_sub(started.elapsed())).await;
    let r = post_chat(&gw.url(), "m").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(primary.received() + backup.received(), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_breaker_is_probed_so_a_recovered_primary_gets_traffic_back_without_risking_a_client_request() {
    init_tracing();
    let primary = MockProvider::start("primary").await;
    let backup = MockProvider::start("backup").await;
    let config = ConfigBuilder::new()
        .provider_with("primary", &primary.url(), &["probe = \"models\"", "probe_interval_ms = 100"])
        .provider("backup", &backup.url())
        .route("m", None, 5000, &["primary", "backup"])
        // A cool-down far longer than the test: only the probe can close it.
        .top("[breaker]\ncool_down_ms = 60000");
    let gw = TestGateway::start(&config).await;
    for _ in 0..10 {
        assert_eq!(post_chat(&gw.url(), "m").await.header("x-switchyard-provider"), "primary");
    }
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(primary.received(), 10, "no probes while the breaker is closed");

    primary.set_cycle(vec![Reply::status(503)]);
    for _ in 0..10 {
        let r = post_chat(&gw.url(), "m").await;
        assert_eq!((r.status.as_u16(), r.header("x-switchyard-provider")), (200, "backup"));
    }
    primary.set_cycle(vec![Reply::Ok]);
    let back_after = until_the_primary_answers(&gw, Duration::from_millis(20), Duration::from_secs(5)).await;
    eprintln!("a probe closed the breaker {back_after:?} after the primary recovered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_long_outage_a_recovered_primary_has_traffic_back_within_ten_seconds_with_the_defaults() {
    init_tracing();
    let primary = MockProvider::start_cycling("primary", vec![Reply::status(503)]).await;
    let backup = MockProvider::start("backup").await;
    // Default breaker and policy settings.
    let gw = TestGateway::start(&two_providers(&primary.url(), &backup.url())).await;
    // 25 s down, one client request every 100 ms: the cool-down doubles
    // (5 s, then 10 s) and stays at 10 s; every request is answered.
    let outage = Instant::now();
    let mut requests = 0;
    while outage.elapsed() < Duration::from_secs(25) {
        let r = post_chat(&gw.url(), "m").await;
        assert_eq!((r.status.as_u16(), r.header("x-switchyard-provider")), (200, "backup"), "{}", r.body);
        requests += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let during = primary.received();
    eprintln!("{requests} requests in a 25 s outage; the primary saw {during} attempts");
    assert!(during <= 10, "the primary saw {during} attempts: probes must stay bounded");
    primary.set_cycle(vec![Reply::Ok]);
    let back_after = until_the_primary_answers(&gw, Duration::from_millis(100), Duration::from_secs(11)).await;
    eprintln!("traffic back on the recovered primary after {back_after:?}");
}
