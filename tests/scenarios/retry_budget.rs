//! Retries come out of a gateway-wide budget, so a flapping provider cannot
//! multiply the gateway's load, and a spent budget fails fast.

use rand::{RngExt, SeedableRng};

use crate::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_primary_loses_no_client_request_and_attempts_stay_within_half_again() {
    init_tracing();
    // 30 % failures in a seeded order, repeating every 100 requests.
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let mut cycle: Vec<Reply> = (0..100).map(|i| if i < 30 { Reply::status(503) } else { Reply::Ok }).collect();
    for i in (1..cycle.len()).rev() {
        cycle.swap(i, rng.random_range(0..=i));
    }
    let primary = MockProvider::start_cycling("primary", cycle).await;
    let backup = MockProvider::start("backup").await;
    let gw = TestGateway::start(&two_providers(&primary.url(), &backup.url())).await;
    let requests = 300;
    for _ in 0..requests {
        let r = post_chat(&gw.url(), "m").await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let attempts = primary.received() + backup.received();
    eprintln!("{requests} requests, {attempts} upstream attempts ({} on the backup)", backup.received());
    assert!(attempts * 2 <= requests * 3, "{attempts} attempts for {requests} requests");
}

#[tokio::test]
async fn a_spent_retry_budget_fails_fast_instead_of_retrying() {
    init_tracing();
    let primary = MockProvider::start_cycling("primary", vec![Reply::status(500)]).await;
    let backup = MockProvider::start_cycling("backup", vec![Reply::status(500)]).await;
    let config = two_providers(&primary.url(), &backup.url())
        .top("[retry_budget]\nratio = 0.0\nmin_retries = 3\nwindow_ms = 60000")
        // Breakers that never open, so only the budget stands between the
        // clients and a retry storm.
        .top("[breaker]\nfailures = 1000\nmin_requests = 1000");
    let gw = TestGateway::start(&config).await;
    let mut retried = 0;
    for i in 0..10 {
        let r = post_chat(&gw.url(), "m").await;
        assert_eq!(r.status, 503, "{}", r.body);
        let attempts: u32 = r.header("x-switchyard-attempts").parse().unwrap();
        retried += attempts - 1;
        if i >= 3 {
            assert_eq!(attempts, 1, "request {i}: the budget is spent, no retry");
            assert!(r.body.contains("retry budget"), "{}", r.body);
        }
    }
    assert_eq!(retried, 3, "exactly the budget's minimum of retries");
}

#[tokio::test]
async fn a_spent_retry_budget_answers_with_the_longest_wait_the_providers_asked_for() {
    init_tracing();
    let busy = |secs: &str| Reply::Status {
        status: 503,
        headers: vec![("retry-after".into(), secs.into())],
        body: r#"{"error":{"message":"busy","type":"server_error"}}"#.into(),
    };
    let primary = MockProvider::start_cycling("primary", vec![busy("20")]).await;
    let backup = MockProvider::start_cycling("backup", vec![busy("20")]).await;
    let config = two_providers(&primary.url(), &backup.url()).top("[retry_budget]\nratio = 0.0\nmin_retries = 0");
    let gw = TestGateway::start(&config).await;
    let r = post_chat(&gw.url(), "m").await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("retry budget"), "{}", r.body);
    assert_eq!(r.header("retry-after"), "20", "not a flat 1 s when the provider asked for 20");
}
