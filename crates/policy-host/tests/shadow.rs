//! Shadow mode: candidates are asked every decision their policy makes,
//! off the request path; what the requests get never changes.

use std::sync::Arc;
use std::time::Duration;

use switchyard_policy_host::embedded::PLUGIN_ARTIFACTS;
use switchyard_policy_host::*;

#[tokio::test]
async fn candidates_see_every_decision_and_are_compared_without_changing_any() {
    let t = |p: &str| Target { provider: p.into(), model: "m".into() };
    let shadows = [("p", "p-same"), ("q", "q-broken")].map(|(a, b)| (a.to_owned(), b.to_owned())).into();
    let options = HostOptions {
        settings: [("q-broken".to_owned(), r#"{"always": "trap"}"#.to_owned())].into(),
        shadows,
        ..HostOptions::new(
            Topology {
                targets: vec![t("a"), t("b")],
                routes: vec![RouteInfo { model: "m".into(), targets: vec![0, 1] }],
            },
            Limits::new(Duration::from_millis(50), 32 << 20),
        )
    };
    let host = PolicyHost::new(options, Arc::new(HealthBook::new(2))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (file, artifact) in [("p", "failover"), ("p-same", "failover"), ("q", "failover"), ("q-broken", "chaos")] {
        let path = dir.path().join(format!("{file}.wasm"));
        std::fs::copy(format!("{PLUGIN_ARTIFACTS}/{artifact}.wasm"), &path).unwrap();
        let loaded = host.load_file(&path).await;
        // The always-trapping candidate cannot pass the load checks: it is
        // never loaded, and the shadow counts its decisions as failed.
        assert_eq!(loaded.is_ok(), file != "q-broken", "{file}: {loaded:?}");
    }
    let request = RequestInfo {
        api: Api::OpenaiChat,
        route: 0,
        streaming: false,
        estimated_input_tokens: 10,
        deadline_ms: 10_000,
        caller: Default::default(),
    };
    let outcome = AttemptOutcome {
        target: 0,
        attempt: 1,
        tried: vec![0],
        kind: OutcomeKind::Overloaded,
        http_status: Some(503),
        retry_after_ms: None,
        elapsed_ms: 40,
    };
    for name in ["p", "q"] {
        for _ in 0..100 {
            let pinned = host.pin(name, CallContext::default());
            let label = pinned.label();
            assert_eq!(pinned.route(&request).await.answered_by, label, "answered by {name} itself");
            assert_eq!(pinned.on_attempt(&request, &outcome).await.answered_by, label);
        }
    }
    let reports = || host.shadow_reports();
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while reports().iter().map(|r| r.compared).sum::<u64>() < 400 {
        assert!(std::time::Instant::now() < until, "{:?}", reports());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let reports = reports();
    let same = reports.iter().find(|r| r.candidate == "p-same").unwrap();
    assert_eq!((same.compared, same.failed, same.dropped), (200, 0, 0), "{same:?}");
    // The same component: every `route` agrees; `on-attempt` backs off with
    // random jitter, so only the waits may differ, never the target.
    assert!(same.agreed >= 100, "{same:?}");
    assert!(
        same.disagreements.iter().all(|d| d.starts_with("on-attempt: decided Retry(Retry { target: 0")
            && d.contains("would decide Retry(Retry { target: 0")),
        "{same:?}"
    );
    let broken = reports.iter().find(|r| r.candidate == "q-broken").unwrap();
    assert_eq!((broken.compared, broken.failed), (200, 200), "not loaded: every decision failed {broken:?}");
    assert_eq!(same.agreed + same.disagreed + same.failed, same.compared, "{same:?}");
}
