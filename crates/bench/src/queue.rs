//! What 10,000 requests waiting for a provider's quota cost in memory: a
//! gateway whose provider allows one request at a time (that one hangs),
//! 10,000 requests from 100 clients, each an HTTP/2 connection (h2c) with
//! 100 requests on it (10,000 connections would pass the machine's file
//! limit with both ends in one process); RSS read from `/proc` before they
//! come, while all wait, and after they were shed. Client and gateway
//! share the process, so the figure per request covers both ends — an
//! upper bound of the gateway's own share.

use std::time::{Duration, Instant};

use bytes::Bytes;
use switchyard_testkit::{ConfigBuilder, MockProvider, Reply, TestGateway, chat_body, get};

pub struct QueueFigures {
    pub waiting: u64,
    pub rss_before: u64,
    pub rss_waiting: u64,
    pub rss_after: u64,
}

/// Resident set size of this process, KiB.
fn rss_kib() -> u64 {
    crate::soak::rss_kib(std::process::id())
}

/// Where the 10,000 requests wait.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Sent straight to a mock provider that never answers: the baseline
    /// (the clients, their connections, a server holding open requests).
    Direct,
    /// Queued in the gateway for a provider that takes one at a time.
    Gateway,
}

/// Runs `phase` in a process of its own (so one phase's freed memory,
/// which the allocator keeps, does not flatter the other) and reads its figures.
pub fn measure(phase: Phase, n: usize) -> QueueFigures {
    let flag = match phase {
        Phase::Direct => "direct",
        Phase::Gateway => "gateway",
    };
    let out = std::process::Command::new(std::env::current_exe().expect("own path"))
        .args(["--queue-phase", flag, &n.to_string()])
        .output()
        .expect("run the phase");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("queue-phase "))
        .unwrap_or_else(|| panic!("the {flag} phase failed: {}{}", text, String::from_utf8_lossy(&out.stderr)));
    let n: Vec<u64> = line.split_whitespace().map(|v| v.parse().expect("a number")).collect();
    QueueFigures { waiting: n[0], rss_before: n[1], rss_waiting: n[2], rss_after: n[3] }
}

/// The body of [`measure`] in the phase's own process: prints its figures.
pub fn run_phase(phase: Phase, n: usize) {
    let q = phase_figures(phase, n);
    println!("queue-phase {} {} {} {}", q.waiting, q.rss_before, q.rss_waiting, q.rss_after);
}

fn phase_figures(phase: Phase, n: usize) -> QueueFigures {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let mock = MockProvider::start_cycling("bench", vec![Reply::Hang]).await;
        if phase == Phase::Direct {
            return direct(&mock, n).await;
        }
        let config = ConfigBuilder::new()
            .top(&format!("shutdown_grace_ms = 100\n[queue]\nmax_waiting = {}\nmax_wait_ms = 60000", n + 10))
            .access_log("off")
            .provider_with("bench", &mock.url(), &["max_concurrency = 1"])
            .route("m", None, 120_000, &["bench"]);
        let gw = TestGateway::start(&config).await;
        let url = gw.url();
        let queued = || async {
            let quotas = get(&gw.admin_url(), "/admin/quotas").await.json();
            quotas["queues"][0]["waiting"].as_u64().unwrap_or(0)
        };
        // The one request the provider holds (hangs), then a settled baseline.
        let body = Bytes::from(chat_body("m", false));
        let mut clients = Vec::with_capacity(n + 1);
        let holder = h2_client(&url).await;
        clients.push(tokio::spawn(one(holder, body.clone())));
        let mut connections = Vec::new();
        for _ in 0..n.div_ceil(PER_CONNECTION) {
            connections.push(h2_client(&url).await);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let rss_before = rss_kib();
        for i in 0..n {
            clients.push(tokio::spawn(one(connections[i / PER_CONNECTION].clone(), body.clone())));
        }
        let started = Instant::now();
        let mut waiting = queued().await;
        while waiting < n as u64 && started.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            waiting = queued().await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let rss_waiting = rss_kib();
        // Shutting the gateway down sheds them all.
        gw.shutdown().await;
        for c in clients {
            c.abort();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        QueueFigures { waiting, rss_before, rss_waiting, rss_after: rss_kib() }
    })
}

/// The baseline: the same clients straight to a provider that never answers.
async fn direct(mock: &MockProvider, n: usize) -> QueueFigures {
    let body = Bytes::from(chat_body("m", false));
    let mut connections = Vec::new();
    for _ in 0..n.div_ceil(PER_CONNECTION) {
        connections.push(h2_client(&mock.url()).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = rss_kib();
    let clients: Vec<_> =
        (0..n).map(|i| tokio::spawn(one(connections[i / PER_CONNECTION].clone(), body.clone()))).collect();
    let started = Instant::now();
    while mock.received() < n && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_waiting = rss_kib();
    for c in clients {
        c.abort();
    }
    QueueFigures { waiting: mock.received() as u64, rss_before, rss_waiting, rss_after: rss_kib() }
}

/// Requests sharing one HTTP/2 connection.
const PER_CONNECTION: usize = 100;

type H2 = hyper::client::conn::http2::SendRequest<http_body_util::Full<Bytes>>;

/// An HTTP/2 connection with prior knowledge (h2c) to `url`.
async fn h2_client(url: &str) -> H2 {
    let tcp = tokio::net::TcpStream::connect(url.trim_start_matches("http://")).await.expect("connect");
    let (send, conn) = hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .expect("h2c handshake");
    tokio::spawn(conn);
    send
}

/// One request, waiting as long as it takes.
async fn one(mut send: H2, body: Bytes) {
    let req = http::Request::post("http://gateway/v1/chat/completions")
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(body))
        .expect("request");
    if send.ready().await.is_ok() {
        let _ = send.send_request(req).await;
    }
}
