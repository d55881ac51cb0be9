//! What an idle gateway costs: the `switchyard` binary as its own process
//! (the default `failover` policy loaded, metrics and the access log on),
//! one request answered so every part has run once, then left alone; its
//! CPU time (user + system, from `/proc/PID/stat`) over the idle period.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use switchyard_testkit::MockProvider;

pub struct IdleFigures {
    pub seconds: f64,
    /// CPU seconds the process used while idle.
    pub cpu: f64,
}

pub fn measure(for_how_long: Duration) -> IdleFigures {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mock = rt.block_on(MockProvider::start("idle"));
    let dir = tempfile::tempdir().expect("temp dir");
    let port = crate::soak::free_port();
    let config = format!(
        "listen = \"127.0.0.1:{port}\"\n[log]\naccess = {:?}\n[[providers]]\nname = \"p\"\napi = \"openai\"\nbase_url = {:?}\n\
         [[routes]]\nmodel = \"m\"\ntargets = [{{ provider = \"p\", model = \"m\" }}]\n",
        dir.path().join("access.log").display().to_string(),
        mock.url()
    );
    let path = dir.path().join("switchyard.toml");
    std::fs::write(&path, config).expect("config");
    let mut child = Command::new(crate::soak::binary())
        .args(["serve", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start switchyard (cargo build --release -p switchyard)");
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "the gateway did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = rt.block_on(switchyard_testkit::post_chat(&url, "m")).status;
    assert_eq!(status, 200, "the gateway answers");
    // Let the startup work (compile cache writes, the first scrape of the folder) finish.
    std::thread::sleep(Duration::from_secs(3));
    let before = crate::external::cpu_seconds(child.id());
    let started = Instant::now();
    std::thread::sleep(for_how_long);
    let cpu = crate::external::cpu_seconds(child.id()) - before;
    let seconds = started.elapsed().as_secs_f64();
    let _ = child.kill();
    let _ = child.wait();
    IdleFigures { seconds, cpu }
}
