//! The life of a policy version in a running gateway: removed files take
//! their versions with them, the version that answers for a failing one is
//! the last one that served well, a version that keeps failing is demoted,
//! the gateway refuses what `policy check` fails, and a busy machine is
//! never blamed on the policy.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::*;

async fn chaos_request(gw: &TestGateway, mode: &str) -> ChatResponse {
    post_raw(&gw.url(), "/v1/chat/completions", chat_body("m", false), &[("x-chaos", mode)]).await
}

async fn write_policy(gw: &TestGateway, name: &str, bytes: &[u8]) -> String {
    let mut events = gw.policies().events();
    std::fs::write(gw.policy_dir.join(format!("{name}.wasm")), bytes).unwrap();
    let want = label(name, bytes);
    wait_for(&mut events, |e| matches!(e, PolicyEvent::Loaded { label, .. } if **label == *want)).await;
    want
}

#[tokio::test]
async fn removing_the_only_file_of_a_name_hands_its_routes_to_the_default_policy() {
    init_tracing();
    let (a, b) = (MockProvider::start("a").await, MockProvider::start("b").await);
    let config =
        ConfigBuilder::new().provider("a", &a.url()).provider("b", &b.url()).route("m", Some("rr"), 5000, &["a", "b"]);
    let gw = TestGateway::start(&config).await;
    let rr = write_policy(&gw, "rr", &std::fs::read(plugin_artifact("round_robin")).unwrap()).await;
    assert_eq!(post_chat(&gw.url(), "m").await.header("x-switchyard-policy"), rr);

    let mut events = gw.policies().events();
    std::fs::remove_file(gw.policy_dir.join("rr.wasm")).unwrap();
    wait_for(&mut events, |e| matches!(e, PolicyEvent::Removed { name, .. } if name == "rr")).await;
    for _ in 0..4 {
        let r = post_chat(&gw.url(), "m").await;
        assert_eq!(r.status, 200);
        assert!(r.header("x-switchyard-policy").starts_with("failover@"), "{}", r.header("x-switchyard-policy"));
        assert_eq!(r.header("x-switchyard-provider"), "a", "the default failover policy, not round robin");
    }
}

#[tokio::test]
async fn a_failing_version_is_answered_for_by_the_last_version_that_served_well_not_merely_the_previous_one() {
    init_tracing();
    let (_a, _b, config) = live_route(&[]).await;
    let gw = TestGateway::start(&config).await;
    let good = write_policy(&gw, "live", &std::fs::read(plugin_artifact("failover")).unwrap()).await;
    for _ in 0..25 {
        assert_eq!(post_chat(&gw.url(), "m").await.header("x-switchyard-policy"), good);
    }
    // A version that traps at run time, then one that loops: both answered for by the good one.
    let chaos = std::fs::read(plugin_artifact("chaos")).unwrap();
    let trapping = write_policy(&gw, "live", &chaos).await;
    let r = chaos_request(&gw, "trap").await;
    assert_eq!((r.status.as_u16(), r.header("x-switchyard-policy")), (200, good.as_str()));
    let looping = write_policy(&gw, "live", &rebuilt(&chaos)).await;
    assert_ne!(looping, trapping);
    let r = chaos_request(&gw, "loop").await;
    assert_eq!((r.status.as_u16(), r.header("x-switchyard-policy")), (200, good.as_str()));
    // The new version still serves the requests it can decide.
    assert_eq!(post_chat(&gw.url(), "m").await.header("x-switchyard-policy"), looping);
}

#[tokio::test]
async fn a_version_whose_decisions_keep_failing_is_demoted_until_its_file_changes() {
    init_tracing();
    let (a, b) = (MockProvider::start("a").await, MockProvider::start("b").await);
    let config = ConfigBuilder::new().provider("a", &a.url()).provider("b", &b.url()).route(
        "m",
        Some("chaos"),
        5000,
        &["a", "b"],
    );
    let gw = TestGateway::start(&config).await;
    let chaos = std::fs::read(plugin_artifact("chaos")).unwrap();
    let bomb = write_policy(&gw, "chaos", &chaos).await;
    let mut events = gw.policies().events();
    for _ in 0..5 {
        assert_eq!(chaos_request(&gw, "trap").await.status, 200);
    }
    let demoted = wait_for(&mut events, |e| matches!(e, PolicyEvent::Demoted { .. })).await;
    let PolicyEvent::Demoted { label, reason, .. } = demoted else { unreachable!() };
    assert_eq!(*label, *bomb);
    assert!(reason.contains("trapped"), "{reason}");
    // No longer called: more requests cost no failed decision, and even
    // requests it could decide are decided by the fallback.
    let failed = gw.policies().failed_decisions();
    for _ in 0..10 {
        assert_eq!(chaos_request(&gw, "trap").await.status, 200);
        let r = post_chat(&gw.url(), "m").await;
        assert_eq!((r.status.as_u16(), r.header("x-switchyard-policy")), (200, "native@builtin"));
    }
    assert_eq!(gw.policies().failed_decisions(), failed, "the demoted version was called again");
    // A changed file is a new version, and serves.
    let fixed = write_policy(&gw, "chaos", &rebuilt(&chaos)).await;
    assert_eq!(post_chat(&gw.url(), "m").await.header("x-switchyard-policy"), fixed);
}

async fn rejected_at_load(settings: &str) -> (switchyard_policy_host::PolicyError, String) {
    init_tracing();
    let a = MockProvider::start("a").await;
    let b = MockProvider::start("b").await;
    let config = ConfigBuilder::new()
        .provider("a", &a.url())
        .provider("b", &b.url())
        .route("m", Some("chaos"), 5000, &["a", "b"])
        .settings("chaos", &[settings]);
    let gw = TestGateway::start(&config).await;
    let mut events = gw.policies().events();
    std::fs::copy(plugin_artifact("chaos"), gw.policy_dir.join("chaos.wasm")).unwrap();
    let event = wait_for(&mut events, |e| matches!(e, PolicyEvent::Rejected { .. })).await;
    let PolicyEvent::Rejected { error, serving, .. } = event else { unreachable!() };
    assert_eq!(post_chat(&gw.url(), "m").await.status, 200);
    (error, serving)
}

#[tokio::test]
async fn the_gateway_refuses_a_policy_that_retries_before_retry_after_as_policy_check_does() {
    // (`[policies.chaos]` is a table; its settings JSON is the `hammer` key.)
    let (error, serving) = rejected_at_load("hammer = true").await;
    assert_eq!(error.reason(), "conformance", "{error}");
    assert!(error.to_string().contains("429 with Retry-After"), "{error}");
    // A brand-new name: nothing of its own keeps serving, the default policy does.
    assert!(serving.contains("default policy failover"), "{serving}");
}

#[tokio::test]
async fn the_gateway_refuses_a_policy_that_overruns_its_budget_half_the_time_as_policy_check_does() {
    let (error, _) = rejected_at_load(r#"always = "slow-half""#).await;
    assert_eq!(error.reason(), "conformance", "{error}");
    assert!(error.to_string().contains("fuel budget"), "{error}");
}

#[tokio::test]
async fn a_component_built_for_another_world_version_is_refused_naming_both_versions() {
    init_tracing();
    let a = MockProvider::start("a").await;
    let gw = TestGateway::start(&ConfigBuilder::new().provider("a", &a.url()).route("m", None, 5000, &["a"])).await;
    let ours = format!("switchyard:policy/host@{}", switchyard_policy_host::world_version());
    let theirs = ours.replace(switchyard_policy_host::world_version(), "9.9.9");
    assert_eq!(ours.len(), theirs.len());
    let mut bytes = std::fs::read(plugin_artifact("failover")).unwrap();
    let mut replaced = 0;
    while let Some(at) = bytes.windows(ours.len()).position(|w| w == ours.as_bytes()) {
        bytes[at..at + ours.len()].copy_from_slice(theirs.as_bytes());
        replaced += 1;
    }
    assert!(replaced > 0);
    let mut events = gw.policies().events();
    std::fs::write(gw.policy_dir.join("failover.wasm"), bytes).unwrap();
    let event = wait_for(&mut events, |e| matches!(e, PolicyEvent::Rejected { .. })).await;
    let PolicyEvent::Rejected { error, serving, .. } = event else { unreachable!() };
    let message = error.to_string();
    assert!(message.contains("switchyard:policy@9.9.9"), "{message}");
    assert!(message.contains(&format!("switchyard:policy@{}", switchyard_policy_host::world_version())), "{message}");
    assert!(!message.contains("may not use"), "not reported as a forbidden import: {message}");
    assert!(serving.contains("embedded version failover@"), "{serving}");
}

#[tokio::test]
async fn a_policy_flooding_the_log_is_cut_to_its_allowance_and_the_drops_counted() {
    init_tracing();
    let a = MockProvider::start("a").await;
    let config = ConfigBuilder::new().provider("a", &a.url()).route("m", Some("chaos"), 5000, &["a"]);
    let gw = TestGateway::start(&config).await;
    install_policy(&gw, "chaos", "chaos").await;
    for _ in 0..3 {
        assert_eq!(chaos_request(&gw, "log-flood").await.status, 200);
    }
    let dropped = gw.policies().dropped_log_lines("chaos");
    let allowance = switchyard_policy_host::log_limit::BURST as u64 + 50;
    assert!(dropped >= 3000 - allowance, "only {dropped} of 3000 lines dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_machine_never_demotes_a_well_behaved_policy() {
    init_tracing();
    let a = MockProvider::start("a").await;
    let config = ConfigBuilder::new().provider("a", &a.url()).route("m", None, 5000, &["a"]);
    let gw = Arc::new(TestGateway::start(&config).await);
    let mut events = gw.policies().events();
    // Four spinning threads per core for the length of the load.
    let stop = Arc::new(AtomicBool::new(false));
    let spinners: Vec<_> = (0..8)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            })
        })
        .collect();
    let mut fallbacks = 0;
    for _ in 0..200 {
        let r = post_chat(&gw.url(), "m").await;
        assert_eq!(r.status, 200);
        fallbacks += usize::from(!r.header("x-switchyard-policy").starts_with("failover@"));
    }
    stop.store(true, Ordering::Relaxed);
    for s in spinners {
        s.join().unwrap();
    }
    eprintln!("200 requests on a saturated machine: {fallbacks} answered by a fallback");
    let demoted = tokio::time::timeout(Duration::from_millis(200), async {
        loop {
            if let Ok(PolicyEvent::Demoted { reason, .. }) = events.recv().await {
                return reason;
            }
        }
    })
    .await;
    assert!(demoted.is_err(), "demoted on a busy machine: {demoted:?}");
    assert!(gw.policies().current("failover").unwrap().standing().demoted().is_none());
}

#[tokio::test]
async fn a_shadow_candidate_is_asked_every_decision_and_never_answers_a_client() {
    init_tracing();
    let (a, b) = (MockProvider::start("a").await, MockProvider::start("b").await);
    let config = ConfigBuilder::new()
        .policy("shadows = { failover = \"resilient\" }")
        .provider("a", &a.url())
        .provider("b", &b.url())
        .route("m", Some("failover"), 5000, &["a", "b"]);
    let gw = TestGateway::start(&config).await;
    for _ in 0..30 {
        let r = post_chat(&gw.url(), "m").await;
        assert_eq!(r.status, 200);
        assert!(r.header("x-switchyard-policy").starts_with("failover@"), "the serving policy answers");
    }
    let shadow = || async {
        let policies = get(&gw.admin_url(), "/admin/policies").await.json();
        let failover = policies.as_array().unwrap().iter().find(|p| p["policy"] == "failover").cloned().unwrap();
        failover["shadow"][0].clone()
    };
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = shadow().await;
        if s["compared"].as_u64().unwrap_or(0) >= 30 {
            assert_eq!(s["candidate"], "resilient");
            assert_eq!(s["failed"], 0, "{s}");
            assert_eq!(s["dropped"], 0, "{s}");
            // /metrics counts the same comparisons.
            let metrics = get(&gw.admin_url(), "/metrics").await.body;
            let series = |result: &str| {
                let name = format!(
                    "switchyard_policy_shadow_decisions_total{{policy=\"failover\",candidate=\"resilient\",result=\"{result}\"}} "
                );
                let line =
                    metrics.lines().find(|l| l.starts_with(&name)).unwrap_or_else(|| panic!("no {name} in\n{metrics}"));
                line[name.len()..].parse::<u64>().unwrap()
            };
            assert!(series("agreed") + series("disagreed") >= 30);
            assert_eq!((series("failed"), series("dropped")), (0, 0));
            let (ok, said) = crate::metrics::promtool(&["check", "metrics"], &metrics);
            assert!(ok, "promtool check metrics: {said}");
            break;
        }
        assert!(std::time::Instant::now() < until, "the candidate was not asked: {s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Requests from `clients` concurrent clients until `stop`; each request's
/// `x-chaos` header is `mode` when `chaos(n)` says so for the load's n-th
/// request. Returns (status, answering version) of every answer.
fn load(
    gw: &Arc<TestGateway>,
    clients: usize,
    stop: &Arc<AtomicBool>,
    chaos: impl Fn(u64) -> Option<&'static str> + Send + Sync + 'static,
) -> Vec<tokio::task::JoinHandle<Vec<(u16, String)>>> {
    let n = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let chaos = Arc::new(chaos);
    (0..clients)
        .map(|_| {
            let (gw, stop, n, chaos) = (gw.clone(), stop.clone(), n.clone(), chaos.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let headers: Vec<(&str, &str)> =
                        chaos(n.fetch_add(1, Ordering::Relaxed)).map(|m| ("x-chaos", m)).into_iter().collect();
                    let r = post_raw(&gw.url(), "/v1/chat/completions", chat_body("m", false), &headers).await;
                    answers.push((r.status.as_u16(), r.header("x-switchyard-policy").to_owned()));
                }
                answers
            })
        })
        .collect()
}

async fn answers(clients: Vec<tokio::task::JoinHandle<Vec<(u16, String)>>>) -> Vec<(u16, String)> {
    let mut all = Vec::new();
    for c in clients {
        all.extend(c.await.unwrap());
    }
    all
}

#[tokio::test]
async fn a_version_that_traps_on_one_request_in_ten_is_rolled_back_under_load_and_no_client_sees_a_failure() {
    init_tracing();
    let (_a, _b, config) = live_route(&[]).await;
    let gw = Arc::new(TestGateway::start(&config).await);
    let good = write_policy(&gw, "live", &std::fs::read(plugin_artifact("failover")).unwrap()).await;
    for _ in 0..25 {
        assert_eq!(post_chat(&gw.url(), "m").await.header("x-switchyard-policy"), good);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(&gw, 6, &stop, |n| (n % 10 == 0).then_some("trap"));
    let mut events = gw.policies().events();
    let bad = write_policy(&gw, "live", &std::fs::read(plugin_artifact("chaos")).unwrap()).await;
    let demoted = wait_for(&mut events, |e| matches!(e, PolicyEvent::Demoted { label, .. } if **label == *bad)).await;
    // Some more load on the version before.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let all = answers(clients).await;
    let PolicyEvent::Demoted { reason, .. } = demoted else { unreachable!() };
    assert!(reason.starts_with("rolled back: "), "{reason}");
    let failed = all.iter().filter(|(status, _)| *status != 200).count();
    assert_eq!(failed, 0, "{failed} of {} requests failed", all.len());
    let by_bad = all.iter().filter(|(_, by)| *by == bad).count();
    assert!(by_bad >= 80, "the new version answered {by_bad} requests before its rollback");
    // After it: the version before decides every request.
    for _ in 0..10 {
        let r = chaos_request(&gw, "trap").await;
        assert_eq!((r.status.as_u16(), r.header("x-switchyard-policy")), (200, good.as_str()));
    }
}

#[tokio::test]
async fn a_canary_whose_clients_get_no_answer_is_rolled_back_while_the_serving_version_answers_the_rest() {
    init_tracing();
    let (_a, _b, config) =
        live_route(&["canary_share = 0.5", "canary_window_ms = 600000", "rollback_min_decisions = 30"]).await;
    let gw = Arc::new(TestGateway::start(&config).await);
    let good = write_policy(&gw, "live", &std::fs::read(plugin_artifact("failover")).unwrap()).await;
    // Every request asks for a 503: the failover policy pays it no heed,
    // the chaos version (valid decisions, no trap) degrades to one.
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(&gw, 6, &stop, |_| Some("unavailable"));
    let mut events = gw.policies().events();
    let worse = write_policy(&gw, "live", &std::fs::read(plugin_artifact("chaos")).unwrap()).await;
    let demoted = wait_for(&mut events, |e| matches!(e, PolicyEvent::Demoted { label, .. } if **label == *worse)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let all = answers(clients).await;
    let PolicyEvent::Demoted { reason, .. } = demoted else { unreachable!() };
    assert!(reason.starts_with("rolled back: the client got no answer to 100.0 % of its "), "{reason}");
    assert!(reason.contains("against 0.0 % of the "), "{reason}");
    // Only the canary's requests failed, about 30 of them (those in flight
    // when the verdict came, and those its side got while the serving
    // side reached 30 too).
    let failed: Vec<_> = all.iter().filter(|(status, _)| *status != 200).collect();
    assert!(failed.iter().all(|(status, by)| *status == 503 && *by == worse), "{failed:?}");
    assert!((30..=60).contains(&failed.len()), "{} requests failed", failed.len());
    assert!(all.iter().filter(|(_, by)| *by == good).all(|(status, _)| *status == 200));
    for _ in 0..10 {
        let r = chaos_request(&gw, "unavailable").await;
        assert_eq!((r.status.as_u16(), r.header("x-switchyard-policy")), (200, good.as_str()));
    }
}
