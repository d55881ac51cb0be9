//! `--shadow SECS`: what shadow mode costs the request path. Two gateways
//! with the same `failover` policy, one with `resilient` shadowing it (every
//! decision handed to a bounded queue and asked again off the request
//! path); added p50 and throughput measured interleaved, in one run.

use std::time::Duration;

use switchyard_testkit::{ConfigBuilder, MockProvider, TestGateway};

use crate::http_load::{Client, alternating, latencies, runtime};

/// p50 of each, and median throughput of each (plain, shadowed), plus the direct p50.
pub struct ShadowCost {
    pub direct_p50: Duration,
    pub plain_p50: Duration,
    pub shadowed_p50: Duration,
    pub plain_rps: f64,
    pub shadowed_rps: f64,
}

pub fn measure(requests: usize, each: Duration) -> ShadowCost {
    let mock_rt = runtime("bench-mock", 1);
    let gateway_rt = runtime("bench-gateway", 2);
    let client = runtime("bench-client", 1);
    let mock = mock_rt.block_on(MockProvider::start("bench"));
    let temp = tempfile::tempdir().expect("temp dir");
    let start = |name: &str, shadow: bool| {
        let dir = temp.path().join(name);
        std::fs::create_dir_all(&dir).expect("gateway dir");
        let mut config = ConfigBuilder::new().access_log("off").provider("bench", &mock.url()).route(
            "gpt-4o-mini",
            Some("failover"),
            30_000,
            &["bench"],
        );
        if shadow {
            config = config.policy("shadows = { failover = \"resilient\" }");
        }
        gateway_rt.block_on(TestGateway::start_in(&config.build(&dir.join("policies")), &dir, |_| None))
    };
    let (plain, shadowed) = (start("plain", false), start("shadowed", true));
    let direct = mock.url().trim_start_matches("http://").to_owned();
    let paths = vec![
        ("direct", direct, Client::OpenAi),
        ("plain", plain.addr.to_string(), Client::OpenAi),
        ("shadowed", shadowed.addr.to_string(), Client::OpenAi),
    ];
    let p50s = latencies(&client, &paths, requests);
    let rps = alternating(&client, &[paths[1].1.clone(), paths[2].1.clone()], 5, each);
    let reports = shadowed.policies().shadow_reports();
    let compared: u64 = reports.iter().map(|r| r.compared).sum();
    let dropped: u64 = reports.iter().map(|r| r.dropped).sum();
    eprintln!("shadow: {compared} decisions compared off the request path, {dropped} dropped (queue full)");
    assert!(compared > 0, "the candidate was asked: {reports:?}");
    ShadowCost {
        direct_p50: p50s[0].0,
        plain_p50: p50s[1].0,
        shadowed_p50: p50s[2].0,
        plain_rps: rps[0],
        shadowed_rps: rps[1],
    }
}
