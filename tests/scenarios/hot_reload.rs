//! Policies are swapped while requests flow: no request fails, in-flight
//! requests finish on their version, and routing follows the new policy.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use switchyard_policy_host::sha256_hex;

use crate::*;

/// Replace by rename: write beside, then rename over (what deploy tools do).
fn replace_by_rename(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// Write in place: truncate and rewrite the same file.
fn write_in_place(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_swapped_24_times_under_load_drops_no_request() {
    init_tracing();
    let (_a, _b, config) = live_route(&[]).await;
    let gw = Arc::new(TestGateway::start(&config).await);
    let failover = std::fs::read(plugin_artifact("failover")).unwrap();
    let weighted = std::fs::read(plugin_artifact("weighted_split")).unwrap();

    // Clients keep sending for the whole test.
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut clients = Vec::new();
    for _ in 0..3 {
        let (gw, stop, sent, failed) = (gw.clone(), stop.clone(), sent.clone(), failed.clone());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let r = post_chat(&gw.url(), "m").await;
                sent.fetch_add(1, Ordering::Relaxed);
                if r.status != 200 {
                    failed.fetch_add(1, Ordering::Relaxed);
                    eprintln!("failed request: {} {}", r.status, r.body);
                }
            }
        }));
    }

    let mut swap_times = Vec::new();
    for round in 0..24 {
        let (bytes, is_weighted) = if round % 2 == 0 { (&weighted, true) } else { (&failover, false) };
        let want = label("live", bytes);
        let started = Instant::now();
        if round % 4 < 2 {
            replace_by_rename(&gw.policy_dir, "live.wasm", bytes);
        } else {
            write_in_place(&gw.policy_dir, "live.wasm", bytes);
        }
        // Wait until answers come from the new version.
        let mut providers = Vec::new();
        loop {
            let r = post_chat(&gw.url(), "m").await;
            assert_eq!(r.status, 200, "{}", r.body);
            if r.header("x-switchyard-policy") == want {
                providers.push(r.header("x-switchyard-provider").to_owned());
                if providers.len() >= 60
                    || (is_weighted && providers.iter().any(|p| p == "b"))
                    || (!is_weighted && providers.len() >= 10)
                {
                    break;
                }
            }
            assert!(started.elapsed() < PATIENCE, "round {round}: {want} never served");
        }
        swap_times.push(started.elapsed());
        if is_weighted {
            // Equal weights: a request soon lands on b first.
            assert!(providers.iter().any(|p| p == "b"), "round {round}: weighted-split never chose b in {providers:?}");
        } else {
            // Failover: the healthy first target takes everything.
            assert!(providers.iter().all(|p| p == "a"), "round {round}: failover sent elsewhere: {providers:?}");
        }
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let sent = sent.load(Ordering::Relaxed);
    assert_eq!(failed.load(Ordering::Relaxed), 0, "failed requests during 24 swaps");
    assert!(sent > 24, "the load loop sent only {sent} requests");
    swap_times.sort();
    eprintln!(
        "24 swaps under load ({sent} requests, 0 failed); new policy serving after p50 {:?}, max {:?}",
        swap_times[12], swap_times[23]
    );
}

#[tokio::test]
async fn removing_the_file_falls_back_to_the_embedded_policy() {
    init_tracing();
    let a = MockProvider::start("a").await;
    let b = MockProvider::start("b").await;
    let config =
        ConfigBuilder::new().provider("a", &a.url()).provider("b", &b.url()).route("m", None, 5000, &["a", "b"]);
    let gw = TestGateway::start(&config).await;
    let embedded = post_chat(&gw.url(), "m").await.header("x-switchyard-policy").to_owned();
    let mut events = gw.policies().events();
    let chaos = std::fs::read(plugin_artifact("chaos")).unwrap();
    std::fs::write(gw.policy_dir.join("failover.wasm"), &chaos).unwrap();
    wait_for(&mut events, |e| matches!(e, PolicyEvent::Loaded { name, .. } if name == "failover")).await;
    assert_eq!(post_chat(&gw.url(), "m").await.header("x-switchyard-policy"), label("failover", &chaos));
    std::fs::remove_file(gw.policy_dir.join("failover.wasm")).unwrap();
    wait_for(&mut events, |e| matches!(e, PolicyEvent::Removed { name, .. } if name == "failover")).await;
    assert_eq!(post_chat(&gw.url(), "m").await.header("x-switchyard-policy"), embedded);
}

#[tokio::test]
async fn in_flight_request_finishes_on_the_version_it_started_with() {
    init_tracing();
    let slow = MockProvider::start_cycling(
        "slow",
        vec![Reply::Delay(Duration::from_millis(1500), Box::new(Reply::status(503)))],
    )
    .await;
    let b = MockProvider::start("b").await;
    let config = ConfigBuilder::new().provider("slow", &slow.url()).provider("b", &b.url()).route(
        "m",
        None,
        10_000,
        &["slow", "b"],
    );
    let gw = TestGateway::start(&config).await;
    let url = gw.url();
    let in_flight = tokio::spawn(async move { post_chat(&url, "m").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut events = gw.policies().events();
    let weighted = std::fs::read(plugin_artifact("weighted_split")).unwrap();
    std::fs::write(gw.policy_dir.join("failover.wasm"), &weighted).unwrap();
    wait_for(&mut events, |e| matches!(e, PolicyEvent::Loaded { .. })).await;
    // The request that started on the embedded failover policy finishes on it:
    // its on-attempt decision after the 503 came from the old version.
    let r = in_flight.await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.header("x-switchyard-policy").starts_with("failover@"));
    assert_ne!(r.header("x-switchyard-policy"), label("failover", &weighted));
    assert_eq!(r.header("x-switchyard-provider"), "b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_state_is_shared_by_instances_and_kept_across_a_hot_swap_of_the_same_name() {
    init_tracing();
    let a = MockProvider::start("a").await;
    let b = MockProvider::start("b").await;
    let config =
        ConfigBuilder::new().provider("a", &a.url()).provider("b", &b.url()).route("m", Some("rr"), 5000, &["a", "b"]);
    let gw = TestGateway::start(&config).await;
    let turn = || gw.policies().state("rr").get("turn").map_or(0, |v| v.parse::<u64>().unwrap());
    let bytes = std::fs::read(plugin_artifact("round_robin")).unwrap();
    let mut events = gw.policies().events();
    std::fs::write(gw.policy_dir.join("rr.wasm"), &bytes).unwrap();
    wait_for(&mut events, |e| matches!(e, PolicyEvent::Loaded { name, .. } if name == "rr")).await;

    // 40 concurrent requests, so several instances take turns at once:
    // compare-and-swap loses none, and the split is even.
    let before = turn();
    concurrent_chats(&gw.url(), 4, 10).await;
    assert_eq!(turn() - before, 40, "every request took exactly one turn");
    assert_eq!((a.received(), b.received()), (20, 20));

    // The same policy name, a new version: the counter carries on.
    let swapped = rebuilt(&bytes);
    let label = format!("rr@{}", &sha256_hex(&swapped)[..12]);
    let before_swap = turn();
    std::fs::write(gw.policy_dir.join("rr.wasm"), &swapped).unwrap();
    wait_for(&mut events, |e| matches!(e, PolicyEvent::Loaded { label: l, .. } if **l == *label)).await;
    let r = post_chat(&gw.url(), "m").await;
    assert_eq!(r.header("x-switchyard-policy"), label);
    assert!(turn() > before_swap, "the new version counted on from {before_swap}, not from 0: {}", turn());
}
