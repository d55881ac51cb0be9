//! Many slow streams held at once: N clients each ask for a stream that the
//! mock sends a word at a time, one word every 500 ms for 20 s. The clients
//! open their streams at 2,000 a second and hold them; once all N have their
//! first byte, the hop's RSS is read from `/proc` (largest of reads over
//! 2 s), and its CPU time over those 2 s (each stream gets two words a
//! second: 10,000 streams are 20,000 events a second to relay).
//! What the open streams cost is that, less the RSS the same process had
//! just before (warmed by one stream), over N. The time to first byte is
//! the client's: from starting to connect (HTTP/1.1) or sending (HTTP/2)
//! to the first body byte.
//!
//! Each level runs on a fresh `switchyard` binary (default settings) and a
//! fresh nginx (one process, `proxy_buffering off`) in front of the same
//! mock, one after the other; the clients run in this process on their own
//! thread, the mock on two others.
//!
//! A process here may hold at most 20,000 open files (a hard limit that not
//! even root may raise in this container), and a proxied HTTP/1.1 stream
//! holds two sockets in the hop and two in this process (client and mock).
//! So HTTP/1.1 clients (one connection per stream) go to 9,000 streams; the
//! 10,000 level has its clients speak HTTP/2 with prior knowledge, 100
//! streams per connection (the hop's upstream side is still one HTTP/1.1
//! connection per stream, for both).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use switchyard_testkit::{MockProvider, Reply, StreamEnd, chat_body};

/// How the clients reach the hop.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Clients {
    /// One HTTP/1.1 connection per stream.
    Http1,
    /// HTTP/2 with prior knowledge, this many streams per connection.
    Http2(usize),
}

impl Clients {
    pub fn describe(self) -> String {
        match self {
            Clients::Http1 => "HTTP/1.1, a connection each".into(),
            Clients::Http2(per) => format!("HTTP/2, {per} per connection"),
        }
    }
}

/// One hop at one level.
#[derive(Clone, Default)]
pub struct Held {
    /// Streams that got their first byte (of those asked for).
    pub open: usize,
    /// Streams that failed (connect, status, or an early end).
    pub failed: usize,
    /// Why, with how many each: "status 502 ×18".
    pub why_failed: String,
    pub ttfb_p50: Duration,
    pub ttfb_p99: Duration,
    /// RSS just before the streams opened, and with all of them open, KiB.
    pub rss_before_kib: u64,
    pub rss_open_kib: u64,
    /// The hop's CPU while it held them all, share of one core.
    pub cpu_holding: f64,
}

impl Held {
    /// RSS per open stream, KiB.
    pub fn per_stream_kib(&self) -> f64 {
        self.rss_open_kib.saturating_sub(self.rss_before_kib) as f64 / self.open.max(1) as f64
    }
}

/// One level: the gateway and nginx, each holding `streams`.
pub struct Level {
    pub streams: usize,
    pub clients: Clients,
    pub gateway: Held,
    pub nginx: Option<Held>,
}

const GAP: Duration = Duration::from_millis(500);
const WORDS: usize = 40;
const OPEN_PER_SECOND: f64 = 2_000.0;

/// Runs the levels one after another.
pub fn measure(levels: &[(usize, Clients)]) -> Vec<Level> {
    let rt = crate::external::mock_runtime();
    let pieces: Vec<String> = (0..WORDS).map(|i| format!("word{i} ")).collect();
    let mock = rt
        .block_on(MockProvider::start_cycling("mock", vec![Reply::Stream { pieces, gap: GAP, end: StreamEnd::Done }]));
    let mock_addr = mock.url().trim_start_matches("http://").to_owned();
    let mut out = Vec::new();
    for &(streams, clients) in levels {
        let gateway = {
            let dir = tempfile::tempdir().expect("temp dir");
            let port = crate::soak::free_port();
            let config = crate::external::gateway_config(dir.path(), port, &mock.url());
            let process = crate::external::start_gateway(&config, port, &[], Duration::from_secs(60));
            hold(&format!("127.0.0.1:{port}"), process.0.id(), streams, clients)
        };
        let nginx = crate::nginx::Nginx::start_for_streams(&mock_addr, streams, matches!(clients, Clients::Http2(_)))
            .map(|nginx| hold(&nginx.addr, nginx.pid(), streams, clients));
        out.push(Level { streams, clients, gateway, nginx });
    }
    out
}

/// Opens `streams` streams through the hop at `addr` (process `pid`) and
/// reads what holding them costs.
fn hold(addr: &str, pid: u32, streams: usize, clients: Clients) -> Held {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("client runtime");
    let body = Bytes::from(chat_body("gpt-4o-mini", true));
    // Warm the hop with one stream, then read where it stands.
    let warm = rt.block_on(async {
        let firsts = Arc::new(Firsts::default());
        let opener = tokio::spawn(open_all(addr.to_owned(), 1, clients, body.clone(), firsts.clone()));
        let started = Instant::now();
        while firsts.open.load(Ordering::Relaxed) + firsts.failed.load(Ordering::Relaxed) == 0
            && started.elapsed() < Duration::from_secs(10)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        opener.abort();
        firsts.open.load(Ordering::Relaxed)
    });
    assert_eq!(warm, 1, "a stream through {addr} works");
    std::thread::sleep(Duration::from_millis(300));
    let rss_before_kib = crate::soak::rss_kib(pid);
    let firsts = Arc::new(Firsts::default());
    let started = Instant::now();
    let mut held = rt.block_on(async {
        let opener = tokio::spawn(open_all(addr.to_owned(), streams, clients, body, firsts.clone()));
        // Everyone has a first byte (or failed); give the hop a moment, then read it.
        let deadline = Duration::from_secs_f64(streams as f64 / OPEN_PER_SECOND) + Duration::from_secs(10);
        while firsts.open.load(Ordering::Relaxed) + firsts.failed.load(Ordering::Relaxed) < streams
            && started.elapsed() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (cpu_before, since) = (crate::external::cpu_seconds(pid), Instant::now());
        let mut rss_open_kib = 0;
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            rss_open_kib = rss_open_kib.max(crate::soak::rss_kib(pid));
        }
        let cpu_holding = (crate::external::cpu_seconds(pid) - cpu_before) / since.elapsed().as_secs_f64();
        opener.abort();
        Held {
            open: firsts.open.load(Ordering::Relaxed),
            failed: firsts.failed.load(Ordering::Relaxed),
            why_failed: firsts.why_failed(),
            rss_before_kib,
            rss_open_kib,
            cpu_holding,
            ..Held::default()
        }
    });
    // Dropping the runtime closes every client connection.
    drop(rt);
    let mut ttfb = firsts.ttfb.lock().expect("ttfb").clone();
    ttfb.sort_unstable();
    let at = |q: f64| ttfb.get(((ttfb.len() as f64 * q) as usize).min(ttfb.len().saturating_sub(1))).copied();
    held.ttfb_p50 = at(0.50).map(Duration::from_micros).unwrap_or_default();
    held.ttfb_p99 = at(0.99).map(Duration::from_micros).unwrap_or_default();
    let unanswered = streams.saturating_sub(held.open + held.failed);
    if unanswered > 0 {
        held.failed += unanswered;
        held.why_failed = [held.why_failed.as_str(), &format!("no first byte in time ×{unanswered}")]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
    }
    held
}

/// What the clients saw: first bytes (µs after starting) and failures.
#[derive(Default)]
struct Firsts {
    open: AtomicUsize,
    failed: AtomicUsize,
    ttfb: std::sync::Mutex<Vec<u64>>,
    why: std::sync::Mutex<std::collections::BTreeMap<String, usize>>,
}

impl Firsts {
    fn fail(&self, why: impl std::fmt::Display) -> usize {
        *self.why.lock().expect("why").entry(why.to_string()).or_default() += 1;
        self.failed.fetch_add(1, Ordering::Relaxed)
    }

    fn why_failed(&self) -> String {
        let why = self.why.lock().expect("why");
        why.iter().map(|(why, n)| format!("{why} ×{n}")).collect::<Vec<_>>().join("; ")
    }

    fn first_byte(&self, since: Instant) {
        let us = since.elapsed().as_micros() as u64;
        self.ttfb.lock().expect("ttfb").push(us);
        self.open.fetch_add(1, Ordering::Relaxed);
    }
}

/// Opens `streams` streams at `OPEN_PER_SECOND` and holds them until this
/// task is aborted.
async fn open_all(addr: String, streams: usize, clients: Clients, body: Bytes, firsts: Arc<Firsts>) {
    let gap = Duration::from_secs_f64(1.0 / OPEN_PER_SECOND);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut h2: Option<hyper::client::conn::http2::SendRequest<Full<Bytes>>> = None;
    for i in 0..streams {
        // Paced by the clock, not by sleeps of one gap each (too coarse).
        let due = started + gap * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let (addr, body, firsts) = (addr.clone(), body.clone(), firsts.clone());
        match clients {
            Clients::Http1 => {
                tasks.spawn(async move {
                    let since = Instant::now();
                    let tcp = match tokio::net::TcpStream::connect(&addr).await {
                        Ok(tcp) => tcp,
                        Err(e) => return firsts.fail(format!("connect: {e}")),
                    };
                    let _ = tcp.set_nodelay(true);
                    let (send, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await {
                        Ok(handshake) => handshake,
                        Err(e) => return firsts.fail(format!("handshake: {e}")),
                    };
                    tokio::spawn(conn);
                    read_stream(send, true, body, since, &firsts).await
                });
            }
            Clients::Http2(per) => {
                if i % per == 0 || h2.is_none() {
                    let tcp = match tokio::net::TcpStream::connect(&addr).await {
                        Ok(tcp) => tcp,
                        Err(e) => {
                            firsts.fail(format!("connect: {e}"));
                            continue;
                        }
                    };
                    let _ = tcp.set_nodelay(true);
                    let handshake = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                        .handshake(TokioIo::new(tcp))
                        .await;
                    let (send, conn) = match handshake {
                        Ok(handshake) => handshake,
                        Err(e) => {
                            firsts.fail(format!("handshake: {e}"));
                            continue;
                        }
                    };
                    tokio::spawn(conn);
                    h2 = Some(send);
                }
                let send = h2.clone().expect("an HTTP/2 connection");
                tasks.spawn(async move { read_stream(send, false, body, Instant::now(), &firsts).await });
            }
        }
    }
    // Hold every stream (the set owns them) until this task is aborted.
    std::future::pending::<()>().await;
    drop(tasks);
}

type Asked = http::Request<Full<Bytes>>;
type Answer = hyper::Result<http::Response<hyper::body::Incoming>>;

/// Anything that sends one request (HTTP/1.1 or HTTP/2).
trait Sender {
    fn send(&mut self, req: Asked) -> impl Future<Output = Answer> + Send;
}

impl Sender for hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    fn send(&mut self, req: Asked) -> impl Future<Output = Answer> + Send {
        self.send_request(req)
    }
}

impl Sender for hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    fn send(&mut self, req: Asked) -> impl Future<Output = Answer> + Send {
        self.send_request(req)
    }
}

/// Sends the stream request (with a `Host` header for HTTP/1.1); notes the
/// first body byte; reads on, so the hop is never held up by a full window.
async fn read_stream(mut send: impl Sender, host: bool, body: Bytes, since: Instant, firsts: &Firsts) -> usize {
    let mut req = http::Request::post("http://hop/v1/chat/completions").header("content-type", "application/json");
    if host {
        req = req.header("host", "hop");
    }
    let req = req.body(Full::new(body)).expect("request");
    let response = match send.send(req).await {
        Ok(response) => response,
        Err(e) => return firsts.fail(format!("request: {e}")),
    };
    if !response.status().is_success() {
        return firsts.fail(format!("status {}", response.status().as_u16()));
    }
    let mut body = response.into_body();
    let mut first = true;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) if first => return firsts.fail(format!("body: {e}")),
            Err(_) => return 0,
        };
        if first && frame.data_ref().is_some_and(|d| !d.is_empty()) {
            first = false;
            firsts.first_byte(since);
        }
    }
    if first { firsts.fail("ended before a byte") } else { 0 }
}

/// The levels the issue asks for, within this machine's open-file limit.
pub const LEVELS: [(usize, Clients); 5] = [
    (100, Clients::Http1),
    (1_000, Clients::Http1),
    (9_000, Clients::Http1),
    (1_000, Clients::Http2(100)),
    (10_000, Clients::Http2(100)),
];

/// Prints the table.
pub fn print(levels: &[Level]) {
    println!(
        "## Many open streams (the switchyard binary and nginx, one at a time, in front of the same mock; \
         a word every {} ms; opened at {OPEN_PER_SECOND:.0}/s; RSS from /proc)",
        GAP.as_millis()
    );
    println!(
        "| streams | clients | hop | open (failed) | TTFB p50 | TTFB p99 | RSS before → all open | RSS per stream | CPU holding them |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for level in levels {
        let row = |hop: &str, held: &Held| {
            println!(
                "| {} | {} | {hop} | {} ({}) | {:.1} ms | {:.1} ms | {:.1} → {:.1} MiB | {:.1} KiB | {:.0} % of a core |",
                level.streams,
                level.clients.describe(),
                held.open,
                held.failed,
                held.ttfb_p50.as_secs_f64() * 1e3,
                held.ttfb_p99.as_secs_f64() * 1e3,
                held.rss_before_kib as f64 / 1024.0,
                held.rss_open_kib as f64 / 1024.0,
                held.per_stream_kib(),
                held.cpu_holding * 100.0
            );
        };
        row("switchyard", &level.gateway);
        match &level.nginx {
            Some(nginx) => row("nginx", nginx),
            None => println!("| {} | | nginx | (did not start) | | | | | |", level.streams),
        }
    }
    println!();
    for level in levels {
        let hops = [("switchyard", Some(&level.gateway)), ("nginx", level.nginx.as_ref())];
        for (hop, held) in hops.into_iter().filter_map(|(hop, held)| Some((hop, held?))) {
            if held.failed > 0 {
                println!("- failed, {hop} at {} ({}): {}", level.streams, level.clients.describe(), held.why_failed);
            }
        }
    }
    println!();
}
