//! Warm decision latency of a policy, through the request path's pinned
//! calls; the host and the timing loop the language table uses too.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_policy_host::*;

pub struct DecisionFigures {
    pub calls: usize,
    pub route_p50: Duration,
    pub route_p99: Duration,
    pub attempt_p50: Duration,
    pub attempt_p99: Duration,
}

/// A host over three targets of one route, with the gateway's default limits.
pub fn host(cache_dir: Option<PathBuf>) -> Arc<PolicyHost> {
    let t = |p: &str| Target { provider: p.into(), model: "gpt-4o-mini".into() };
    let options = HostOptions {
        cache_dir,
        ..HostOptions::new(
            Topology {
                targets: vec![t("primary"), t("backup"), t("local")],
                routes: vec![RouteInfo { model: "gpt-4o-mini".into(), targets: vec![0, 1, 2] }],
            },
            Limits::new(Duration::from_millis(5), 64 << 20),
        )
    };
    PolicyHost::new(options, Arc::new(HealthBook::new(3))).expect("policy host")
}

/// A plain request of the host's one route, as the benches ask it.
pub fn sample_request() -> RequestInfo {
    RequestInfo {
        api: Api::OpenaiChat,
        route: 0,
        streaming: false,
        estimated_input_tokens: 250,
        deadline_ms: 30_000,
        caller: Default::default(),
    }
}

/// Times `calls` warm `route` and `on-attempt` decisions of `policy` (after
/// 1000 of each to warm up); returns the samples, sorted.
pub async fn time_decisions(host: &Arc<PolicyHost>, policy: &str, calls: usize) -> (Vec<Duration>, Vec<Duration>) {
    let request = sample_request();
    let outcome = AttemptOutcome {
        target: 0,
        attempt: 1,
        tried: vec![0],
        kind: OutcomeKind::Overloaded,
        http_status: Some(503),
        retry_after_ms: None,
        elapsed_ms: 12,
    };
    let pinned = host.pin(policy, CallContext::default());
    for _ in 0..1000 {
        pinned.route(&request).await;
        pinned.on_attempt(&request, &outcome).await;
    }
    let (mut route, mut attempt) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
    for _ in 0..calls {
        let s = Instant::now();
        std::hint::black_box(pinned.route(&request).await);
        route.push(s.elapsed());
        let s = Instant::now();
        std::hint::black_box(pinned.on_attempt(&request, &outcome).await);
        attempt.push(s.elapsed());
    }
    // A wall-clock deadline can be overrun by a preempted thread on a
    // busy machine (the fallback chain answers then); anything more is a bug.
    let failed = host.failed_decisions();
    assert!(failed * 200 <= 2 * calls as u64, "{policy}: {failed} of {} decisions failed", 2 * calls);
    route.sort();
    attempt.sort();
    (route, attempt)
}

/// Warm decision latency of the embedded policy `policy`.
pub fn measure(policy: &str, calls: usize) -> DecisionFigures {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let host = host(None);
        host.load_embedded([policy]).await.expect("embedded policy");
        let (route, attempt) = time_decisions(&host, policy, calls).await;
        DecisionFigures {
            calls,
            route_p50: crate::pct(&route, 0.5),
            route_p99: crate::pct(&route, 0.99),
            attempt_p50: crate::pct(&attempt, 0.5),
            attempt_p99: crate::pct(&attempt, 0.99),
        }
    })
}
