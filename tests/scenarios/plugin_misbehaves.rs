//! A policy that traps, loops, grows memory without end, answers nonsense,
//! imports what it may not, or is not wasm at all never takes a request down.

use std::time::{Duration, Instant};

use crate::*;

async fn gateway_with_chaos_policy() -> (TestGateway, MockProvider, MockProvider) {
    init_tracing();
    let a = MockProvider::start("a").await;
    let b = MockProvider::start("b").await;
    let config = ConfigBuilder::new()
        .provider("a", &a.url())
        .provider("b", &b.url())
        .route("m", Some("chaos"), 5000, &["a", "b"])
        // Tight enough to show a loop is cut short, loose enough that a
        // preempted thread on a loaded CI machine does not overrun it.
        .policy("decision_timeout_ms = 20")
        .policy("memory_limit_mib = 32");
    let gw = TestGateway::start(&config).await;
    install_policy(&gw, "chaos", "chaos").await;
    (gw, a, b)
}

async fn misbehaving_request_is_still_answered(mode: &str) {
    let (gw, a, _b) = gateway_with_chaos_policy().await;
    // A well-behaved request first, so the instance pool is warm.
    assert_eq!(post_chat(&gw.url(), "m").await.status, 200);
    let started = Instant::now();
    let r = post_raw(&gw.url(), "/v1/chat/completions", chat_body("m", false), &[("x-chaos", mode)]).await;
    let took = started.elapsed();
    assert_eq!(r.status, 200, "{mode}: {}", r.body);
    assert_eq!(r.header("x-switchyard-policy"), "native@builtin", "{mode}: the native fallback decided");
    assert_eq!(r.header("x-switchyard-provider"), "a");
    assert!(gw.policies().failed_decisions() >= 1);
    eprintln!("{mode}: answered in {took:?} (decision deadline 20 ms)");
    assert!(took < Duration::from_millis(250), "{mode}: took {took:?}");
    // The gateway and the policy keep working.
    let r = post_chat(&gw.url(), "m").await;
    assert_eq!(r.status, 200);
    assert!(r.header("x-switchyard-policy").starts_with("chaos@"));
    assert_eq!(a.received(), 3);
    // The operator sees it: counted by reason, and an event.
    let reason = match mode {
        "trap" => "trap",
        "loop" => "budget_exceeded",
        "oom" => "out_of_memory",
        _ => "invalid_decision",
    };
    let metrics = get(&gw.admin_url(), "/metrics").await.body;
    let line = format!(r#"switchyard_policy_fallbacks_total{{policy="chaos",reason="{reason}",to="native"}} 1"#);
    assert!(metrics.contains(&line), "{mode}: no `{line}` in\n{metrics}");
    assert!(metrics.contains(r#"switchyard_policy_decision_seconds_count{policy="chaos",hook="route"}"#));
    let events = get(&gw.admin_url(), "/admin/events").await.json();
    let fallback = events.as_array().unwrap().iter().find(|e| e["kind"] == "policy_fallback").expect("an event");
    assert_eq!(fallback["subject"], "chaos");
    assert!(fallback["message"].as_str().unwrap().contains(reason), "{fallback}");
}

#[tokio::test]
async fn trapping_plugin_falls_back_and_answers() {
    misbehaving_request_is_still_answered("trap").await;
}

#[tokio::test]
async fn looping_plugin_is_interrupted_and_the_request_answered_within_deadline() {
    misbehaving_request_is_still_answered("loop").await;
}

#[tokio::test]
async fn memory_hungry_plugin_is_stopped_and_the_request_answered() {
    misbehaving_request_is_still_answered("oom").await;
}

#[tokio::test]
async fn plugin_whose_memory_grows_every_call_keeps_deciding_on_fresh_instances_and_the_operator_sees_it() {
    // Each `leak` decision keeps 3 MiB more of a 32 MiB memory: the same
    // instance would run out by its 11th call.
    let (gw, a, _b) = gateway_with_chaos_policy().await;
    for call in 0..20 {
        let r = post_raw(&gw.url(), "/v1/chat/completions", chat_body("m", false), &[("x-chaos", "leak")]).await;
        assert_eq!(r.status, 200, "call {call}: {}", r.body);
        assert!(r.header("x-switchyard-policy").starts_with("chaos@"), "call {call}: the policy itself decided");
    }
    assert_eq!(a.received(), 20);
    assert_eq!(gw.policies().failed_decisions(), 0);
    let metrics = get(&gw.admin_url(), "/metrics").await.body;
    let retired: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"switchyard_policy_instances_retired_total{policy="chaos"} "#))
        .unwrap_or_else(|| panic!("no retirement count in\n{metrics}"))
        .parse()
        .unwrap();
    assert!((2..=20).contains(&retired), "{retired} instances retired in 20 calls");
}

#[tokio::test]
async fn plugin_naming_an_unknown_target_falls_back() {
    misbehaving_request_is_still_answered("bad-target").await;
}

#[tokio::test]
async fn trapping_new_version_falls_back_to_the_last_good_version() {
    init_tracing();
    let a = MockProvider::start("a").await;
    let gw = TestGateway::start(&ConfigBuilder::new().provider("a", &a.url()).route("m", None, 5000, &["a"])).await;
    let embedded = post_chat(&gw.url(), "m").await.header("x-switchyard-policy").to_owned();
    install_policy(&gw, "failover", "chaos").await;
    let r = post_raw(&gw.url(), "/v1/chat/completions", chat_body("m", false), &[("x-chaos", "trap")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-switchyard-policy"), embedded, "the last good version decided");
}

async fn bad_file_is_rejected_and_the_old_policy_serves(file: &str, bytes: Vec<u8>, expect_reason: &str) {
    init_tracing();
    let a = MockProvider::start("a").await;
    let config = ConfigBuilder::new().provider("a", &a.url()).route("m", None, 5000, &["a"]);
    let gw = TestGateway::start(&config).await;
    let serving = gw.policies().current("failover").map(|v| v.label().to_string());
    let mut events = gw.policies().events();
    std::fs::write(gw.policy_dir.join("failover.wasm"), bytes).unwrap();
    let event = wait_for(&mut events, |e| matches!(e, PolicyEvent::Rejected { .. })).await;
    let PolicyEvent::Rejected { error, .. } = event else { unreachable!() };
    assert_eq!(error.reason(), expect_reason, "{file}: {error}");
    let r = post_chat(&gw.url(), "m").await;
    assert_eq!(r.status, 200);
    assert_eq!(gw.policies().current("failover").map(|v| v.label().to_string()), serving);
}

#[tokio::test]
async fn file_that_is_not_wasm_is_rejected_and_the_old_policy_serves() {
    bad_file_is_rejected_and_the_old_policy_serves("not-wasm", b"<html>oops</html>".to_vec(), "compile").await;
}

#[tokio::test]
async fn plugin_importing_a_forbidden_interface_is_rejected_naming_it() {
    init_tracing();
    let a = MockProvider::start("a").await;
    let gw = TestGateway::start(&ConfigBuilder::new().provider("a", &a.url()).route("m", None, 5000, &["a"])).await;
    let mut events = gw.policies().events();
    std::fs::copy(plugin_artifact("forbidden_import"), gw.policy_dir.join("failover.wasm")).unwrap();
    let event = wait_for(&mut events, |e| matches!(e, PolicyEvent::Rejected { .. })).await;
    let PolicyEvent::Rejected { error, .. } = event else { unreachable!() };
    assert!(error.to_string().contains("acme:exfil/net"), "{error}");
    assert_eq!(post_chat(&gw.url(), "m").await.status, 200);
}

#[tokio::test]
async fn plugin_that_always_traps_is_rejected_at_load() {
    init_tracing();
    let a = MockProvider::start("a").await;
    let config = ConfigBuilder::new()
        .provider("a", &a.url())
        .route("m", Some("chaos"), 5000, &["a"])
        .settings("chaos", &[r#"always = "trap""#]);
    let gw = TestGateway::start(&config).await;
    let mut events = gw.policies().events();
    std::fs::copy(plugin_artifact("chaos"), gw.policy_dir.join("chaos.wasm")).unwrap();
    let event = wait_for(&mut events, |e| matches!(e, PolicyEvent::Rejected { .. })).await;
    let PolicyEvent::Rejected { error, .. } = event else { unreachable!() };
    assert_eq!(error.reason(), "trap");
    // No version of `chaos` ever served: the default policy decides for its route.
    let r = post_chat(&gw.url(), "m").await;
    assert_eq!(r.status, 200);
    assert!(r.header("x-switchyard-policy").starts_with("failover@"), "{}", r.header("x-switchyard-policy"));
}
