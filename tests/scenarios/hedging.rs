//! A provider that accepts requests and never answers (the 47-second hang)
//! costs a hedged request only the hedge delay.

use std::time::{Duration, Instant};

use crate::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_primary_costs_the_client_the_hedge_delay_not_the_timeout() {
    init_tracing();
    let primary = MockProvider::start("primary").await;
    let backup =
        MockProvider::start_cycling("backup", vec![Reply::Delay(Duration::from_millis(30), Box::new(Reply::Ok))]).await;
    let config = ConfigBuilder::new()
        .provider("primary", &primary.url())
        .provider("backup", &backup.url())
        .route("m", Some("resilient"), 10_000, &["primary", "backup"])
        .settings("resilient", &["explore = 0.0", "min_hedge_ms = 100", "first_token_timeout_ms = 8000"]);
    let gw = TestGateway::start(&config).await;
    // The primary is fast at first: once both are measured it is ranked
    // first (the backup answers in 30 ms) and its p95 is small.
    for _ in 0..20 {
        assert_eq!(post_chat(&gw.url(), "m").await.status, 200);
    }
    assert_eq!(post_chat(&gw.url(), "m").await.header("x-switchyard-provider"), "primary");
    primary.set_cycle(vec![Reply::Hang]);
    for _ in 0..3 {
        let started = Instant::now();
        let r = post_chat(&gw.url(), "m").await;
        let took = started.elapsed();
        assert_eq!((r.status.as_u16(), r.header("x-switchyard-provider")), (200, "backup"), "{}", r.body);
        assert_eq!(r.header("x-switchyard-attempts"), "2", "the first attempt and the hedge");
        // 100 ms hedge delay + 30 ms backup, far from the 8 s per-try timeout.
        assert!(took < Duration::from_millis(1500), "the hedged request took {took:?}");
        eprintln!("hedged request answered in {took:?}");
    }
}

#[tokio::test]
async fn streams_are_not_hedged_by_the_resilient_policy() {
    init_tracing();
    let primary = MockProvider::start("primary").await;
    let backup = MockProvider::start("backup").await;
    let config = ConfigBuilder::new()
        .provider("primary", &primary.url())
        .provider("backup", &backup.url())
        .route("m", Some("resilient"), 10_000, &["primary", "backup"])
        .settings("resilient", &["explore = 0.0", "min_hedge_ms = 1"]);
    let gw = TestGateway::start(&config).await;
    for _ in 0..5 {
        let r = post_chat_stream(&gw.url(), "m").await;
        assert_eq!(r.header("x-switchyard-attempts"), "1");
        assert!(r.rest(PATIENCE).await.contains("[DONE]"));
    }
    // Every request was one attempt: no stream was hedged, even past 1 ms.
    assert_eq!(primary.received() + backup.received(), 5);
}
