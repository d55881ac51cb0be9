//! Memory under churn: the `switchyard` binary as its own process, in front
//! of a loopback mock and a dead target (the `resilient` policy, response
//! cache on), driven at full load by 64 connections each asking a question
//! never asked before, so every answer is a new cache entry. The gateway's
//! RSS is read from `/proc` as it runs; after the warm-up it must stay flat
//! within 10 %. The same run with the cache off is the baseline.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchyard_testkit::{MockProvider, closed_port_url};

/// RSS of one soak run.
pub struct Soak {
    pub label: &'static str,
    pub requests: u64,
    /// Answers other than 200 (a 503 while the dead target's breaker is
    /// still closed and the retry budget spent, at the start).
    pub failed: u64,
    pub seconds: f64,
    /// (seconds since start, RSS in KiB)
    pub samples: Vec<(f64, u64)>,
    pub warm_up: f64,
}

impl Soak {
    /// RSS at the end of the warm-up, and the largest after it, KiB.
    pub fn after_warm_up(&self) -> (u64, u64) {
        let after: Vec<u64> = self.samples.iter().filter(|(t, _)| *t >= self.warm_up).map(|(_, kib)| *kib).collect();
        (after.first().copied().unwrap_or(0), after.iter().copied().max().unwrap_or(0))
    }

    /// Largest RSS after the warm-up over RSS at its end.
    pub fn growth(&self) -> f64 {
        let (start, max) = self.after_warm_up();
        max as f64 / start.max(1) as f64
    }
}

/// Resident memory of process `pid`, KiB.
pub(crate) fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// The part of it mapped from files (code, and compiled policies mapped
/// from the compile cache: page cache, shared and reclaimable), KiB.
pub(crate) fn rss_file_kib(pid: u32) -> u64 {
    status_kib(pid, "RssFile:")
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `switchyard` binary beside this one (`cargo build --release -p switchyard`).
pub fn binary() -> std::path::PathBuf {
    let me = std::env::current_exe().expect("own path");
    me.with_file_name("switchyard")
}

fn start_gateway(dir: &std::path::Path, mock: &str, ttl_ms: u64) -> (Gateway, String) {
    let port = free_port();
    let config = format!(
        r#"listen = "127.0.0.1:{port}"
[policy]
dir = "policies"
[cache]
ttl_ms = {ttl_ms}
[log]
access = "off"
[[providers]]
name = "dead"
api = "openai"
base_url = "{dead}"
[[providers]]
name = "live"
api = "openai"
base_url = "{mock}"
[[routes]]
model = "gpt-4o-mini"
policy = "resilient"
targets = [{{ provider = "dead", model = "gpt-4o-mini" }}, {{ provider = "live", model = "gpt-4o-mini" }}]
"#,
        dead = closed_port_url()
    );
    let file = dir.join(format!("soak-{ttl_ms}.toml"));
    std::fs::write(&file, config).expect("soak config");
    let child = Command::new(binary())
        .args(["serve", "--config"])
        .arg(&file)
        .env("SWITCHYARD_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the switchyard binary (cargo build --release -p switchyard)");
    let addr = format!("127.0.0.1:{port}");
    let started = Instant::now();
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "the gateway never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    (Gateway(child), addr)
}

/// One soak run of `for_how_long` with the cache's TTL `ttl_ms` (0: off).
pub fn run(label: &'static str, ttl_ms: u64, for_how_long: Duration) -> Soak {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let mock = rt.block_on(MockProvider::start("soak"));
    let dir = tempfile::tempdir().expect("temp dir");
    let (gateway, addr) = start_gateway(dir.path(), &mock.url(), ttl_ms);
    let pid = gateway.0.id();
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut samples = Vec::new();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for conn in 0..64u64 {
            let (done, failed, stop, addr) = (done.clone(), failed.clone(), stop.clone(), addr.clone());
            tasks.push(tokio::spawn(async move {
                let mut sender = crate::http_load::connect(&addr).await;
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let body = Bytes::from(format!(
                        r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"question {conn}-{n}: what is {n} times {conn}?"}}]}}"#
                    ));
                    let status = crate::http_load::post(&mut sender, &addr, "/v1/chat/completions", body).await;
                    done.fetch_add(1, Ordering::Relaxed);
                    if status != 200 {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        while started.elapsed() < for_how_long {
            samples.push((started.elapsed().as_secs_f64(), rss_kib(pid)));
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        samples.push((started.elapsed().as_secs_f64(), rss_kib(pid)));
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            let _ = t.await;
        }
    });
    Soak {
        label,
        requests: done.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        seconds: started.elapsed().as_secs_f64(),
        samples,
        warm_up: (for_how_long.as_secs_f64() * 0.2).max(10.0),
    }
}
