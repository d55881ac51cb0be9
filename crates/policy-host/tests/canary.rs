//! Canary: a new version of a policy that already serves decides for its
//! share of requests for a window, then for all; one that gets demoted
//! meanwhile never takes over.

use std::sync::Arc;
use std::time::Duration;

use switchyard_policy_host::embedded::PLUGIN_ARTIFACTS;
use switchyard_policy_host::*;

fn host(canary: Canary) -> Arc<PolicyHost> {
    host_with(canary, None)
}

fn host_with(canary: Canary, rollback: Option<RollbackRule>) -> Arc<PolicyHost> {
    let t = |p: &str| Target { provider: p.into(), model: "m".into() };
    let options = HostOptions {
        canary: Some(canary),
        rollback,
        ..HostOptions::new(
            Topology {
                targets: vec![t("a"), t("b")],
                routes: vec![RouteInfo { model: "m".into(), targets: vec![0, 1] }],
            },
            Limits::new(Duration::from_millis(50), 32 << 20),
        )
    };
    PolicyHost::new(options, Arc::new(HealthBook::new(2))).unwrap()
}

fn write(path: &std::path::Path, artifact: &str) {
    std::fs::copy(format!("{PLUGIN_ARTIFACTS}/{artifact}.wasm"), path).unwrap();
}

#[tokio::test]
async fn a_new_version_serves_its_share_for_the_window_then_everything() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.wasm");
    let host = host(Canary { share: 0.25, window: Duration::from_millis(1500) });
    let mut news = host.events();
    write(&file, "failover");
    let old = host.load_file(&file).await.unwrap().unwrap().label().clone();
    write(&file, "resilient");
    let new = host.load_file(&file).await.unwrap().unwrap().label().clone();
    assert_ne!(old, new);

    let n = 4000;
    let on_new = (0..n).filter(|_| host.pin("p", CallContext::default()).label() == new).count();
    // Binomial: mean 1000, sd 27; five sd either side.
    assert!((863..=1137).contains(&on_new), "{on_new} of {n} requests on the canary, expected about 1,000");
    assert_eq!(host.current("p").unwrap().label(), &old, "the old version is current during the window");

    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert!((0..200).all(|_| host.pin("p", CallContext::default()).label() == new), "after the window: all");
    assert_eq!(host.current("p").unwrap().label(), &new);
    let mut seen = Vec::new();
    while let Ok(event) = news.try_recv() {
        seen.push(match event {
            PolicyEvent::CanaryStarted { share, .. } => format!("canary {share}"),
            PolicyEvent::CanaryPromoted { label, .. } => format!("promoted {}", label == new),
            PolicyEvent::Loaded { .. } => "loaded".into(),
            other => format!("{other:?}"),
        });
    }
    assert_eq!(seen, ["loaded", "loaded", "canary 0.25", "promoted true"]);
}

#[tokio::test]
async fn a_first_version_serves_at_once_without_a_canary() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("q.wasm");
    let host = host(Canary { share: 0.1, window: Duration::from_secs(60) });
    write(&file, "failover");
    let label = host.load_file(&file).await.unwrap().unwrap().label().clone();
    assert!((0..100).all(|_| host.pin("q", CallContext::default()).label() == label));
}

/// Loads failover, then resilient as a canary on half the requests, and
/// ends 2,000 requests: a canary's request fails when `canary_fails(i)`, a
/// serving one when `serving_fails(i)`. The demotion's reason, if any.
async fn trial(canary_fails: impl Fn(usize) -> bool, serving_fails: impl Fn(usize) -> bool) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.wasm");
    let rule = RollbackRule { min_decisions: 100, max_failure_rate: 1.0, max_request_failure_rate: 0.05 };
    let host = host_with(Canary { share: 0.5, window: Duration::from_secs(600) }, Some(rule));
    let mut news = host.events();
    write(&file, "failover");
    host.load_file(&file).await.unwrap();
    write(&file, "resilient");
    let new = host.load_file(&file).await.unwrap().unwrap().label().clone();
    for i in 0..2000 {
        let pinned = host.pin("p", CallContext::default());
        let failed = if pinned.label() == new { canary_fails(i) } else { serving_fails(i) };
        pinned.finished(failed);
    }
    let mut reason = None;
    while let Ok(event) = news.try_recv() {
        if let PolicyEvent::Demoted { label, reason: why, .. } = event {
            assert_eq!(label, new);
            reason = Some(why);
        }
    }
    if reason.is_some() {
        assert!((0..100).all(|_| host.pin("p", CallContext::default()).label() != new), "the trial ended");
    }
    reason
}

#[tokio::test]
async fn a_canary_whose_clients_get_no_answer_more_often_than_the_serving_versions_is_rolled_back() {
    let reason = trial(|i| i % 4 == 0, |_| false).await.expect("rolled back");
    assert!(reason.starts_with("rolled back: the client got no answer to "), "{reason}");
    assert!(reason.contains("against 0.0 % of the "), "{reason}");
}

#[tokio::test]
async fn an_outage_that_fails_both_sides_alike_rolls_no_canary_back() {
    assert_eq!(trial(|i| i % 2 == 0, |i| i % 2 == 0).await, None);
}
