//! Per-key limits beyond the request rate: a token rate (estimated when a
//! request is let in, settled from the provider's usage), a concurrency
//! limit, the routes a key may use, daily token and spend budgets (kept
//! across a reload), and what each key used, on the admin API and metrics.
//! The mock provider reports 5 input + 3 output tokens per answer.

use std::time::Duration;

use crate::*;

const KEY: &str = "sy-0123456789abcdef0123456789abcdef0123456789abcdef";

fn key(name: &str, extra: &str) -> String {
    format!("[[keys]]\nname = {name:?}\nhash = {:?}\n{extra}\n", switchyard_access::hash_line(KEY))
}

async fn chat(url: &str, model: &str) -> ChatResponse {
    post_raw(url, "/v1/chat/completions", chat_body(model, false), &[("authorization", &format!("Bearer {KEY}"))]).await
}

#[tokio::test]
async fn a_keys_token_rate_is_charged_the_estimate_and_settled_from_the_providers_usage() {
    init_tracing();
    let provider = MockProvider::start("p").await;
    let config = ConfigBuilder::new()
        .top(&key("team-a", "tokens_per_minute = 60"))
        .provider("p", &provider.url())
        .route("m", None, 5000, &["p"]);
    let gw = TestGateway::start(&config).await;
    let estimate = chat_body("m", false).len() / 4;
    assert_eq!(estimate, 19, "the test's arithmetic assumes this body");
    // Each request needs 19 on admission and settles to its real 8: 60, 52,
    // 44, 36, 28, 20 left before each of six; then 12 < 19.
    for i in 0..6 {
        let r = chat(&gw.url(), "m").await;
        assert_eq!(r.status, 200, "request {i}: {}", r.body);
    }
    let r = chat(&gw.url(), "m").await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(
        (r.json()["error"]["type"].as_str(), r.json()["error"]["code"].as_str()),
        (Some("tokens"), Some("rate_limit_exceeded"))
    );
    assert_eq!((r.header("x-ratelimit-limit-tokens"), r.header("x-ratelimit-remaining-tokens")), ("60", "0"));
    // 7 tokens short at one a second: 7 s (less what refilled while the test ran).
    let retry: u64 = r.header("retry-after").parse().unwrap();
    assert!((5..=7).contains(&retry), "{retry}");
    assert_eq!(provider.received(), 6);
}

#[tokio::test]
async fn a_keys_concurrency_limit_and_its_routes_are_enforced_in_the_clients_format() {
    init_tracing();
    let provider =
        MockProvider::start_cycling("p", vec![Reply::Delay(Duration::from_millis(300), Box::new(Reply::Ok))]).await;
    let config = ConfigBuilder::new()
        .top(&key("team-a", "max_concurrency = 2\nroutes = [\"m\"]"))
        .provider("p", &provider.url())
        .route("m", None, 5000, &["p"])
        .route("n", None, 5000, &["p"]);
    let gw = TestGateway::start(&config).await;
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let url = gw.url();
            tokio::spawn(async move { chat(&url, "m").await })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        if r.status == 429 {
            assert!(r.json()["error"]["message"].as_str().unwrap().contains("2 requests in flight"));
            assert_eq!(r.header("retry-after"), "1");
        }
        statuses.push(r.status.as_u16());
    }
    statuses.sort();
    assert_eq!(statuses, [200, 200, 429]);
    // The slots came back.
    assert_eq!(chat(&gw.url(), "m").await.status, 200);
    // Another route: 403, in each API's format.
    let r = chat(&gw.url(), "n").await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "model_not_allowed");
    let headers = [("anthropic-version", "2023-06-01"), ("x-api-key", KEY)];
    let r = post_raw(&gw.url(), "/v1/messages", messages_body("n", false), &headers).await;
    assert_eq!((r.status.as_u16(), r.json()["error"]["type"].as_str()), (403, Some("permission_error")));
    assert_eq!(provider.received(), 3);
}

#[tokio::test]
async fn token_and_spend_budgets_stop_a_key_at_its_budget_and_a_reload_does_not_reset_them() {
    init_tracing();
    let provider = MockProvider::start("p").await;
    // 5 in at $1000/M + 3 out at $2000/M = $0.011 a request.
    let prices = "models = { m = { input_usd_per_mtok = 1000.0, output_usd_per_mtok = 2000.0 } }";
    let base = ConfigBuilder::new().provider_with("p", &provider.url(), &[prices]).route("m", None, 5000, &["p"]);
    let config = base.clone().top(&key("team-a", "daily_tokens = 20")).top(&format!(
        "[[keys]]\nname = \"team-b\"\nhash = {:?}\ndaily_spend_usd = 0.03\n",
        switchyard_access::hash_line("sy-team-b")
    ));
    let gw = TestGateway::start(&config).await;
    // 0, 8, 16 tokens used before each of three; 24 >= 20 before the fourth.
    for _ in 0..3 {
        assert_eq!(chat(&gw.url(), "m").await.status, 200);
    }
    let spent = chat(&gw.url(), "m").await;
    assert_eq!(spent.status, 429, "{}", spent.body);
    assert_eq!(spent.json()["error"]["code"], "insufficient_quota");
    assert!(spent.json()["error"]["message"].as_str().unwrap().contains("daily budget of 20 tokens"));
    let retry: u64 = spent.header("retry-after").parse().unwrap();
    assert!((1..=86_400).contains(&retry), "until midnight UTC: {retry}");
    // team-b: $0, $0.011, $0.022 before each of three; $0.033 >= $0.03 before the fourth.
    let b = |url: String| async move {
        post_raw(&url, "/v1/chat/completions", chat_body("m", false), &[("authorization", "Bearer sy-team-b")]).await
    };
    for _ in 0..3 {
        assert_eq!(b(gw.url()).await.status, 200);
    }
    assert_eq!(b(gw.url()).await.json()["error"]["code"], "insufficient_quota");
    // A reload that changes the key's settings keeps what it used.
    std::fs::write(
        &gw.config_path,
        base.top(&key("team-a", "daily_tokens = 20\npriority = \"high\"")).build(&gw.policy_dir),
    )
    .unwrap();
    gw.reload().await.expect("reloaded");
    assert_eq!(chat(&gw.url(), "m").await.status, 429, "still spent after the reload");
    let keys = get(&gw.admin_url(), "/admin/keys").await.json();
    let a = &keys["keys"][0];
    assert_eq!((a["name"].as_str(), a["priority"].as_str()), (Some("team-a"), Some("high")));
    assert_eq!(a["used"]["today"]["input_tokens"], 15);
    assert_eq!(a["used"]["today"]["output_tokens"], 9);
    assert!((a["used"]["today"]["spend_usd"].as_f64().unwrap() - 0.033).abs() < 1e-9);
    assert!(!keys.to_string().contains(KEY), "never the key");
    let metrics = get(&gw.admin_url(), "/metrics").await.body;
    assert!(metrics.contains("switchyard_key_requests_total{key=\"team-a\",result=\"budget\"} 2"), "{metrics}");
    assert!(metrics.contains("switchyard_key_tokens_total{key=\"team-a\",direction=\"out\"} 9"));
    assert!(metrics.contains("switchyard_spend_usd_total{key=\"team-b\",route=\"m\",target=\"p/m\"} 0.03"));
    assert_eq!(provider.received(), 6);
}
