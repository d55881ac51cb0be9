//! A policy that degrades: a fallback target outside the route, or a clean
//! 503 with the Retry-After it chose.

use crate::*;

async fn gateway_with_local_fallback() -> (TestGateway, MockProvider, MockProvider) {
    init_tracing();
    let cloud = MockProvider::start("cloud").await;
    let local = MockProvider::start("local").await;
    let config = ConfigBuilder::new()
        .provider("cloud", &cloud.url())
        .provider("local", &local.url())
        .route("m", Some("chaos"), 5000, &["cloud"])
        .route("llama", None, 5000, &["local"]);
    let gw = TestGateway::start(&config).await;
    install_policy(&gw, "chaos", "chaos").await;
    (gw, cloud, local)
}

#[tokio::test]
async fn degrade_to_a_fallback_target_is_answered_and_marked() {
    let (gw, cloud, local) = gateway_with_local_fallback().await;
    let r = post_raw(&gw.url(), "/v1/chat/completions", chat_body("m", false), &[("x-chaos", "fallback")]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-switchyard-degraded"), "fallback");
    assert_eq!(r.header("x-switchyard-provider"), "local");
    assert_eq!(r.json()["choices"][0]["message"]["content"], "Hello from local");
    assert_eq!((cloud.received(), local.received()), (0, 1));
    // The fallback target is asked for its own model name.
    assert_eq!(local.seen()[0].model, "llama");
    // Undegraded requests carry no such header.
    let r = post_chat(&gw.url(), "m").await;
    assert_eq!((r.header("x-switchyard-provider"), r.header("x-switchyard-degraded")), ("cloud", ""));
}

#[tokio::test]
async fn degrade_to_unavailable_is_a_503_with_the_policys_retry_after() {
    let (gw, cloud, local) = gateway_with_local_fallback().await;
    let r = post_raw(&gw.url(), "/v1/chat/completions", chat_body("m", false), &[("x-chaos", "unavailable")]).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), "5", "4200 ms rounds up to 5 s");
    assert_eq!(r.json()["error"]["type"], "server_error");
    assert_eq!((r.header("x-switchyard-attempts"), cloud.received() + local.received()), ("0", 0));
}

fn question(text: &str) -> String {
    serde_json::json!({"model": "m", "messages": [{"role": "user", "content": text}]}).to_string()
}

#[tokio::test]
async fn all_down_with_a_warm_cache_answers_the_same_request_from_the_cache_marked_degraded() {
    init_tracing();
    let primary = MockProvider::start("primary").await;
    let backup = MockProvider::start("backup").await;
    let gw = TestGateway::start(&resilient_pair(&primary, &backup)).await;
    let fresh = post_raw(&gw.url(), "/v1/chat/completions", question("What is 2+2?"), &[]).await;
    assert_eq!(fresh.status, 200);
    assert_eq!(fresh.header("x-switchyard-degraded"), "");
    // The cache is filled off the response path.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;

    primary.set_cycle(vec![Reply::status(503)]);
    backup.set_cycle(vec![Reply::status(503)]);
    // The same question, its keys in another order and asking for no stream.
    let same = r#"{"messages":[{"content":"What is 2+2?","role":"user"}],"stream":false,"model":"m"}"#;
    let cached = post_raw(&gw.url(), "/v1/chat/completions", same, &[]).await;
    assert_eq!(cached.status, 200, "{}", cached.body);
    assert_eq!(cached.header("x-switchyard-degraded"), "cached");
    assert_eq!(cached.body, fresh.body);
    assert!(cached.headers.contains_key("age"));

    // A client asking for the same answer as a stream gets it replayed as SSE.
    let streamed =
        serde_json::json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "What is 2+2?"}]});
    let r = post_raw(&gw.url(), "/v1/chat/completions", streamed.to_string(), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), "text/event-stream");
    assert_eq!(r.header("x-switchyard-degraded"), "cached");
    let content = fresh.json()["choices"][0]["message"]["content"].as_str().unwrap().to_owned();
    assert!(r.body.contains(&content) && r.body.ends_with("data: [DONE]\n\n"), "{}", r.body);
}

#[tokio::test]
async fn all_down_with_a_cold_cache_is_a_503_with_retry_after_within_the_deadline() {
    init_tracing();
    let primary = MockProvider::start_cycling("primary", vec![Reply::status(503)]).await;
    let backup = MockProvider::start_cycling("backup", vec![Reply::status(503)]).await;
    let gw = TestGateway::start(&resilient_pair(&primary, &backup)).await;
    let started = std::time::Instant::now();
    let r = post_raw(&gw.url(), "/v1/chat/completions", question("never asked before"), &[]).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.headers.contains_key("retry-after"));
    assert_eq!(r.header("x-switchyard-degraded"), "");
    assert!(started.elapsed() < std::time::Duration::from_millis(3000), "took {:?}", started.elapsed());
}
