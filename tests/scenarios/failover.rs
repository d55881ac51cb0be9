//! Outages of the primary: the client gets the backup's answer, and the
//! primary gets no more attempts than the policy allows.

use std::time::{Duration, Instant};

use crate::*;

#[tokio::test]
async fn healthy_provider_answers_with_switchyard_headers() {
    init_tracing();
    let (primary, backup) = (MockProvider::start("primary").await, MockProvider::start("backup").await);
    let gw = TestGateway::start(&two_providers(&primary.url(), &backup.url())).await;
    let r = post_chat(&gw.url(), "m").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["choices"][0]["message"]["content"], "Hello from primary");
    assert_eq!(r.header("x-switchyard-provider"), "primary");
    assert_eq!(r.header("x-switchyard-attempts"), "1");
    let policy = r.header("x-switchyard-policy");
    assert!(policy.starts_with("failover@") && policy.len() == "failover@".len() + 12, "{policy}");
    assert_eq!((primary.received(), backup.received()), (1, 0));
}

/// The primary answers `primary_reply` every time; the client gets the
/// backup's answer after `primary_tries` attempts at the primary.
async fn fails_over(primary_reply: Reply, primary_tries: usize) -> (MockProvider, MockProvider, ChatResponse) {
    init_tracing();
    let primary = MockProvider::start_cycling("primary", vec![primary_reply]).await;
    let backup = MockProvider::start("backup").await;
    let config = two_providers(&primary.url(), &backup.url())
        .settings("failover", &["first_token_timeout_ms = 400", "answer_timeout_ms = 400"]);
    let gw = TestGateway::start(&config).await;
    let r = post_chat(&gw.url(), "m").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["choices"][0]["message"]["content"], "Hello from backup");
    assert_eq!(r.header("x-switchyard-provider"), "backup");
    assert_eq!(r.header("x-switchyard-attempts"), (primary_tries + 1).to_string());
    assert_eq!((primary.received(), backup.received()), (primary_tries, 1));
    (primary, backup, r)
}

// A transient 5xx is retried once on the same target, then fails over.
#[tokio::test]
async fn primary_503_fails_over_to_backup() {
    fails_over(Reply::status(503), 2).await;
}

#[tokio::test]
async fn primary_529_overloaded_fails_over_to_backup() {
    fails_over(Reply::status(529), 2).await;
}

#[tokio::test]
async fn primary_500_fails_over_to_backup() {
    fails_over(Reply::status(500), 2).await;
}

#[tokio::test]
async fn one_500_is_retried_on_the_same_target_and_the_client_gets_its_answer() {
    init_tracing();
    let primary = MockProvider::start_cycling("primary", vec![Reply::status(500), Reply::Ok]).await;
    let backup = MockProvider::start("backup").await;
    let gw = TestGateway::start(&two_providers(&primary.url(), &backup.url())).await;
    let r = post_chat(&gw.url(), "m").await;
    assert_eq!(
        (r.status.as_u16(), r.header("x-switchyard-provider"), r.header("x-switchyard-attempts")),
        (200, "primary", "2")
    );
    assert_eq!(backup.received(), 0, "the same model after a short wait, not the fallback");
}

#[tokio::test]
async fn a_short_retry_after_is_waited_out_on_the_same_target() {
    init_tracing();
    let primary = MockProvider::start_cycling("primary", vec![Reply::rate_limited(1), Reply::Ok]).await;
    let backup = MockProvider::start("backup").await;
    let gw = TestGateway::start(&two_providers(&primary.url(), &backup.url())).await;
    let started = Instant::now();
    let r = post_chat(&gw.url(), "m").await;
    assert_eq!(
        (r.status.as_u16(), r.header("x-switchyard-provider"), r.header("x-switchyard-attempts")),
        (200, "primary", "2")
    );
    assert!(started.elapsed() >= Duration::from_millis(950), "retried before its Retry-After: {:?}", started.elapsed());
    assert_eq!(backup.received(), 0);
}

#[tokio::test]
async fn a_long_retry_after_fails_over_at_once() {
    let started = Instant::now();
    fails_over(Reply::rate_limited(30), 1).await;
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn retry_after_is_honoured_not_hammered() {
    init_tracing();
    let primary = MockProvider::start_cycling("primary", vec![Reply::rate_limited(2)]).await;
    let backup = MockProvider::start("backup").await;
    // (Waiting a short Retry-After out on the same target is off here.)
    let config = two_providers(&primary.url(), &backup.url()).settings("failover", &["same_target_retries = 0"]);
    let gw = TestGateway::start(&config).await;
    // The first request meets the 429 and is served by the backup.
    let r = post_chat(&gw.url(), "m").await;
    assert_eq!((r.status.as_u16(), r.header("x-switchyard-provider")), (200, "backup"));
    // While Retry-After runs, clients go straight to the backup: the primary
    // is not asked again.
    for _ in 0..5 {
        let r = post_chat(&gw.url(), "m").await;
        assert_eq!(
            (r.status.as_u16(), r.header("x-switchyard-provider"), r.header("x-switchyard-attempts")),
            (200, "backup", "1")
        );
    }
    assert_eq!(primary.received(), 1, "the primary was retried before its Retry-After passed");
    // After it passes, the primary (now healthy) is tried first again.
    primary.set_cycle(vec![Reply::Ok]);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = post_chat(&gw.url(), "m").await;
    assert_eq!(r.header("x-switchyard-provider"), "primary");
    assert_eq!(primary.received(), 2);
}

#[tokio::test]
async fn primary_refusing_connections_fails_over_to_backup() {
    init_tracing();
    let backup = MockProvider::start("backup").await;
    let gw = TestGateway::start(&two_providers(&closed_port_url(), &backup.url())).await;
    let r = post_chat(&gw.url(), "m").await;
    assert_eq!(
        (r.status.as_u16(), r.header("x-switchyard-provider"), r.header("x-switchyard-attempts")),
        (200, "backup", "2")
    );
}

#[tokio::test]
async fn primary_hanging_past_the_answer_limit_fails_over_in_time() {
    let started = Instant::now();
    fails_over(Reply::Hang, 1).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}; the answer limit is 400 ms");
}

#[tokio::test]
async fn all_providers_down_is_a_503_with_retry_after_within_the_deadline() {
    init_tracing();
    let primary = MockProvider::start_cycling("primary", vec![Reply::status(503)]).await;
    let backup = MockProvider::start_cycling("backup", vec![Reply::status(502)]).await;
    let config = ConfigBuilder::new()
        .provider("primary", &primary.url())
        .provider("backup", &backup.url())
        .route("m", None, 2000, &["primary", "backup"])
        .settings("failover", &["max_attempts = 4", "base_backoff_ms = 50", "max_backoff_ms = 200"]);
    let gw = TestGateway::start(&config).await;
    let started = Instant::now();
    let r = post_chat(&gw.url(), "m").await;
    let took = started.elapsed();
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["error"]["type"], "server_error");
    assert!(r.header("retry-after").parse::<u64>().unwrap() >= 1);
    assert_eq!(r.header("x-switchyard-attempts"), "4");
    assert_eq!(primary.received() + backup.received(), 4, "max_attempts = 4");
    assert!(took < Duration::from_millis(2000 + 300), "took {took:?}, deadline 2000 ms");
}

#[tokio::test]
async fn all_rate_limited_gives_up_with_their_retry_after() {
    init_tracing();
    let primary = MockProvider::start_cycling("primary", vec![Reply::rate_limited(7)]).await;
    let backup = MockProvider::start_cycling("backup", vec![Reply::rate_limited(9)]).await;
    let gw = TestGateway::start(&two_providers(&primary.url(), &backup.url())).await;
    let started = Instant::now();
    let r = post_chat(&gw.url(), "m").await;
    assert_eq!(r.status, 503);
    // Waiting 7 s does not fit a 5 s deadline: give up now, say when to come back.
    assert_eq!(r.header("retry-after"), "7");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!((primary.received(), backup.received()), (1, 1));
}

#[tokio::test]
async fn invalid_request_from_provider_is_passed_on_not_retried() {
    init_tracing();
    let primary =
        MockProvider::start_cycling("primary", vec![Reply::bad_request("invalid_value", "temperature must be <= 2")])
            .await;
    let backup = MockProvider::start("backup").await;
    let gw = TestGateway::start(&two_providers(&primary.url(), &backup.url())).await;
    let r = post_chat(&gw.url(), "m").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["message"], "temperature must be <= 2");
    assert_eq!((primary.received(), backup.received()), (1, 0));
}

#[tokio::test]
async fn target_model_name_is_what_the_provider_is_asked_for() {
    init_tracing();
    let provider = MockProvider::start("p").await;
    let config = ConfigBuilder::new().provider("p", &provider.url()).top("");
    let toml = config.build(std::path::Path::new("policies"))
        + "[[routes]]\nmodel = \"smart\"\ntargets = [{ provider = \"p\", model = \"gpt-4o\" }]\n";
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::start_in(&toml, dir.path(), |_| None).await;
    let r = post_chat(&gw.url(), "smart").await;
    assert_eq!(r.status, 200);
    assert_eq!(provider.seen()[0].model, "gpt-4o");
}
