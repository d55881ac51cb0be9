//! Load from outside: `wrk` (its own process, one thread, 64 connections)
//! against the mock provider directly, an nginx hop and the `switchyard`
//! binary (default settings: the embedded `failover` policy, metrics, the
//! access log to stdout), all on loopback and all sharing the machine's
//! cores, as an operator's load test would. The paths take turns in short
//! rounds, so the machine's swings hit each alike. Besides requests per
//! second and latency, the CPU time (user + system, `/proc/PID/stat`) the
//! hop's process used, divided by the requests it served.
//!
//! `wrk` and nginx come from Debian; when missing they are installed with
//! `apt-get` (as root), or the run says what to install.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use switchyard_testkit::{MockProvider, chat_body};

/// What one path did under the load, summed over its rounds.
#[derive(Default, Clone)]
pub struct Load {
    pub requests: u64,
    pub seconds: f64,
    /// Answers that were not 2xx plus socket errors: must be 0.
    pub errors: u64,
    /// The median over rounds of each round's p50 and p99.
    pub p50: Duration,
    pub p99: Duration,
    /// CPU seconds of the hop's process (none for the direct path).
    pub cpu: Option<f64>,
}

impl Load {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds.max(1e-9)
    }

    /// CPU microseconds per request.
    pub fn cpu_per_request_us(&self) -> Option<f64> {
        self.cpu.map(|c| c * 1e6 / self.requests.max(1) as f64)
    }
}

/// The paths for one kind of request (JSON or SSE).
pub struct Paths {
    pub kind: &'static str,
    pub direct: Load,
    pub nginx: Load,
    pub gateway: Load,
    /// Another build of the gateway (`--against BINARY`), for an A/B in the same run.
    pub against: Option<Load>,
}

/// One `wrk` round's result.
struct Round {
    requests: u64,
    seconds: f64,
    errors: u64,
    p50: Duration,
    p99: Duration,
}

/// Installs `wrk` and nginx from Debian when missing; whether both are there.
pub fn ensure_tools() -> bool {
    let have =
        |bin: &str| ["/usr/bin/", "/usr/sbin/"].iter().any(|d| std::path::Path::new(&format!("{d}{bin}")).exists());
    if have("wrk") && have("nginx") {
        return true;
    }
    eprintln!("installing wrk and nginx-light (apt-get)…");
    let apt = |args: &[&str]| {
        let _ = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    };
    apt(&["update"]);
    apt(&["install", "-y", "--no-install-recommends", "wrk", "nginx-light"]);
    // The package starts a system nginx on port 80; it is not ours to keep.
    let _ = Command::new("pkill").args(["-x", "nginx"]).status();
    have("wrk") && have("nginx")
}

/// The `wrk` script: the request, and a summary line `parse` reads
/// (wrk's own histogram, microsecond resolution).
pub(crate) fn script(body: &str) -> String {
    format!(
        "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = [[{body}]]\n\
         done = function(s, latency, r)\n  local e = s.errors\n  \
         io.write(string.format(\"SWITCHYARD %d %d %d %d %d\\n\", s.requests, s.duration, \
         e.status + e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99)))\nend\n"
    )
}

fn run_wrk(script: &std::path::Path, url: &str, connections: usize, secs: u64) -> Round {
    let out = Command::new("wrk")
        .args(["-t1", &format!("-c{connections}"), &format!("-d{secs}s"), "--timeout", "10s", "-s"])
        .arg(script)
        .arg(url)
        .output()
        .expect("run wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find_map(|l| l.strip_prefix("SWITCHYARD ")).unwrap_or_else(|| panic!("wrk said: {text}"));
    let n: Vec<u64> = line.split_whitespace().map(|v| v.parse().expect("a number")).collect();
    Round {
        requests: n[0],
        seconds: n[1] as f64 / 1e6,
        errors: n[2],
        p50: Duration::from_micros(n[3]),
        p99: Duration::from_micros(n[4]),
    }
}

/// Requests `wrk` completed against `url` in `secs`, and its errors.
pub(crate) fn run_wrk_load(script: &std::path::Path, url: &str, connections: usize, secs: u64) -> (u64, u64) {
    let r = run_wrk(script, url, connections, secs);
    (r.requests, r.errors)
}

/// utime + stime of `pid`, seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let (user, system) = cpu_split(pid);
    user + system
}

/// (utime, stime) of `pid`, seconds.
pub fn cpu_split(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) end at ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after ')'.
    let hz = 100.0; // USER_HZ on Linux
    (ticks(11) / hz, ticks(12) / hz)
}

/// A process we started; killed on drop.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(port: u16, within: Duration) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < within, "nothing listens on {port} after {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The gateway's config for these runs: one route to the mock, everything else default.
pub fn gateway_config(dir: &std::path::Path, port: u16, mock: &str) -> std::path::PathBuf {
    let config = format!(
        "listen = \"127.0.0.1:{port}\"\n[[providers]]\nname = \"mock\"\napi = \"openai\"\nbase_url = {mock:?}\n\
         [[routes]]\nmodel = \"gpt-4o-mini\"\ntargets = [{{ provider = \"mock\", model = \"gpt-4o-mini\" }}]\n"
    );
    let path = dir.join("switchyard.toml");
    std::fs::write(&path, config).expect("config");
    path
}

/// The runtime the mock provider runs on (two threads, named for profiles).
pub(crate) fn mock_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("mock")
        .enable_all()
        .build()
        .expect("runtime")
}

/// `binary`, run under `wrapper` (e.g. valgrind) when there is one.
pub(crate) fn wrapped(wrapper: &[impl AsRef<std::ffi::OsStr>], binary: impl AsRef<std::ffi::OsStr>) -> Command {
    match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(binary);
            c
        }
        None => Command::new(binary),
    }
}

/// Starts `switchyard serve` (optionally under `wrapper`, e.g. valgrind) on `port`.
pub fn start_gateway(config: &std::path::Path, port: u16, wrapper: &[&str], within: Duration) -> Process {
    start_binary(&crate::soak::binary(), config, port, wrapper, within)
}

/// Starts `binary serve` (a build of switchyard) like [`start_gateway`].
fn start_binary(
    binary: &std::path::Path,
    config: &std::path::Path,
    port: u16,
    wrapper: &[&str],
    within: Duration,
) -> Process {
    let child = wrapped(wrapper, binary)
        .args(["serve", "--config"])
        .arg(config)
        .env_remove("SWITCHYARD_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start switchyard (cargo build --release -p switchyard)");
    let process = Process(child);
    wait_for_port(port, within);
    process
}

/// For profiling: the gateway under `wrk` (JSON or SSE) for `secs`, its
/// PID printed first so `perf record -p` or `strace -c -p` can attach.
pub fn hold(stream: bool, secs: u64) {
    let rt = mock_runtime();
    let mock = rt.block_on(MockProvider::start("mock"));
    let dir = tempfile::tempdir().expect("temp dir");
    let port = crate::soak::free_port();
    let gateway = start_gateway(&gateway_config(dir.path(), port, &mock.url()), port, &[], Duration::from_secs(60));
    let mock_addr = mock.url().trim_start_matches("http://").to_owned();
    let nginx = crate::nginx::Nginx::start(&mock_addr).expect("nginx starts");
    let script_path = dir.path().join("hold.lua");
    std::fs::write(&script_path, script(&chat_body("gpt-4o-mini", stream))).expect("script");
    for (name, addr, pid) in
        [("switchyard", format!("127.0.0.1:{port}"), gateway.0.id()), ("nginx", nginx.addr.clone(), nginx.pid())]
    {
        let url = format!("http://{addr}/v1/chat/completions");
        run_wrk(&script_path, &url, 64, 1);
        println!("{name} pid {pid}");
        let before = cpu_split(pid);
        let r = run_wrk(&script_path, &url, 64, secs);
        let after = cpu_split(pid);
        let per = |s: f64| s * 1e6 / r.requests.max(1) as f64;
        println!(
            "{name}: {} requests in {:.1} s ({:.0}/s, {} errors), p50 {:?}, CPU per request: user {:.1} µs + system {:.1} µs",
            r.requests,
            r.seconds,
            r.requests as f64 / r.seconds,
            r.errors,
            r.p50,
            per(after.0 - before.0),
            per(after.1 - before.1)
        );
    }
}

/// JSON and SSE through each path, `rounds` rounds of `secs` seconds each;
/// `against` adds another build of the gateway as a fourth path.
pub fn measure(connections: usize, rounds: usize, secs: u64, against: Option<&std::path::Path>) -> Vec<Paths> {
    let rt = mock_runtime();
    let mock = rt.block_on(MockProvider::start("mock"));
    let mock_addr = mock.url().trim_start_matches("http://").to_owned();
    let nginx = crate::nginx::Nginx::start(&mock_addr).expect("nginx starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let port = crate::soak::free_port();
    let gateway = start_gateway(&gateway_config(dir.path(), port, &mock.url()), port, &[], Duration::from_secs(60));
    let gateway_url = format!("http://127.0.0.1:{port}");
    let other_dir = tempfile::tempdir().expect("temp dir");
    let other = against.map(|binary| {
        let port = crate::soak::free_port();
        let config = gateway_config(other_dir.path(), port, &mock.url());
        (start_binary(binary, &config, port, &[], Duration::from_secs(60)), format!("http://127.0.0.1:{port}"))
    });
    let nginx_url = format!("http://{}", nginx.addr);
    let mock_url = mock.url();

    let mut table = Vec::new();
    for (kind, stream) in [("JSON", false), ("SSE", true)] {
        let script_path = dir.path().join(format!("{kind}.lua"));
        std::fs::write(&script_path, script(&chat_body("gpt-4o-mini", stream))).expect("script");
        let mut paths: Vec<(&str, Option<u32>)> =
            vec![(&mock_url, None), (&nginx_url, Some(nginx.pid())), (&gateway_url, Some(gateway.0.id()))];
        if let Some((process, url)) = &other {
            paths.push((url, Some(process.0.id())));
        }
        // Warm each path (connections, pools, the policy's instances).
        for (url, _) in &paths {
            run_wrk(&script_path, &format!("{url}/v1/chat/completions"), connections, 1);
        }
        let mut rounds_of: Vec<Vec<Round>> = paths.iter().map(|_| Vec::new()).collect();
        let mut cpu = vec![0.0f64; paths.len()];
        for _ in 0..rounds {
            for (i, (url, pid)) in paths.iter().enumerate() {
                let before = pid.map(cpu_seconds);
                rounds_of[i].push(run_wrk(&script_path, &format!("{url}/v1/chat/completions"), connections, secs));
                if let (Some(pid), Some(before)) = (pid, before) {
                    cpu[i] += cpu_seconds(*pid) - before;
                }
            }
        }
        let sum = |i: usize| {
            let r = &rounds_of[i];
            let median = |f: fn(&Round) -> Duration| {
                let mut v: Vec<Duration> = r.iter().map(f).collect();
                v.sort();
                v[v.len() / 2]
            };
            Load {
                requests: r.iter().map(|x| x.requests).sum(),
                seconds: r.iter().map(|x| x.seconds).sum(),
                errors: r.iter().map(|x| x.errors).sum(),
                p50: median(|x| x.p50),
                p99: median(|x| x.p99),
                cpu: paths[i].1.map(|_| cpu[i]),
            }
        };
        let against = (paths.len() > 3).then(|| sum(3));
        table.push(Paths { kind, direct: sum(0), nginx: sum(1), gateway: sum(2), against });
    }
    drop(gateway);
    drop(other);
    table
}
