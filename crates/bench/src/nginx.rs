//! An nginx reverse proxy in front of the mock, as a baseline hop, when the
//! machine has nginx. Loopback only; one process (`master_process off`, one
//! worker's work), so its CPU time can be read; stopped on drop.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

pub struct Nginx {
    pub addr: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Nginx {
    pub fn start(upstream: &str) -> Option<Nginx> {
        Self::start_wrapped(upstream, &[])
    }

    /// Starts nginx under `wrapper` (e.g. valgrind; empty: directly).
    pub fn start_wrapped(upstream: &str, wrapper: &[String]) -> Option<Nginx> {
        Self::launch(upstream, wrapper, 4096, "")
    }

    /// For many open streams: room for `streams` clients and as many
    /// upstream connections; clients speak HTTP/2 with prior knowledge when
    /// `http2`.
    pub fn start_for_streams(upstream: &str, streams: usize, http2: bool) -> Option<Nginx> {
        let (clients, listen) = if http2 { (streams / 50, " http2") } else { (streams, "") };
        // Room to spare: short of room nginx closes connections that have
        // not yet sent their request ("reusing connections"). A process may
        // hold at most 20,000 files here.
        Self::launch(upstream, &[], ((streams + clients) * 2 + 64).min(19_800), listen)
    }

    fn launch(upstream: &str, wrapper: &[String], connections: usize, listen_options: &str) -> Option<Nginx> {
        let binary = ["/usr/sbin/nginx", "/usr/bin/nginx"].into_iter().find(|p| std::path::Path::new(p).exists())?;
        let dir = tempfile::tempdir().ok()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let conf = format!(
            "daemon off; master_process off; worker_processes 1; pid {dir}/nginx.pid; error_log {dir}/error.log warn;\n\
             worker_rlimit_nofile {files};\n\
             events {{ worker_connections {connections}; }}\n\
             http {{ access_log off; keepalive_requests 10000000; client_body_temp_path {dir}; proxy_temp_path {dir};\n\
               upstream mock {{ server {upstream}; keepalive 64; keepalive_requests 10000000; }}\n\
               server {{ listen 127.0.0.1:{port}{listen_options}; location / {{ proxy_pass http://mock; proxy_http_version 1.1;\n\
                 proxy_set_header Connection \"\"; proxy_buffering off; tcp_nodelay on; }} }} }}\n",
            dir = dir.path().display(),
            files = (connections + 64).min(20_000),
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).ok()?;
        let child = crate::external::wrapped(wrapper, binary)
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let addr = format!("127.0.0.1:{port}");
        let mut nginx = Nginx { addr, child, _dir: dir };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(if wrapper.is_empty() { 2 } else { 120 }) {
            if std::net::TcpStream::connect(&nginx.addr).is_ok() {
                return Some(nginx);
            }
            if let Ok(Some(_)) = nginx.child.try_wait() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The (single) nginx process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
