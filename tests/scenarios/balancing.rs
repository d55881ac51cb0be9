//! The balancing policies shipped in `plugins/`, by name, without building
//! anything.

use std::time::Duration;

use crate::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_split_80_20_holds_over_1000_requests() {
    init_tracing();
    let a = MockProvider::start("a").await;
    let b = MockProvider::start("b").await;
    let config = ConfigBuilder::new()
        .provider("a", &a.url())
        .provider("b", &b.url())
        .route("m", Some("weighted-split"), 5000, &["a", "b"])
        .settings("weighted-split", &["weights = { a = 80, b = 20 }"]);
    let gw = TestGateway::start(&config).await;
    let mut on_a = 0;
    for _ in 0..1000 {
        let r = post_chat(&gw.url(), "m").await;
        assert_eq!(r.status, 200);
        on_a += usize::from(r.header("x-switchyard-provider") == "a");
    }
    // Binomial(1000, 0.8): sd ≈ 12.6; ±50 is four of them.
    assert!((750..=850).contains(&on_a), "{on_a} of 1000 on a");
}

async fn faster_of_two_takes_most(policy: &str) {
    init_tracing();
    let slow =
        MockProvider::start_cycling("slow", vec![Reply::Delay(Duration::from_millis(60), Box::new(Reply::Ok))]).await;
    let fast =
        MockProvider::start_cycling("fast", vec![Reply::Delay(Duration::from_millis(5), Box::new(Reply::Ok))]).await;
    let config = ConfigBuilder::new().provider("slow", &slow.url()).provider("fast", &fast.url()).route(
        "m",
        Some(policy),
        5000,
        &["slow", "fast"],
    );
    let gw = TestGateway::start(&config).await;
    let mut on_fast = 0;
    for _ in 0..100 {
        let r = post_chat(&gw.url(), "m").await;
        assert_eq!(r.status, 200);
        on_fast += usize::from(r.header("x-switchyard-provider") == "fast");
    }
    assert!(on_fast >= 85, "{policy}: only {on_fast} of 100 on the faster target");
}

#[tokio::test]
async fn least_latency_sends_most_traffic_to_the_faster_target() {
    faster_of_two_takes_most("least-latency").await;
}

#[tokio::test]
async fn resilient_sends_most_traffic_to_the_faster_healthy_target() {
    faster_of_two_takes_most("resilient").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2c_spreads_concurrent_load_over_both_targets() {
    init_tracing();
    let a = MockProvider::start_cycling("a", vec![Reply::Delay(Duration::from_millis(40), Box::new(Reply::Ok))]).await;
    let b = MockProvider::start_cycling("b", vec![Reply::Delay(Duration::from_millis(40), Box::new(Reply::Ok))]).await;
    let config =
        ConfigBuilder::new().provider("a", &a.url()).provider("b", &b.url()).route("m", Some("p2c"), 5000, &["a", "b"]);
    let gw = TestGateway::start(&config).await;
    concurrent_chats(&gw.url(), 8, 10).await;
    let (on_a, on_b) = (a.received(), b.received());
    assert_eq!(on_a + on_b, 80);
    assert!(on_a >= 20 && on_b >= 20, "a {on_a}, b {on_b}");
}
