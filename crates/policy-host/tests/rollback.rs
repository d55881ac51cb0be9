//! Automatic rollback: a new version that fails one decision in five (never
//! five in a row) is demoted to the version before once its failure rate is
//! judged, with an event saying why; every decision meanwhile is answered.

use std::sync::Arc;
use std::time::Duration;

use switchyard_policy_host::embedded::PLUGIN_ARTIFACTS;
use switchyard_policy_host::*;

#[tokio::test]
async fn a_version_that_traps_on_one_request_in_five_is_rolled_back_and_no_decision_goes_unanswered() {
    let t = |p: &str| Target { provider: p.into(), model: "m".into() };
    let options = HostOptions {
        rollback: Some(RollbackRule { min_decisions: 100, max_failure_rate: 0.05, max_request_failure_rate: 1.0 }),
        ..HostOptions::new(
            Topology {
                targets: vec![t("a"), t("b")],
                routes: vec![RouteInfo { model: "m".into(), targets: vec![0, 1] }],
            },
            Limits::new(Duration::from_millis(50), 32 << 20),
        )
    };
    let host = PolicyHost::new(options, Arc::new(HealthBook::new(2))).unwrap();
    let mut news = host.events();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.wasm");
    let request = RequestInfo {
        api: Api::OpenaiChat,
        route: 0,
        streaming: false,
        estimated_input_tokens: 10,
        deadline_ms: 10_000,
        caller: Default::default(),
    };

    // The version before proves itself.
    std::fs::copy(format!("{PLUGIN_ARTIFACTS}/failover.wasm"), &file).unwrap();
    let good = host.load_file(&file).await.unwrap().unwrap().label().clone();
    for _ in 0..30 {
        host.pin("p", CallContext::default()).route(&request).await;
    }
    // The new one traps when a request carries `x-chaos: trap`: one in five.
    std::fs::copy(format!("{PLUGIN_ARTIFACTS}/chaos.wasm"), &file).unwrap();
    let bad = host.load_file(&file).await.unwrap().unwrap().label().clone();
    let mut answered_by = std::collections::BTreeMap::<String, usize>::new();
    for i in 1..=300 {
        let call = if i % 5 == 0 {
            CallContext::from_headers([("x-chaos", b"trap".as_slice())])
        } else {
            CallContext::default()
        };
        let decided = host.pin("p", call).route(&request).await;
        assert!(matches!(decided.value, RouteDecision::Send(_)), "decision {i} was answered: {:?}", decided.value);
        *answered_by.entry(decided.answered_by.to_string()).or_default() += 1;
    }
    // Decisions 1..=100 ran on the new version (20 traps, answered by the
    // good one); from the 100th on, only the good one is asked.
    assert_eq!(answered_by.get(&*bad), Some(&80), "{answered_by:?}");
    assert_eq!(answered_by.get(&*good), Some(&220), "{answered_by:?}");
    let mut reason = None;
    while let Ok(event) = news.try_recv() {
        if let PolicyEvent::Demoted { label, reason: why, .. } = event {
            assert_eq!(label, bad);
            reason = Some(why);
        }
    }
    let reason = reason.expect("a policy_demoted event");
    assert!(reason.starts_with("rolled back: 20.0 % of its 100 decisions failed, against 0.0 %"), "{reason}");
}
