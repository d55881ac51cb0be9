//! Policies see who is asking: the example `tenant-tiers` policy sends a
//! premium tenant to the primary model and a batch tenant to the cheap one,
//! keeps batch work off the expensive model when the cheap one is down, and
//! treats a key about to run out of tokens as batch.

use crate::*;

const VIP: &str = "sy-vip-key";
const BATCH: &str = "sy-batch-key";
const FRUGAL: &str = "sy-frugal-key";

fn key(name: &str, key: &str, extra: &str) -> String {
    format!("[[keys]]\nname = {name:?}\nhash = {:?}\n{extra}", switchyard_access::hash_line(key))
}

async fn ask(gw: &TestGateway, key: &str) -> ChatResponse {
    post_raw(
        &gw.url(),
        "/v1/chat/completions",
        chat_body("assistant", false),
        &[("authorization", &format!("Bearer {key}"))],
    )
    .await
}

#[tokio::test]
async fn a_tenant_policy_sends_premium_traffic_to_the_primary_and_batch_traffic_to_the_cheap_model() {
    init_tracing();
    let primary = MockProvider::start("primary").await;
    let cheap = MockProvider::start("cheap").await;
    let config = ConfigBuilder::new()
        .top(&key("support-bot", VIP, "priority = \"high\""))
        .top(&key("nightly", BATCH, "priority = \"normal\""))
        .top(&key("plain", "sy-plain", ""))
        .top(&key("frugal", FRUGAL, "priority = \"high\"\ntokens_per_minute = 100"))
        .provider("primary", &primary.url())
        .provider("cheap", &cheap.url())
        .group("assistant", &[], 5000, &[("cheap", "small"), ("primary", "big")])
        .route_lines(&["policy = \"tenant-tiers\""])
        .settings(
            "tenant-tiers",
            &["cheap_models = [\"small\"]", "batch_tenants = [\"nightly\"]", "save_tokens_below = 60"],
        );
    let gw = TestGateway::start(&config).await;

    // Premium: the primary, though the config lists the cheap target first.
    let r = ask(&gw, VIP).await;
    assert_eq!((r.status.as_u16(), r.header("x-switchyard-provider")), (200, "primary"), "{}", r.body);
    assert_eq!(r.header("x-switchyard-policy").split('@').next(), Some("tenant-tiers"));
    // Batch (listed by name): the cheap model.
    let r = ask(&gw, BATCH).await;
    assert_eq!((r.status.as_u16(), r.header("x-switchyard-provider")), (200, "cheap"));
    // A premium key with 100 tokens a minute: each request is estimated at
    // 21 tokens and settles to the 8 it used, so it has 79, 71, 63 left as
    // its first three are let in (premium: the primary), then 55 < 60: batch.
    let served: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            let r = ask(&gw, FRUGAL).await;
            assert_eq!(r.status, 200, "{}", r.body);
            v.push(r.header("x-switchyard-provider").to_owned());
        }
        v
    };
    assert_eq!(served, ["primary", "primary", "primary", "cheap"], "running out of tokens: batch");
    // A key with no tier: the route's order (cheap first).
    let r = post_raw(
        &gw.url(),
        "/v1/chat/completions",
        chat_body("assistant", false),
        &[("authorization", "Bearer sy-plain")],
    )
    .await;
    assert_eq!(r.header("x-switchyard-provider"), "cheap");

    // The cheap model goes down: premium is unaffected, batch is refused
    // rather than spilling onto the expensive model.
    cheap.set_cycle(vec![Reply::status(503)]);
    let before = primary.received();
    let r = ask(&gw, VIP).await;
    assert_eq!(r.header("x-switchyard-provider"), "primary");
    let r = ask(&gw, BATCH).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.header("retry-after").parse::<u64>().unwrap() >= 1);
    assert_eq!(primary.received(), before + 1, "only the premium request reached the primary");
}
