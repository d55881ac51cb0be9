//! Policy-host behaviour against real components built from `plugins/`:
//! each misbehaving fixture fails in exactly the way it should, and a
//! request-time failure is answered by the fallback chain.

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_policy_host::embedded::PLUGIN_ARTIFACTS;
use switchyard_policy_host::*;

fn topology() -> Topology {
    let t = |p: &str| Target { provider: p.into(), model: "m".into() };
    Topology { targets: vec![t("a"), t("b")], routes: vec![RouteInfo { model: "m".into(), targets: vec![0, 1] }] }
}

fn host_with(settings: &[(&str, &str)], cache_dir: Option<std::path::PathBuf>) -> Arc<PolicyHost> {
    // Generous enough that a preempted thread on a loaded CI machine does not
    // overrun it; the loop test sets the 5 ms default itself.
    host_with_deadline(settings, cache_dir, Duration::from_millis(50))
}

fn host_with_deadline(
    settings: &[(&str, &str)],
    cache_dir: Option<std::path::PathBuf>,
    deadline: Duration,
) -> Arc<PolicyHost> {
    let options = HostOptions {
        settings: settings.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        cache_dir,
        ..HostOptions::new(topology(), Limits::new(deadline, 32 << 20))
    };
    PolicyHost::new(options, Arc::new(HealthBook::new(2))).unwrap()
}

fn artifact(name: &str) -> Vec<u8> {
    std::fs::read(format!("{PLUGIN_ARTIFACTS}/{name}.wasm")).unwrap()
}

fn request() -> RequestInfo {
    RequestInfo {
        api: Api::OpenaiChat,
        route: 0,
        streaming: false,
        estimated_input_tokens: 10,
        deadline_ms: 10_000,
        caller: Default::default(),
    }
}

fn chaos_call(mode: &str) -> Arc<CallContext> {
    Arc::new(CallContext::from_headers([("x-chaos", mode.as_bytes())]))
}

async fn prepare(host: &Arc<PolicyHost>, name: &str, file: &str) -> Result<Arc<PolicyVersion>, PolicyError> {
    host.prepare(name, artifact(file), PolicyOrigin::Embedded).await.map(|(v, _)| v)
}

#[tokio::test]
async fn embedded_failover_sends_to_targets_in_order() {
    let host = host_with(&[], None);
    host.load_embedded(["failover"]).await.unwrap();
    let pinned = host.pin("failover", CallContext::default());
    assert!(pinned.label().starts_with("failover@"));
    let decided = pinned.route(&request()).await;
    assert_eq!(
        decided.value,
        RouteDecision::Send(Plan { targets: vec![0, 1], limits: AttemptLimits::DEFAULT, hedge_after_ms: None })
    );
    let outcome = AttemptOutcome {
        target: 0,
        attempt: 1,
        tried: vec![0],
        kind: OutcomeKind::Overloaded,
        http_status: Some(503),
        retry_after_ms: None,
        elapsed_ms: 3,
    };
    // A 503 is retried once on the same target after a short backoff, then
    // the next target is tried at once.
    let next = pinned.on_attempt(&request(), &outcome).await;
    assert!(matches!(next.value, NextStep::Retry(Retry { target: 0, delay_ms }) if delay_ms <= 100), "{next:?}");
    let again = AttemptOutcome { attempt: 2, tried: vec![0, 0], ..outcome };
    let next = pinned.on_attempt(&request(), &again).await;
    assert_eq!(next.value, NextStep::Retry(Retry { target: 1, delay_ms: 0 }));
    assert_eq!(next.answered_by, pinned.label());
}

#[tokio::test]
async fn trapping_decision_is_a_trap() {
    let host = host_with(&[], None);
    let v = prepare(&host, "chaos", "chaos").await.unwrap();
    let err = v.route(&request(), chaos_call("trap")).await.unwrap_err();
    assert!(matches!(err, PolicyError::Trap(ref m) if m.contains("unreachable")), "{err:?}");
    // The next call gets a fresh instance and works.
    assert!(v.route(&request(), Arc::new(CallContext::default())).await.is_ok());
}

#[tokio::test]
async fn a_panicking_decision_is_told_in_the_policys_own_words() {
    let host = host_with(&[], None);
    let v = prepare(&host, "chaos", "chaos").await.unwrap();
    // A call that succeeds after printing: its output is not kept for later.
    assert!(v.route(&request(), chaos_call("print")).await.is_ok());
    let err = v.route(&request(), chaos_call("panic")).await.unwrap_err();
    let PolicyError::Trap(account) = &err else { panic!("{err:?}") };
    assert!(account.starts_with("wasm trap: wasm `unreachable` instruction executed"), "{account}");
    assert!(account.contains("\n  the policy wrote:\n    chaos: about to panic\n"), "{account}");
    assert!(account.contains("panicked at fixtures/chaos/src/lib.rs:") || account.contains("src/lib.rs:"), "{account}");
    assert!(account.contains("chaos: asked to panic"), "{account}");
    assert!(!account.contains("a line from a call that succeeds"), "{account}");
    assert!(!account.contains("RUST_BACKTRACE"), "no hint the policy cannot follow: {account}");
}

#[tokio::test]
async fn a_looping_decision_is_stopped_by_its_fuel_budget_on_an_idle_or_a_busy_machine() {
    let host = host_with_deadline(&[], None, Duration::from_millis(5));
    let v = prepare(&host, "chaos", "chaos").await.unwrap();
    let budget = switchyard_policy_host::fuel_for(Duration::from_millis(5));
    let stop = |took: Duration| took < Duration::from_millis(100);
    let started = Instant::now();
    let err = v.route(&request(), chaos_call("loop")).await.unwrap_err();
    assert_eq!(err, PolicyError::BudgetExceeded(budget), "the policy's fault, whatever the machine");
    assert!(stop(started.elapsed()), "stopped after {:?}", started.elapsed());
    // Every core busy: still the budget that stops it, never the clock.
    let spin = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let spinners: Vec<_> = (0..4)
        .map(|_| {
            let spin = spin.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while spin.load(std::sync::atomic::Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            })
        })
        .collect();
    for _ in 0..5 {
        assert_eq!(v.route(&request(), chaos_call("loop")).await.unwrap_err(), PolicyError::BudgetExceeded(budget));
    }
    spin.store(false, std::sync::atomic::Ordering::Relaxed);
    for s in spinners {
        s.join().unwrap();
    }
}

#[tokio::test]
async fn runaway_memory_is_out_of_memory() {
    let host = host_with(&[], None);
    let v = prepare(&host, "chaos", "chaos").await.unwrap();
    let err = v.route(&request(), chaos_call("oom")).await.unwrap_err();
    assert_eq!(err, PolicyError::OutOfMemory(32));
}

#[tokio::test]
async fn an_instance_whose_memory_keeps_growing_is_replaced_before_it_runs_out() {
    // 32 MiB allowed; each decision keeps 3 MiB more. One instance would run
    // out within a dozen calls; retired once it has grown 2 MiB (here: after
    // every call), none does.
    let host = host_with(&[], None);
    let v = prepare(&host, "chaos", "chaos").await.unwrap();
    for call in 0..40 {
        let decision = v.route(&request(), chaos_call("leak")).await;
        assert!(decision.is_ok(), "call {call}: {decision:?}");
    }
    let retired = v.instances_retired();
    assert!((4..=40).contains(&retired), "{retired} instances retired in 40 calls");
    assert!(v.memory_high_water() < 16 << 20, "{} bytes", v.memory_high_water());
}

#[tokio::test]
async fn unknown_target_and_zero_timeout_are_invalid_decisions() {
    let host = host_with(&[], None);
    let v = prepare(&host, "chaos", "chaos").await.unwrap();
    for mode in ["bad-target", "zero-timeout"] {
        let err = v.route(&request(), chaos_call(mode)).await.unwrap_err();
        assert!(matches!(err, PolicyError::InvalidDecision(_)), "{mode}: {err:?}");
    }
}

#[tokio::test]
async fn forbidden_import_is_refused_by_name() {
    let host = host_with(&[], None);
    let err = prepare(&host, "exfil", "forbidden_import").await.unwrap_err();
    assert_eq!(err, PolicyError::ForbiddenImport("`acme:exfil/net`".into()));
    assert!(err.to_string().contains("acme:exfil/net"));
}

#[tokio::test]
async fn a_policy_built_for_the_previous_world_is_refused_naming_both_versions() {
    let host = host_with(&[], None);
    let err = prepare(&host, "old", "previous_world").await.unwrap_err();
    assert_eq!(err, PolicyError::WorldVersion { found: "0.2.0".into(), expected: "0.3.0".into() });
    let message = err.to_string();
    assert!(message.contains("0.2.0") && message.contains("0.3.0"), "{message}");
}

#[tokio::test]
async fn not_wasm_and_core_modules_are_refused() {
    let host = host_with(&[], None);
    let err = host.prepare("x", b"#!/bin/sh\necho hi\n".to_vec(), PolicyOrigin::Embedded).await.unwrap_err();
    assert!(matches!(err, PolicyError::Compile(ref m) if m.contains("not a WebAssembly file")), "{err:?}");
}

#[tokio::test]
async fn always_misbehaving_policy_fails_its_load_time_check() {
    for (mode, expect) in
        [("trap", "trap"), ("loop", "budget_exceeded"), ("oom", "out_of_memory"), ("bad-target", "invalid_decision")]
    {
        let settings = format!(r#"{{"always":"{mode}"}}"#);
        let host = host_with(&[("chaos", &settings)], None);
        let err = prepare(&host, "chaos", "chaos").await.unwrap_err();
        assert_eq!(err.reason(), expect, "{mode}: {err}");
    }
}

#[tokio::test]
async fn refused_settings_are_config_rejected() {
    let host = host_with(&[("chaos", r#""refuse""#)], None);
    let err = prepare(&host, "chaos", "chaos").await.unwrap_err();
    assert!(matches!(err, PolicyError::ConfigRejected(ref m) if m.contains("refusing")), "{err:?}");
}

#[tokio::test]
async fn init_that_never_returns_is_interrupted_after_the_init_allowance() {
    let host = host_with(&[("chaos", r#""loop-in-init""#)], None);
    let started = Instant::now();
    let err = prepare(&host, "chaos", "chaos").await.unwrap_err();
    assert_eq!(err, PolicyError::DeadlineExceeded(1000));
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1000) && took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn failover_refuses_unknown_settings() {
    let host = host_with(&[("failover", r#"{"max_attempt":3}"#)], None);
    let err = prepare(&host, "failover", "failover").await.unwrap_err();
    assert!(matches!(err, PolicyError::ConfigRejected(ref m) if m.contains("max_attempt")), "{err:?}");
}

#[tokio::test]
async fn failing_decision_falls_back_to_last_good_then_native() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with(&[], None);
    host.load_embedded(["failover"]).await.unwrap();
    let file = dir.path().join("failover.wasm");
    std::fs::write(&file, artifact("chaos")).unwrap();
    let loaded = host.load_file(&file).await.unwrap().unwrap();
    assert!(loaded.label().starts_with("failover@"));

    // The chaos version traps on this request; the embedded failover (last good) answers.
    let pinned = host.pin("failover", CallContext::from_headers([("x-chaos", b"trap".as_slice())]));
    assert_eq!(pinned.label(), *loaded.label());
    let decided = pinned.route(&request()).await;
    assert_ne!(decided.answered_by, *loaded.label());
    assert!(decided.answered_by.starts_with("failover@"));
    assert_eq!(host.failed_decisions(), 1);

    // A policy with no last good version falls back to the native policy.
    let lone = dir.path().join("chaos.wasm");
    std::fs::write(&lone, artifact("chaos")).unwrap();
    host.load_file(&lone).await.unwrap();
    let pinned = host.pin("chaos", CallContext::from_headers([("x-chaos", b"loop".as_slice())]));
    let decided = pinned.route(&request()).await;
    assert_eq!(&*decided.answered_by, native::NATIVE_LABEL);
    assert!(matches!(decided.value, RouteDecision::Send(_)));
}

#[tokio::test]
async fn compiled_policies_are_cached_on_disk() {
    let cache = tempfile::tempdir().unwrap();
    let first = host_with(&[], Some(cache.path().to_owned()));
    let (_, from_cache) = first.prepare("failover", artifact("failover"), PolicyOrigin::Embedded).await.unwrap();
    assert!(!from_cache);
    let second = host_with(&[], Some(cache.path().to_owned()));
    let started = Instant::now();
    let (v, from_cache) = second.prepare("failover", artifact("failover"), PolicyOrigin::Embedded).await.unwrap();
    assert!(from_cache, "second load should come from the cache");
    eprintln!("warm-cache load + self-check: {:?}", started.elapsed());
    assert!(v.route(&request(), Arc::new(CallContext::default())).await.is_ok());
}

#[tokio::test]
async fn a_decision_that_does_too_much_work_is_its_own_fault() {
    let host = host_with_deadline(&[], None, Duration::from_millis(20));
    let v = prepare(&host, "chaos", "chaos").await.unwrap();
    let mut errors = Vec::new();
    for _ in 0..4 {
        if let Err(e) = v.route(&request(), chaos_call("slow-half")).await {
            errors.push(e);
        }
    }
    let budget = switchyard_policy_host::fuel_for(Duration::from_millis(20));
    assert_eq!(errors, vec![PolicyError::BudgetExceeded(budget); 2]);
}

#[tokio::test]
async fn conformance_fails_a_policy_that_overruns_half_the_time() {
    let host = host_with_deadline(&[("chaos", r#"{"always":"slow-half"}"#)], None, Duration::from_millis(5));
    let v = prepare(&host, "chaos", "chaos").await.unwrap();
    let started = Instant::now();
    let report = host.conformance(&v).await;
    eprintln!("{:?} {}", started.elapsed(), report.failures());
    assert!(!report.passed());
}

#[tokio::test]
async fn load_time_sample_decisions_leave_the_policys_state_where_it_was() {
    // Three routes: the load-time checks ask `route` once per route. Had
    // they run on the live state, the round-robin counter would stand at
    // 3 and the first request would start at target b.
    let t = |p: &str| Target { provider: p.into(), model: "m".into() };
    let route = |m: &str| RouteInfo { model: m.into(), targets: vec![0, 1] };
    let options = HostOptions {
        ..HostOptions::new(
            Topology { targets: vec![t("a"), t("b")], routes: vec![route("x"), route("y"), route("z")] },
            Limits::new(Duration::from_millis(50), 32 << 20),
        )
    };
    let host = PolicyHost::new(options, Arc::new(HealthBook::new(2))).unwrap();
    let version = prepare(&host, "rr", "round_robin").await.unwrap();
    let call = Arc::new(CallContext::default());
    let first_target = |d: RouteDecision| match d {
        RouteDecision::Send(plan) => plan.targets[0],
        other => panic!("{other:?}"),
    };
    assert_eq!(first_target(version.route(&request(), call.clone()).await.unwrap()), 0, "turn 0: a first");
    assert_eq!(first_target(version.route(&request(), call).await.unwrap()), 1, "turn 1: b");
}
