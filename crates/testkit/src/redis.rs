//! A real `redis-server` (Debian's package; `scripts/test.sh` installs it)
//! on a loopback port with its data in a temp dir, for the shared-state
//! tests and the bench. Never a Redis mock.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One `redis-server` process; killed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    /// Serving TLS only (`rediss://`), with a certificate this CA signed.
    tls: bool,
}

impl RedisServer {
    /// Starts one on a free port; returns once it accepts connections.
    pub async fn start() -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut redis = RedisServer { child: None, port, dir: tempfile::tempdir().expect("temp dir"), tls: false };
        redis.restart().await;
        redis
    }

    /// One that speaks TLS only, its certificate (for `localhost` and
    /// 127.0.0.1) signed by a CA made for it: [`RedisServer::ca_pem`].
    pub async fn start_tls() -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().expect("temp dir");
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA");
        let key = rcgen::KeyPair::generate().expect("key");
        let params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).expect("params");
        let cert = params.signed_by(&key, &ca).expect("server certificate");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("ca");
        std::fs::write(dir.path().join("server.pem"), cert.pem()).expect("cert");
        std::fs::write(dir.path().join("server.key"), key.serialize_pem()).expect("key");
        let mut redis = RedisServer { child: None, port, dir, tls: true };
        redis.restart().await;
        redis
    }

    /// The CA that signed a TLS server's certificate (PEM).
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("ca.pem")).expect("a TLS server's CA")
    }

    /// `redis://127.0.0.1:PORT/0` (`rediss://localhost:PORT/0` for TLS).
    pub fn url(&self) -> String {
        match self.tls {
            false => format!("redis://127.0.0.1:{}/0", self.port),
            true => format!("rediss://localhost:{}/0", self.port),
        }
    }

    /// `kill -9`, as a crash would (its data is gone: it is not saved).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (empty).
    pub async fn restart(&mut self) {
        let mut command = Command::new("redis-server");
        command.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        match self.tls {
            false => command.arg("--port").arg(self.port.to_string()),
            true => command
                .args(["--port", "0", "--tls-auth-clients", "no", "--tls-port"])
                .arg(self.port.to_string())
                .arg("--tls-cert-file")
                .arg(self.dir.path().join("server.pem"))
                .arg("--tls-key-file")
                .arg(self.dir.path().join("server.key")),
        };
        let child = command
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs: install Debian's `redis-server` package (./scripts/test.sh does)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            let exited = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            assert!(exited.is_none(), "redis-server exited: {exited:?}");
            assert!(Instant::now() < deadline, "redis-server never listened on {}", self.port);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
