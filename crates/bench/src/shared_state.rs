//! What sharing state through Redis costs and saves (`--shared-state`):
//! the `switchyard` binary with `[state] backend = "memory"` and `"redis"`
//! (a real `redis-server` on loopback), measured in one run.
//!
//! 1. Added latency per request, interleaved over four gateways: memory and
//!    redis, each open (a request touches no limit: nothing of it waits for
//!    Redis) and with a gateway key whose `requests_per_minute` is never
//!    reached (each request takes of it: one round trip). Beside them, a
//!    bare Redis `PING` round trip on the same machine.
//! 2. Attempts at a failing provider: a 503 storm spread over three
//!    instances for the same time, isolated (memory) and sharing (redis),
//!    against one instance taking all of it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use switchyard_testkit::{MockProvider, RedisServer, Reply};

use crate::http_load::{BENCH_KEY_HEADER, Client};

struct Instance(Child, String);

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `switchyard serve` on a fresh port with `config` (after its `listen`).
fn start(dir: &std::path::Path, config: &str, redis: &str) -> Instance {
    let port = crate::soak::free_port();
    let path = dir.join(format!("switchyard-{port}.toml"));
    std::fs::write(&path, format!("listen = \"127.0.0.1:{port}\"\n[log]\naccess = \"off\"\n{config}")).expect("config");
    let child = Command::new(crate::soak::binary())
        .args(["serve", "--config"])
        .arg(&path)
        .env("SWITCHYARD_REDIS_URL", redis)
        .env_remove("SWITCHYARD_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start switchyard (cargo build --release -p switchyard)");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "switchyard never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A gateway sharing state reaches Redis in its first heartbeat.
    std::thread::sleep(Duration::from_millis(500));
    Instance(child, format!("127.0.0.1:{port}"))
}

fn state(prefix: Option<&str>) -> String {
    prefix.map_or_else(String::new, |p| format!("[state]\nbackend = \"redis\"\nprefix = \"{p}\"\n"))
}

fn routes(primary: &str, backup: &str) -> String {
    format!(
        "[[providers]]\nname = \"primary\"\napi = \"openai\"\nbase_url = \"{primary}\"\n\
         [[providers]]\nname = \"backup\"\napi = \"openai\"\nbase_url = \"{backup}\"\n\
         [[routes]]\nmodel = \"gpt-4o-mini\"\n\
         targets = [{{ provider = \"primary\", model = \"m\" }}, {{ provider = \"backup\", model = \"m\" }}]\n"
    )
}

/// p50 and p99 of each gateway (`paths`) and of a bare Redis `PING`
/// round trip (`redis`), interleaved: one request to each, then one PING,
/// round after round, over one keep-alive connection each — so the
/// machine's state (a 2-core VM wakes slower when idle) is the same for all.
fn interleaved(client: &tokio::runtime::Runtime, paths: &[String], redis: u16, n: usize) -> Vec<(Duration, Duration)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    client.block_on(async {
        let body = Client::OpenAi.body();
        let mut senders = Vec::new();
        for addr in paths {
            senders.push((crate::http_load::connect(addr).await, addr.clone()));
        }
        let mut ping = tokio::net::TcpStream::connect(("127.0.0.1", redis)).await.expect("redis");
        ping.set_nodelay(true).expect("nodelay");
        let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(n); paths.len() + 1];
        let mut pong = [0u8; 7];
        for round in 0..200 + n {
            for (i, (sender, host)) in senders.iter_mut().enumerate() {
                let s = Instant::now();
                let status = crate::http_load::post(sender, host, "/v1/chat/completions", body.clone()).await;
                assert_eq!(status, 200, "benchmarked path failed");
                if round >= 200 {
                    samples[i].push(s.elapsed());
                }
            }
            let s = Instant::now();
            ping.write_all(b"PING\r\n").await.expect("ping");
            ping.read_exact(&mut pong).await.expect("pong");
            if round >= 200 {
                samples[paths.len()].push(s.elapsed());
            }
        }
        samples
            .into_iter()
            .map(|mut s| {
                s.sort();
                (crate::pct(&s, 0.5), crate::pct(&s, 0.99))
            })
            .collect()
    })
}

pub struct SharedStateFigures {
    /// (label, p50, p99) of each gateway, and the direct path's p50.
    pub latency: Vec<(&'static str, Duration, Duration)>,
    pub direct: Duration,
    pub ping: Duration,
    /// (label, attempts at the failing primary, requests).
    pub storm: Vec<(&'static str, usize, usize)>,
}

pub fn measure(n: usize, storm_for: Duration) -> SharedStateFigures {
    let rt = crate::external::mock_runtime();
    let (ok, redis) = rt.block_on(async { (MockProvider::start("ok").await, RedisServer::start().await) });
    let port: u16 = redis.url().rsplit(':').next().and_then(|p| p.split('/').next()?.parse().ok()).expect("port");
    let dir = tempfile::tempdir().expect("temp dir");
    let key = format!(
        "[[keys]]\nname = \"bench\"\nhash = {:?}\nrequests_per_minute = 1000000000\n",
        switchyard_access::hash_line(BENCH_KEY_HEADER.trim_start_matches("Bearer "))
    );
    let url = redis.url();
    let both = routes(&ok.url(), &ok.url());
    let gateways = [
        ("memory, open", start(dir.path(), &both, &url)),
        ("redis, open", start(dir.path(), &format!("{}{both}", state(Some("lat"))), &url)),
        ("memory, keyed (a rate)", start(dir.path(), &format!("{key}{both}"), &url)),
        ("redis, keyed (a rate)", start(dir.path(), &format!("{key}{}{both}", state(Some("lat-key"))), &url)),
    ];
    let client = crate::http_load::runtime("client", 1);
    let mut paths: Vec<String> = gateways.iter().map(|(_, g)| g.1.clone()).collect();
    paths.push(ok.url().trim_start_matches("http://").to_owned());
    let measured = interleaved(&client, &paths, port, n);
    let direct = measured[gateways.len()].0;
    let ping = measured[gateways.len() + 1].0;
    let latency = gateways.iter().zip(&measured).map(|((label, _), (p50, p99))| (*label, *p50, *p99)).collect();
    drop(gateways);

    // The storm: every request tries the primary first.
    let primary = rt.block_on(MockProvider::start_cycling("primary", vec![Reply::status(503)]));
    let storm_routes =
        format!("[breaker]\ncool_down_ms = 1000\nmax_cool_down_ms = 2000\n{}", routes(&primary.url(), &ok.url()));
    let mut storm = Vec::new();
    for (label, count, prefix) in
        [("one instance", 1, None), ("three isolated (memory)", 3, None), ("three sharing (redis)", 3, Some("storm"))]
    {
        let instances: Vec<Instance> =
            (0..count).map(|_| start(dir.path(), &format!("{}{storm_routes}", state(prefix)), &url)).collect();
        let before = primary.received();
        let requests = client.block_on(async {
            let mut senders = Vec::new();
            for i in &instances {
                senders.push((crate::http_load::connect(&i.1).await, i.1.clone()));
            }
            let (started, mut sent) = (Instant::now(), 0usize);
            while started.elapsed() < storm_for {
                let (sender, host) = &mut senders[sent % instances.len()];
                let status = crate::http_load::post(sender, host, "/v1/chat/completions", Client::OpenAi.body()).await;
                assert_eq!(status, 200, "the backup answers");
                sent += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            sent
        });
        storm.push((label, primary.received() - before, requests));
    }
    SharedStateFigures { latency, direct, ping, storm }
}

pub fn print(f: &SharedStateFigures, n: usize, storm_for: Duration) {
    println!("## Shared state: memory vs redis backend (the switchyard binary; redis-server on loopback; one run)");
    println!(
        "{n} sequential requests per gateway and {n} bare Redis PINGs, interleaved; PING round trip p50: {:.1} µs",
        micros(f.ping)
    );
    println!("| gateway | p50 | p99 | added p50 (over direct) |");
    println!("|---|---|---|---|");
    for (label, p50, p99) in &f.latency {
        println!(
            "| {label} | {:.1} µs | {:.1} µs | {:.1} µs |",
            micros(*p50),
            micros(*p99),
            micros(p50.saturating_sub(f.direct))
        );
    }
    let added = |i: usize| micros(f.latency[i].1.saturating_sub(f.direct));
    if f.latency.len() == 4 {
        println!(
            "redis vs memory, open: added p50 {:.2}x ({:+.1} µs); keyed: {:+.1} µs per request = {:.2} PING round trips",
            added(1) / added(0).max(0.1),
            added(1) - added(0),
            added(3) - added(2),
            (added(3) - added(2)) / micros(f.ping).max(0.1)
        );
    }
    println!();
    println!(
        "### Attempts at a failing provider ({} s of a 503 storm, a request every 10 ms spread over the instances; cool-down 1 s doubling to 2 s)",
        storm_for.as_secs()
    );
    println!("| instances | attempts at the failing primary | requests | vs one instance |");
    println!("|---|---|---|---|");
    let one = f.storm.first().map_or(1, |s| s.1.max(1));
    for (label, attempts, requests) in &f.storm {
        println!("| {label} | {attempts} | {requests} | {:.2}x |", *attempts as f64 / one as f64);
    }
    println!();
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
