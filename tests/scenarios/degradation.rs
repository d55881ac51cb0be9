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
