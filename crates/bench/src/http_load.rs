//! Latency and throughput of the same request sent directly to a mock
//! provider, through Switchyard, and through nginx (when installed); and of
//! the same question asked by an Anthropic client, which the gateway
//! translates for the OpenAI-wire mock and back.
//! The mock, the gateway and the load generator each get their own runtime.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use switchyard_testkit::{ConfigBuilder, MockProvider, TestGateway, chat_body, messages_body};

/// Which API the load generator speaks.
#[derive(Clone, Copy)]
pub(crate) enum Client {
    OpenAi,
    Anthropic,
}

impl Client {
    pub(crate) fn body(self) -> Bytes {
        Bytes::from(match self {
            Client::OpenAi => chat_body("gpt-4o-mini", false),
            Client::Anthropic => messages_body("gpt-4o-mini", false),
        })
    }
}

pub struct Row {
    pub name: &'static str,
    pub p50: Duration,
    pub p99: Duration,
    pub throughput: f64,
}

pub struct HttpFigures {
    pub rows: Vec<Row>,
    /// Throughput of [`LOGGED`], of [`QUIET`] and of a twin of [`QUIET`]
    /// (the same config: how far two identical gateways differ here, the
    /// measure's noise), measured in alternating rounds (median of each):
    /// the telemetry's cost without the drift of rows measured one after
    /// the other.
    pub telemetry_throughput: (f64, f64, f64),
}

/// A runtime whose threads are named, so profiles can tell the parts apart.
pub(crate) fn runtime(name: &str, threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("runtime")
}

pub(crate) async fn connect(addr: &str) -> http1::SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("bench connection failed: {e}");
        }
    });
    sender
}

async fn one(sender: &mut http1::SendRequest<Full<Bytes>>, host: &str, api: Client, body: &Bytes) {
    let path = match api {
        Client::OpenAi => "/v1/chat/completions",
        Client::Anthropic => "/v1/messages",
    };
    assert_eq!(post(sender, host, path, body.clone()).await, 200, "benchmarked path failed");
}

/// POSTs `body` to `path` (an Anthropic request carries `anthropic-version`)
/// and reads the whole answer; its status.
pub(crate) async fn post(
    sender: &mut http1::SendRequest<Full<Bytes>>,
    host: &str,
    path: &str,
    body: Bytes,
) -> http::StatusCode {
    sender.ready().await.expect("connection ready");
    let req = http::Request::post(path)
        .header("host", host)
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        // (Only the keyed gateway reads it; an open gateway and the mock ignore it.)
        .header("authorization", BENCH_KEY_HEADER)
        .body(Full::new(body))
        .expect("request");
    let response = sender.send_request(req).await.expect("response");
    let status = response.status();
    response.into_body().collect().await.expect("body");
    status
}

/// p50 and p99 of each path, measured interleaved — one request to each
/// path in turn, each over its own keep-alive connection — so the machine's
/// swings hit every path alike and the ratios between them hold.
pub(crate) fn latencies(
    client: &tokio::runtime::Runtime,
    paths: &[(&str, String, Client)],
    n: usize,
) -> Vec<(Duration, Duration)> {
    client.block_on(async {
        let mut senders = Vec::new();
        for (_, addr, api) in paths {
            let (sender, body) = (connect(addr).await, api.body());
            senders.push((sender, addr.as_str(), *api, body));
        }
        let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(n); paths.len()];
        for round in 0..200 + n {
            for (i, (sender, addr, api, body)) in senders.iter_mut().enumerate() {
                let s = Instant::now();
                one(sender, addr, *api, body).await;
                if round >= 200 {
                    samples[i].push(s.elapsed());
                }
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

/// Median throughput of each of `addrs` over `rounds` rounds, taken in turn
/// (a, b, c, a, b, c, ...), so a swing of the machine hits each alike.
pub(crate) fn alternating(
    client: &tokio::runtime::Runtime,
    addrs: &[String],
    rounds: usize,
    each: Duration,
) -> Vec<f64> {
    let mut at: Vec<Vec<f64>> = vec![Vec::new(); addrs.len()];
    for _ in 0..rounds {
        for (i, addr) in addrs.iter().enumerate() {
            at[i].push(throughput(client, addr, Client::OpenAi, 64, each));
        }
    }
    at.into_iter()
        .map(|mut v| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        })
        .collect()
}

pub(crate) fn throughput(
    client: &tokio::runtime::Runtime,
    addr: &str,
    api: Client,
    conns: usize,
    for_how_long: Duration,
) -> f64 {
    client.block_on(async {
        let body = api.body();
        let done = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for _ in 0..conns {
            let (done, stop, body, addr) = (done.clone(), stop.clone(), body.clone(), addr.to_owned());
            tasks.push(tokio::spawn(async move {
                let mut sender = connect(&addr).await;
                while !stop.load(Ordering::Relaxed) {
                    one(&mut sender, &addr, api, &body).await;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (start_count, started) = (done.load(Ordering::Relaxed), Instant::now());
        tokio::time::sleep(for_how_long).await;
        let counted = done.load(Ordering::Relaxed) - start_count;
        let secs = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            let _ = t.await;
        }
        counted as f64 / secs
    })
}

/// The gateway key every bench request carries.
const BENCH_KEY: &str = "sy-bench000000000000000000000000000000000000000000";
pub(crate) const BENCH_KEY_HEADER: &str = "Bearer sy-bench000000000000000000000000000000000000000000";
/// The gateway with a key and every per-key and provider limit on (none binding).
pub const KEYED: &str = "switchyard (gateway key + all limits on)";

/// The row of an Anthropic client through the `failover` gateway to the
/// OpenAI-wire mock: request and answer translated.
pub const TRANSLATED: &str = "switchyard, Anthropic client (translated)";
pub const LOGGED: &str = "switchyard (metrics on, access log to a file)";
/// The same gateway with metrics and the access log off: the row `LOGGED` is compared with.
pub const QUIET: &str = "switchyard (metrics off, access log off)";

/// Only the telemetry pair: metrics + access log on, and both off (`--telemetry`).
pub fn telemetry_cost(n: usize, for_how_long: Duration) -> HttpFigures {
    measure_paths(n, for_how_long, true)
}

pub fn measure(n: usize, for_how_long: Duration) -> HttpFigures {
    measure_paths(n, for_how_long, false)
}

fn measure_paths(n: usize, for_how_long: Duration, telemetry_only: bool) -> HttpFigures {
    let mock_rt = runtime("bench-mock", 1);
    let gateway_threads = std::env::var("BENCH_GATEWAY_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
    let gateway_rt = runtime("bench-gateway", gateway_threads);
    let client = runtime("bench-client", 1);
    let mock = mock_rt.block_on(MockProvider::start("bench"));
    let mock_addr = mock.url().trim_start_matches("http://").to_owned();

    let temp = tempfile::tempdir().expect("temp dir");
    let start = |name: &str, config: ConfigBuilder| {
        let dir = temp.path().join(name);
        let toml = config.build(&dir.join("policies"));
        std::fs::create_dir_all(&dir).expect("gateway dir");
        gateway_rt.block_on(TestGateway::start_in(&toml, &dir, |_| None))
    };
    let gateway_with = |name: &str, policy: &str, access: &str, metrics: bool| {
        let config = ConfigBuilder::new()
            .top(&format!("[metrics]\nenabled = {metrics}"))
            .access_log(access)
            .provider("bench", &mock.url())
            .route("gpt-4o-mini", Some(policy), 30_000, &["bench"]);
        start(name, config)
    };
    let gateway = gateway_with("gateway", "failover", "off", true);
    let resilient = gateway_with("resilient", "resilient", "off", true);
    // Metrics and the access log to a file (what a deployment would do),
    // next to the same gateway with both off.
    let logged = gateway_with("logged", "failover", "access.log", true);
    let quiet = gateway_with("quiet", "failover", "off", false);
    let twin = gateway_with("twin", "failover", "off", false);
    // A key with a request rate, a token rate, a concurrency limit, allowed
    // routes, a priority and daily token and spend budgets; a provider with
    // rpm, tpm, max_concurrency and prices: every check runs, none binds.
    let keyed = start(
        "keyed",
        ConfigBuilder::new()
            .top(&format!(
                "[[keys]]\nname = \"bench\"\nhash = {:?}\nrequests_per_minute = 100000000\ntokens_per_minute = 2000000000\n\
                 max_concurrency = 10000\nroutes = [\"gpt-4o-mini\"]\npriority = \"high\"\ndaily_tokens = 1000000000000\n\
                 daily_spend_usd = 1000000000.0",
                switchyard_access::hash_line(BENCH_KEY)
            ))
            .provider_with(
                "bench",
                &mock.url(),
                &[
                    "rpm = 100000000\ntpm = 2000000000\nmax_concurrency = 10000",
                    "models = { \"gpt-4o-mini\" = { input_usd_per_mtok = 0.15, output_usd_per_mtok = 0.6 } }",
                ],
            )
            .route("gpt-4o-mini", Some("failover"), 30_000, &["bench"])
            .access_log("off"),
    );
    let gateway_addr = gateway.addr.to_string();
    let nginx = crate::nginx::Nginx::start(&mock_addr);

    let mut paths: Vec<(&'static str, String, Client)> = vec![
        ("direct", mock_addr.clone(), Client::OpenAi),
        ("switchyard", gateway_addr.clone(), Client::OpenAi),
        (KEYED, keyed.addr.to_string(), Client::OpenAi),
        ("switchyard (resilient)", resilient.addr.to_string(), Client::OpenAi),
        (LOGGED, logged.addr.to_string(), Client::OpenAi),
        (QUIET, quiet.addr.to_string(), Client::OpenAi),
        (TRANSLATED, gateway_addr, Client::Anthropic),
    ];
    if telemetry_only {
        paths.retain(|(name, _, _)| *name == "direct" || *name == LOGGED || *name == QUIET);
    }
    if let Some(n) = nginx.as_ref().filter(|_| !telemetry_only) {
        paths.push(("nginx", n.addr.clone(), Client::OpenAi));
    }
    let mut rows: Vec<Row> = paths
        .iter()
        .zip(latencies(&client, &paths, n))
        .map(|((name, _, _), (p50, p99))| Row { name, p50, p99, throughput: 0.0 })
        .collect();
    for (row, (_, addr, api)) in rows.iter_mut().zip(&paths).filter(|_| !telemetry_only) {
        row.throughput = throughput(&client, addr, *api, 64, for_how_long);
    }
    let addrs = [logged.addr.to_string(), quiet.addr.to_string(), twin.addr.to_string()];
    let [on, off, twin_rps] = alternating(&client, &addrs, 5, for_how_long)[..] else { unreachable!("three paths") };
    let telemetry_throughput = (on, off, twin_rps);
    drop(nginx);
    drop(gateway);
    drop(resilient);
    drop(logged);
    drop(quiet);
    drop(twin);
    drop(keyed);
    HttpFigures { rows, telemetry_throughput }
}

/// A saturating load (64 connections, the 2 cores shared by the load, the
/// mock and the gateway) on a gateway deciding with `policy` for
/// `for_how_long`: (requests answered, decisions that failed — each one
/// answered by a fallback instead of the operator's policy).
pub fn saturate(policy: &str, for_how_long: Duration) -> (f64, u64) {
    let mock_rt = runtime("bench-mock", 1);
    let gateway_rt = runtime("bench-gateway", 2);
    let client = runtime("bench-client", 1);
    let mock = mock_rt.block_on(MockProvider::start("bench"));
    let temp = tempfile::tempdir().expect("temp dir");
    let config = ConfigBuilder::new()
        .access_log("off")
        .provider("bench", &mock.url())
        .route("gpt-4o-mini", Some(policy), 30_000, &["bench"])
        // The gateway's default, not the test harness's roomier one.
        .policy("decision_timeout_ms = 5");
    let toml = config.build(&temp.path().join("policies"));
    let gw = gateway_rt.block_on(TestGateway::start_in(&toml, temp.path(), |_| None));
    let rps = throughput(&client, &gw.addr.to_string(), Client::OpenAi, 64, for_how_long);
    let failed = gw.policies().failed_decisions();
    drop(gw);
    (rps * for_how_long.as_secs_f64(), failed)
}
