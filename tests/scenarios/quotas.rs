//! Provider quotas and the queue: the gateway never sends a provider more
//! than its `rpm` / `max_concurrency` allow, as measured at the provider;
//! requests wait for room in priority order, and are shed with 429 (queue
//! full) or 503 (wait ran out) and a `Retry-After`; a client that goes away
//! leaves the queue at once; a provider's `Retry-After` is a cool-down for
//! every request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::*;

fn slow(ms: u64) -> Reply {
    Reply::Delay(Duration::from_millis(ms), Box::new(Reply::Ok))
}

async fn burst(url: &str, n: usize, headers: &[(&str, &str)]) -> Vec<ChatResponse> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let url = url.to_owned();
            let headers: Vec<(String, String)> = headers.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
            tokio::spawn(async move {
                let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                post_raw(&url, "/v1/chat/completions", chat_body("m", false), &headers).await
            })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

#[tokio::test]
async fn a_burst_of_500_never_has_more_in_flight_at_the_provider_than_its_max_concurrency_and_all_are_answered() {
    init_tracing();
    let provider = MockProvider::start_cycling("p", vec![slow(20)]).await;
    let config = ConfigBuilder::new()
        .top("[queue]\nmax_waiting = 1000\nmax_wait_ms = 30000")
        .provider_with("p", &provider.url(), &["max_concurrency = 8"])
        .route("m", None, 60_000, &["p"]);
    let gw = TestGateway::start(&config).await;
    let answers = burst(&gw.url(), 500, &[]).await;
    let failed: Vec<_> = answers.iter().filter(|r| r.status != 200).map(|r| (r.status, r.body.clone())).collect();
    assert!(failed.is_empty(), "every request waits its turn and is answered: {failed:?}");
    assert_eq!(provider.received(), 500);
    assert_eq!(provider.max_inflight(), 8, "never more than max_concurrency at the provider, and all of it used");
    let quotas = get(&gw.admin_url(), "/admin/quotas").await.json();
    assert_eq!(quotas["gates"][0]["name"], "p");
    assert_eq!((quotas["gates"][0]["inflight"].as_u64(), quotas["gates"][0]["waiting"].as_u64()), (Some(0), Some(0)));
    let metrics = get(&gw.admin_url(), "/metrics").await.body;
    assert!(metrics.contains("switchyard_queue_wait_seconds_count{route=\"m\"}"), "{metrics}");
}

#[tokio::test]
async fn the_gateways_max_concurrency_holds_across_routes_and_targets() {
    init_tracing();
    // One mock behind two providers: what it counts in flight is the sum.
    let mock = MockProvider::start_cycling("p", vec![slow(30)]).await;
    let config = ConfigBuilder::new()
        .top("[queue]\nmax_concurrency = 3\nmax_wait_ms = 30000")
        .provider("a", &mock.url())
        .provider("b", &mock.url())
        .route("m", None, 60_000, &["a"])
        .route("n", None, 60_000, &["b"]);
    let gw = TestGateway::start(&config).await;
    let tasks: Vec<_> = (0..120)
        .map(|i| {
            let url = gw.url();
            let model = if i % 2 == 0 { "m" } else { "n" };
            tokio::spawn(async move { post_chat(&url, model).await.status.as_u16() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(mock.received(), 120);
    assert_eq!(mock.max_inflight(), 3, "never more than 3 at once over both providers, and all 3 used");
    let gates = get(&gw.admin_url(), "/admin/quotas").await.json();
    assert_eq!(gates["gates"][0]["name"], "(gateway)");
    assert_eq!(gates["gates"][0]["max_concurrency"], 3);
}

#[tokio::test]
async fn a_providers_rpm_is_never_exceeded_and_what_cannot_wait_is_shed_with_retry_after() {
    init_tracing();
    let provider = MockProvider::start("p").await;
    let config = ConfigBuilder::new()
        .top("[queue]\nmax_waiting = 100\nmax_wait_ms = 1500")
        .provider_with("p", &provider.url(), &["rpm = 120"])
        .route("m", None, 30_000, &["p"]);
    let gw = TestGateway::start(&config).await;
    // Watch the queue from the admin side while the burst lasts.
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (admin, done) = (gw.admin_url(), done.clone());
        tokio::spawn(async move {
            let mut most = 0;
            while !done.load(Ordering::Relaxed) {
                let quotas = get(&admin, "/admin/quotas").await.json();
                most = most.max(quotas["queues"][0]["waiting"].as_u64().unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            most
        })
    };
    let started = Instant::now();
    let answers = burst(&gw.url(), 500, &[]).await;
    let took = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let most_waiting = watcher.await.unwrap();
    let ok = answers.iter().filter(|r| r.status == 200).count();
    // 120 at once, then 2 a second while the burst lasted.
    let refilled = (took.as_secs_f64() * 2.0).ceil() as usize;
    assert!((120..=120 + refilled).contains(&ok), "{ok} answered in {took:?}");
    assert_eq!(provider.received(), ok, "the provider saw only what its rpm allows");
    let full: Vec<_> = answers.iter().filter(|r| r.status == 429).collect();
    let expired: Vec<_> = answers.iter().filter(|r| r.status == 503).collect();
    assert_eq!(ok + full.len() + expired.len(), 500);
    // At most 100 could wait at once; the rest were shed at once as the queue
    // was full. (How many in all got a place depends on how fast the burst
    // arrives: a place freed by a request let in or expired goes to a later
    // one, so the count of each kind is not fixed, but the ceiling is.)
    assert!(most_waiting <= 100, "{most_waiting} waited at once");
    assert!(full.len() >= 100, "{} shed as queue full, {} expired", full.len(), expired.len());
    assert!(!expired.is_empty(), "some waited 1.5 s and were shed");
    for r in full.iter().chain(&expired) {
        assert!(r.header("retry-after").parse::<u64>().unwrap() >= 1, "{}", r.body);
    }
    assert_eq!(full[0].json()["error"]["code"], "queue_full");
    assert_eq!(expired[0].json()["error"]["code"], "queue_wait_expired");
    let metrics = get(&gw.admin_url(), "/metrics").await.body;
    assert!(
        metrics.contains(&format!("switchyard_queue_shed_total{{route=\"m\",reason=\"queue_full\"}} {}", full.len()))
    );
}

#[tokio::test]
async fn queued_requests_are_sent_highest_priority_first_then_in_arrival_order() {
    init_tracing();
    let provider = MockProvider::start_cycling("p", vec![slow(300), slow(1)]).await;
    provider.set_cycle(vec![slow(1)]);
    provider.push(slow(400), 1);
    let keys = [("batch", "sy-low-key", "low"), ("web", "sy-normal-key", "normal"), ("vip", "sy-high-key", "high")];
    let mut config = ConfigBuilder::new().provider_with("p", &provider.url(), &["max_concurrency = 1"]);
    for (name, key, priority) in keys {
        config = config.top(&format!(
            "[[keys]]\nname = {name:?}\nhash = {:?}\npriority = {priority:?}",
            switchyard_access::hash_line(key)
        ));
    }
    let config = config.route("m", None, 10_000, &["p"]);
    let gw = TestGateway::start(&config).await;
    let send = |key: &'static str, tag: String| {
        let url = gw.url();
        tokio::spawn(async move {
            let body = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": tag}]}).to_string();
            post_raw(&url, "/v1/chat/completions", body, &[("authorization", &format!("Bearer {key}"))]).await
        })
    };
    // The first holds the provider's one slot for 400 ms; the rest queue up behind it.
    let mut tasks = vec![send("sy-normal-key", "first".into())];
    tokio::time::sleep(Duration::from_millis(50)).await;
    let order = ["low-1", "normal-1", "high-1", "low-2", "high-2", "normal-2"];
    for tag in order {
        let key = match &tag[..tag.len() - 2] {
            "low" => "sy-low-key",
            "normal" => "sy-normal-key",
            _ => "sy-high-key",
        };
        tasks.push(send(key, tag.into()));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let waiting = get(&gw.admin_url(), "/admin/quotas").await.json();
    assert_eq!(waiting["queues"][0]["waiting"], 6, "{waiting}");
    for task in tasks {
        assert_eq!(task.await.unwrap().status, 200);
    }
    let seen: Vec<String> = provider
        .seen()
        .iter()
        .map(|s| {
            serde_json::from_str::<serde_json::Value>(&s.body).unwrap()["messages"][0]["content"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(seen, ["first", "high-1", "high-2", "normal-1", "normal-2", "low-1", "low-2"]);
}

#[tokio::test]
async fn a_client_that_gives_up_while_queued_leaves_the_queue_at_once_and_is_never_sent() {
    init_tracing();
    let provider = MockProvider::start_cycling("p", vec![slow(1)]).await;
    provider.push(slow(1500), 1);
    let config = ConfigBuilder::new().provider_with("p", &provider.url(), &["max_concurrency = 1"]).route(
        "m",
        None,
        10_000,
        &["p"],
    );
    let gw = TestGateway::start(&config).await;
    let url = gw.url();
    let holder = tokio::spawn(async move { post_raw(&url, "/v1/chat/completions", chat_body("m", false), &[]).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A client waits 300 ms, then gives up (its connection closes).
    let url = gw.url();
    let gave_up = tokio::time::timeout(
        Duration::from_millis(300),
        post_raw(&url, "/v1/chat/completions", chat_body("m", false), &[]),
    )
    .await;
    assert!(gave_up.is_err(), "it was still queued");
    let mut waiting = u64::MAX;
    for _ in 0..50 {
        waiting = get(&gw.admin_url(), "/admin/quotas").await.json()["queues"][0]["waiting"].as_u64().unwrap();
        if waiting == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(waiting, 0, "the queue forgot it while the provider is still busy");
    assert_eq!(holder.await.unwrap().status, 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(provider.received(), 1, "the abandoned request never reached the provider");
}

#[tokio::test]
async fn a_providers_retry_after_is_a_cool_down_for_every_request_not_advice_to_one() {
    init_tracing();
    let limited = MockProvider::start_cycling("limited", vec![Reply::Ok]).await;
    limited.push(Reply::rate_limited(3), 1);
    let backup = MockProvider::start("backup").await;
    // (A route deadline shorter than the Retry-After: the policy fails over
    // rather than waiting.)
    let config = ConfigBuilder::new().provider("limited", &limited.url()).provider("backup", &backup.url()).route(
        "m",
        None,
        2_000,
        &["limited", "backup"],
    );
    let gw = TestGateway::start(&config).await;
    let first = post_chat(&gw.url(), "m").await;
    assert_eq!((first.status.as_u16(), first.header("x-switchyard-provider")), (200, "backup"));
    // For the next 3 s every request goes to the backup without asking the limited provider.
    for _ in 0..20 {
        let r = post_chat(&gw.url(), "m").await;
        assert_eq!(r.header("x-switchyard-provider"), "backup");
    }
    assert_eq!(limited.received(), 1, "nobody knocked during its Retry-After");
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let after = post_chat(&gw.url(), "m").await;
    assert_eq!(after.header("x-switchyard-provider"), "limited", "back once the cool-down is over");
}
