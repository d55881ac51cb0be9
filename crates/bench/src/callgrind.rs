//! Instructions per request, exactly: the `switchyard` binary and nginx each
//! run under valgrind's callgrind (from Debian) in front of the same mock;
//! instrumentation is switched on only after startup and a warm-up, the
//! counters are zeroed, then one keep-alive client sends requests one after
//! another and the counters are dumped. Every thread of the process counts.
//! Unlike CPU time this does not move with the machine's load, so two
//! commits can be compared to the instruction.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchyard_testkit::{MockProvider, chat_body};

/// Instructions per request for each hop, JSON and SSE.
pub struct Instructions {
    pub requests: usize,
    /// (kind, gateway, nginx)
    pub rows: Vec<(&'static str, f64, f64)>,
}

pub fn available() -> bool {
    ["valgrind", "callgrind_control"].iter().all(|b| Command::new(b).arg("--version").output().is_ok())
}

fn control(pid: u32, what: &str) {
    let ok = Command::new("callgrind_control")
        .args([what, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "callgrind_control {what} {pid} failed");
}

/// The `totals:` of the newest dump in `dir` whose name starts `prefix`, once written.
fn dumped_total(dir: &Path, prefix: &str, before: usize) -> u64 {
    let started = Instant::now();
    loop {
        let mut dumps: Vec<_> = std::fs::read_dir(dir)
            .expect("dump dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix)))
            .collect();
        if dumps.len() > before {
            dumps.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
            let text = std::fs::read_to_string(dumps.last().expect("a dump")).unwrap_or_default();
            if let Some(total) = text.lines().find_map(|l| l.strip_prefix("totals:")) {
                return total.split_whitespace().next().and_then(|v| v.parse().ok()).expect("a total");
            }
        }
        assert!(started.elapsed() < Duration::from_secs(120), "callgrind wrote no dump");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn count_dumps(dir: &Path, prefix: &str) -> usize {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().starts_with(prefix)).count())
        .unwrap_or(0)
}

/// Instructions `pid` spends on `n` sequential requests to `addr`.
fn per_request(
    rt: &tokio::runtime::Runtime,
    pid: u32,
    addr: &str,
    body: &Bytes,
    n: usize,
    dir: &Path,
    prefix: &str,
) -> f64 {
    rt.block_on(async {
        let mut sender = crate::http_load::connect(addr).await;
        let path = "/v1/chat/completions";
        for _ in 0..200 {
            assert_eq!(crate::http_load::post(&mut sender, addr, path, body.clone()).await, 200);
        }
        control(pid, "--instr=on");
        // Instrumented code is retranslated: warm it again before counting.
        for _ in 0..50 {
            assert_eq!(crate::http_load::post(&mut sender, addr, path, body.clone()).await, 200);
        }
        control(pid, "--zero");
        for _ in 0..n {
            assert_eq!(crate::http_load::post(&mut sender, addr, path, body.clone()).await, 200);
        }
    });
    let before = count_dumps(dir, prefix);
    control(pid, "--dump");
    dumped_total(dir, prefix, before) as f64 / n as f64
}

fn valgrind_args(dir: &Path, name: &str) -> Vec<String> {
    vec![
        "valgrind".into(),
        "--tool=callgrind".into(),
        "--instr-atstart=no".into(),
        format!("--callgrind-out-file={}/{name}.out", dir.display()),
    ]
}

/// `keep`: a folder for callgrind's dumps (for `callgrind_annotate`), else a temporary one.
pub fn measure(n: usize, keep: Option<&Path>) -> Instructions {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mock = rt.block_on(MockProvider::start("mock"));
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = keep.unwrap_or(temp.path());
    std::fs::create_dir_all(dir).expect("dump dir");
    // Dumps of an earlier run would be taken for this run's.
    for e in std::fs::read_dir(dir).expect("dump dir").filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("gateway.out") || name.starts_with("nginx.out") {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let port = crate::soak::free_port();
    let config = crate::external::gateway_config(temp.path(), port, &mock.url());
    let wrapper = valgrind_args(dir, "gateway");
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let gateway = crate::external::start_gateway(&config, port, &wrapper, Duration::from_secs(600));
    let mock_addr = mock.url().trim_start_matches("http://").to_owned();
    let nginx = crate::nginx::Nginx::start_wrapped(&mock_addr, &valgrind_args(dir, "nginx"))
        .expect("nginx starts under valgrind");
    let gateway_addr = format!("127.0.0.1:{port}");
    let mut rows = Vec::new();
    for (kind, stream) in [("JSON", false), ("SSE", true)] {
        let body = Bytes::from(chat_body("gpt-4o-mini", stream));
        let g = per_request(&rt, gateway.0.id(), &gateway_addr, &body, n, dir, "gateway.out");
        let x = per_request(&rt, nginx.pid(), &nginx.addr, &body, n, dir, "nginx.out");
        // Instrumentation off again, so the next kind's warm-up runs at speed.
        control(gateway.0.id(), "--instr=off");
        control(nginx.pid(), "--instr=off");
        rows.push((kind, g, x));
    }
    drop(gateway);
    drop(nginx);
    Instructions { requests: n, rows }
}
