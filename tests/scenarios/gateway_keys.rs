//! Gateway keys: a client sends its key in the header its SDK already uses;
//! a missing, wrong, misplaced or revoked key is a clean 401 in the client's
//! API format; the key reaches no provider, log or metric (its name does
//! reach the access log); brute force changes nothing for valid clients.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::*;

const TEAM_A: &str = "sy-0123456789abcdef0123456789abcdef0123456789abcdef";
const TEAM_B: &str = "sy-fedcba9876543210fedcba9876543210fedcba9876543210";

fn keys(names: &[(&str, &str)]) -> String {
    names
        .iter()
        .map(|(name, key)| format!("[[keys]]\nname = {name:?}\nhash = {:?}\n", switchyard_access::hash_line(key)))
        .collect()
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

#[tokio::test]
async fn each_client_needs_a_valid_key_in_its_apis_header_and_the_key_goes_nowhere() {
    init_tracing();
    let provider = MockProvider::start("p").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let config = ConfigBuilder::new()
        .top(&keys(&[("team-a", TEAM_A)]))
        .access_log(log.to_str().unwrap())
        .provider_with_key("p", &provider.url(), "P_KEY")
        .route("m", None, 5000, &["p"]);
    let gw = TestGateway::start_with_env(&config, |v| (v == "P_KEY").then(|| "sk-provider-own".to_owned())).await;
    let chat = |headers: Vec<(&'static str, String)>| {
        let url = gw.url();
        async move {
            let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post_raw(&url, "/v1/chat/completions", chat_body("m", false), &headers).await
        }
    };
    let messages = |headers: Vec<(&'static str, String)>| {
        let url = gw.url();
        async move {
            let mut all: Vec<(&str, &str)> = vec![("anthropic-version", "2023-06-01")];
            all.extend(headers.iter().map(|(k, v)| (*k, v.as_str())));
            post_raw(&url, "/v1/messages", messages_body("m", false), &all).await
        }
    };

    // The right key in the right header.
    assert_eq!(chat(vec![("authorization", bearer(TEAM_A))]).await.status, 200);
    assert_eq!(messages(vec![("x-api-key", TEAM_A.into())]).await.status, 200);
    // Missing, wrong, revoked-looking, misplaced, malformed, oversized: 401 in the client's format.
    let refused = [
        chat(vec![]).await,
        chat(vec![("authorization", bearer(TEAM_B))]).await,
        chat(vec![("x-api-key", TEAM_A.into())]).await,
        chat(vec![("authorization", format!("Basic {TEAM_A}"))]).await,
        chat(vec![("authorization", bearer(&"k".repeat(10_000)))]).await,
    ];
    for r in &refused {
        assert_eq!(r.status, 401, "{}", r.body);
        assert_eq!(r.json()["error"]["code"], "invalid_api_key", "{}", r.body);
        assert!(!r.body.contains(TEAM_A) && !r.body.contains(TEAM_B));
    }
    assert!(refused[0].json()["error"]["message"].as_str().unwrap().contains("Authorization: Bearer"));
    assert!(refused[2].json()["error"]["message"].as_str().unwrap().contains("wrong header"));
    // (Anthropic's SDK sends its key as a Bearer token: that is let in too.)
    assert_eq!(messages(vec![("authorization", bearer(TEAM_A))]).await.status, 200);
    for r in [messages(vec![]).await, messages(vec![("x-api-key", TEAM_B.into())]).await] {
        assert_eq!(r.status, 401);
        let body = r.json();
        assert_eq!(
            (body["type"].as_str(), body["error"]["type"].as_str()),
            (Some("error"), Some("authentication_error"))
        );
    }
    // Listing models needs a key too; the health check does not.
    assert_eq!(get(&gw.url(), "/v1/models").await.status, 401);
    assert_eq!(get_with(&gw.url(), "/v1/models", &[("authorization", &bearer(TEAM_A))]).await.status, 200);
    assert_eq!(get(&gw.url(), "/healthz").await.status, 200);
    assert_eq!(provider.received(), 3, "refused requests reach no provider");

    // The provider got its own key, never the gateway's; no surface shows the key.
    assert!(provider.seen().iter().all(|s| s.authorization.as_deref() == Some("Bearer sk-provider-own")));
    assert!(provider.seen().iter().all(|s| !format!("{:?}{}", s.headers, s.body).contains(TEAM_A)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let lines = std::fs::read_to_string(&log).unwrap();
    let mut surfaces = vec![lines.clone()];
    for path in ["/metrics", "/admin/events", "/status.json"] {
        surfaces.push(get(&gw.admin_url(), path).await.body);
    }
    for text in &surfaces {
        assert!(!text.contains(TEAM_A) && !text.contains(&TEAM_A[3..]), "the key leaked:\n{text}");
    }
    let answered: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["status"] == 200)
        .collect();
    assert_eq!(answered.len(), 3);
    assert!(answered.iter().all(|l| l["key"] == "team-a"), "the key's name is logged: {lines}");
    assert_eq!(lines.lines().filter(|l| l.contains("\"status\":401")).count(), 7, "{lines}");
}

#[tokio::test]
async fn a_reload_that_removes_a_key_revokes_it_at_once_and_one_that_adds_a_key_admits_it() {
    init_tracing();
    let provider = MockProvider::start("p").await;
    let with = |names: &[(&str, &str)]| {
        ConfigBuilder::new().top(&keys(names)).provider("p", &provider.url()).route("m", None, 5000, &["p"])
    };
    let gw = TestGateway::start(&with(&[("team-a", TEAM_A)])).await;
    let ask = |key: &str| {
        let (url, key) = (gw.url(), bearer(key));
        async move {
            post_raw(&url, "/v1/chat/completions", chat_body("m", false), &[("authorization", key.as_str())])
                .await
                .status
                .as_u16()
        }
    };
    assert_eq!((ask(TEAM_A).await, ask(TEAM_B).await), (200, 401));
    std::fs::write(&gw.config_path, with(&[("team-b", TEAM_B)]).build(&gw.policy_dir)).unwrap();
    gw.reload().await.expect("reloaded");
    assert_eq!((ask(TEAM_A).await, ask(TEAM_B).await), (401, 200), "team-a revoked, team-b admitted");
}

#[tokio::test]
async fn ten_thousand_wrong_keys_change_nothing_for_a_valid_client() {
    init_tracing();
    let provider = MockProvider::start("p").await;
    let config = ConfigBuilder::new().top(&keys(&[("team-a", TEAM_A)])).provider("p", &provider.url()).route(
        "m",
        None,
        5000,
        &["p"],
    );
    let gw = TestGateway::start(&config).await;
    let refused = Arc::new(AtomicUsize::new(0));
    let attackers: Vec<_> = (0..32)
        .map(|task| {
            let (url, refused) = (gw.url(), refused.clone());
            tokio::spawn(async move {
                // 10,000 guesses in all, each task its share.
                let share = 10_000 / 32 + usize::from(task < 10_000 % 32);
                for i in 0..share {
                    let n = task * 1000 + i;
                    let guess = format!("Bearer sy-{n:048x}");
                    let r = post_raw(&url, "/v1/chat/completions", chat_body("m", false), &[("authorization", &guess)])
                        .await;
                    assert_eq!(r.status, 401);
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // A valid client all along: every one of its requests is answered.
    let mut answered = 0;
    while refused.load(Ordering::Relaxed) < 10_000 {
        let r =
            post_raw(&gw.url(), "/v1/chat/completions", chat_body("m", false), &[("authorization", &bearer(TEAM_A))])
                .await;
        assert_eq!(r.status, 200, "{}", r.body);
        answered += 1;
    }
    for a in attackers {
        a.await.unwrap();
    }
    assert_eq!(refused.load(Ordering::Relaxed), 10_000);
    assert!(answered > 0);
    assert_eq!(provider.received(), answered, "only the valid client's requests reached the provider");
}

#[test]
fn a_non_loopback_listen_without_keys_is_refused_unless_the_gateway_is_declared_open() {
    let body = "[[providers]]\nname = \"p\"\napi = \"openai\"\nbase_url = \"http://127.0.0.1:1\"\n\
                [[routes]]\nmodel = \"m\"\ntargets = [{ provider = \"p\", model = \"m\" }]\n";
    let refused = switchyard_config::from_str(&format!("listen = \"0.0.0.0:8080\"\n{body}"), "edge.toml").unwrap_err();
    let message = refused.to_string();
    assert!(message.contains("no [[keys]]") && message.contains("open_gateway = true"), "{message}");
    let open = format!("listen = \"0.0.0.0:8080\"\nopen_gateway = true\n{body}");
    assert!(switchyard_config::from_str(&open, "edge.toml").is_ok());
    let keyed = format!("listen = \"0.0.0.0:8080\"\n{}{body}", keys(&[("team-a", TEAM_A)]));
    assert!(switchyard_config::from_str(&keyed, "edge.toml").is_ok());
    let bad = format!("listen = \"0.0.0.0:8080\"\n[[keys]]\nname = \"x\"\nhash = \"{TEAM_A}\"\n{body}");
    let message = switchyard_config::from_str(&bad, "edge.toml").unwrap_err().to_string();
    assert!(message.contains("sha256:") && !message.contains(TEAM_A), "{message}");
}

#[tokio::test]
async fn both_official_sdks_pass_their_api_key_as_the_gateway_key_and_read_a_wrong_one_as_an_authentication_error() {
    init_tracing();
    let provider = MockProvider::start("p").await;
    let config = ConfigBuilder::new().top(&keys(&[("team-a", TEAM_A)])).provider("p", &provider.url()).route(
        "m",
        None,
        5000,
        &["p"],
    );
    let gw = TestGateway::start(&config).await;
    for sdk in ["openai", "anthropic"] {
        let call = |key: &str| serde_json::json!({"sdk": sdk, "base_url": gw.url(), "model": "m", "stream": false, "api_key": key});
        let r = sdk_call(call(TEAM_A)).await;
        assert_eq!(r["ok"], true, "{sdk}: {r}");
        let r = sdk_call(call(TEAM_B)).await;
        assert_eq!((r["ok"].as_bool(), r["status"].as_u64()), (Some(false), Some(401)), "{sdk}: {r}");
        assert_eq!(r["class"], "AuthenticationError", "{sdk}: the SDK's own error class: {r}");
    }
    assert_eq!(provider.received(), 2);
}

#[tokio::test]
async fn a_keys_request_rate_holds_under_64_concurrent_clients_and_the_429s_say_when_to_come_back() {
    init_tracing();
    let provider = MockProvider::start("p").await;
    let limited = format!("{}requests_per_minute = 30\n", keys(&[("batch", TEAM_A)]));
    let config = ConfigBuilder::new()
        .top(&limited)
        .top(&keys(&[("interactive", TEAM_B)]))
        .provider("p", &provider.url())
        .route("m", None, 5000, &["p"]);
    let gw = TestGateway::start(&config).await;
    let started = std::time::Instant::now();
    let burst: Vec<_> = (0..64)
        .map(|i| {
            let url = gw.url();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                for _ in 0..(2 + usize::from(i < 36)) {
                    let auth = bearer(TEAM_A);
                    seen.push(
                        post_raw(&url, "/v1/chat/completions", chat_body("m", false), &[("authorization", &auth)])
                            .await,
                    );
                }
                seen
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in burst {
        answers.extend(task.await.unwrap());
    }
    let took = started.elapsed();
    assert_eq!(answers.len(), 164);
    let ok = answers.iter().filter(|r| r.status == 200).count();
    // 30 at once, then one more per 2 s the burst lasted.
    let refilled = (took.as_secs_f64() / 2.0).floor() as usize;
    assert!(ok >= 30 && ok <= 30 + refilled, "{ok} answered in {took:?}");
    assert_eq!(provider.received(), ok, "the provider saw exactly the admitted requests");
    for r in answers.iter().filter(|r| r.status != 200) {
        assert_eq!(r.status, 429, "{}", r.body);
        assert_eq!(r.json()["error"]["code"], "rate_limit_exceeded");
        let retry: u64 = r.header("retry-after").parse().unwrap();
        assert!((1..=2).contains(&retry), "one request per 2 s: retry after {retry}");
        assert_eq!((r.header("x-ratelimit-limit-requests"), r.header("x-ratelimit-remaining-requests")), ("30", "0"));
        assert!(r.header("x-ratelimit-reset-requests").ends_with('s'));
    }
    // Another key is not touched by this one's limit.
    let other =
        post_raw(&gw.url(), "/v1/chat/completions", chat_body("m", false), &[("authorization", &bearer(TEAM_B))]).await;
    assert_eq!(other.status, 200);
    // An Anthropic client over its key's limit gets Anthropic's error and headers.
    let tiny = "sy-1111111111111111111111111111111111111111111111111";
    std::fs::write(
        &gw.config_path,
        config.clone().top(&format!("{}requests_per_minute = 1\n", keys(&[("tiny", tiny)]))).build(&gw.policy_dir),
    )
    .unwrap();
    gw.reload().await.expect("reloaded");
    let (url, headers) = (gw.url(), [("anthropic-version", "2023-06-01"), ("x-api-key", tiny)]);
    let ask = || post_raw(&url, "/v1/messages", messages_body("m", false), &headers);
    assert_eq!(ask().await.status, 200);
    let r = ask().await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
    assert_eq!(r.header("retry-after"), "60");
    assert_eq!(
        (r.header("anthropic-ratelimit-requests-limit"), r.header("anthropic-ratelimit-requests-remaining")),
        ("1", "0")
    );
    assert!(r.header("anthropic-ratelimit-requests-reset").ends_with('Z'));
}
