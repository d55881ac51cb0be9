//! `switchyard serve` and its signals, as an operator sends them: SIGTERM
//! drains (open streams finish within the grace period, what is left then
//! ends with a clean error event), SIGHUP reloads the config file.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use switchyard_testkit::{MockProvider, Reply, StreamEnd, post_chat, post_chat_stream};

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Served {
    child: Child,
    url: String,
    config: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// Everything the process wrote (access log on stdout, its log on
    /// stderr), checked for secrets.
    fn output_without_secrets(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self._dir.path().join(name)).unwrap_or_default();
        let all = format!("{}{}", read("stdout"), read("stderr"));
        assert!(!all.contains(KEY) && !all.contains(ADMIN_TOKEN), "a secret in the gateway's output:\n{all}");
        all
    }
}

/// The provider key and admin token `serve` is given; neither may show in its output.
const KEY: &str = "sk-signals-secret-5e1b";
const ADMIN_TOKEN: &str = "admin-signals-secret-77c0";

fn config_text(port: u16, provider_url: &str, grace_ms: u64, routes: &[&str]) -> String {
    let admin = free_port();
    let mut text = format!(
        "listen = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin}\"\nshutdown_grace_ms = {grace_ms}\n\
         [admin]\ntoken_env = \"SIGNALS_ADMIN_TOKEN\"\n[log]\naccess = \"stdout\"\n\
         [[providers]]\nname = \"slow\"\napi = \"openai\"\nbase_url = \"{provider_url}\"\napi_key_env = \"SIGNALS_KEY\"\n"
    );
    for route in routes {
        text.push_str(&format!(
            "[[routes]]\nmodel = \"{route}\"\ntargets = [{{ provider = \"slow\", model = \"{route}\" }}]\n"
        ));
    }
    text
}

/// `switchyard serve` on a fresh port, answering once it is up.
async fn serve(provider_url: &str, grace_ms: u64, routes: &[&str]) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("switchyard.toml");
    std::fs::write(&config, config_text(port, provider_url, grace_ms, routes)).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("SIGNALS_KEY", KEY)
        .env("SIGNALS_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("SWITCHYARD_LOG", "debug")
        .stdout(std::fs::File::create(dir.path().join("stdout")).unwrap())
        .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let stderr = dir.path().join("stderr");
    let mut served = Served { child, url: format!("http://127.0.0.1:{port}"), config, _dir: dir };
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        let said = || std::fs::read_to_string(&stderr).unwrap_or_default();
        assert!(served.child.try_wait().unwrap().is_none(), "switchyard serve exited: {}", said());
        assert!(Instant::now() < deadline, "switchyard serve never listened: {}", said());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    served
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill").arg(format!("-{name}")).arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
}

/// Waits for the process to exit; its exit status.
async fn exit_of(served: &mut Served, patience: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(status) = served.child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the gateway did not exit within {patience:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const WORDS: [&str; 12] =
    ["one ", "two ", "three ", "four ", "five ", "six ", "seven ", "eight ", "nine ", "ten ", "eleven ", "twelve"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_twenty_live_streams_lets_every_one_finish_then_exits() {
    // 12 words 150 ms apart: each stream lasts ~1.8 s.
    let slow =
        MockProvider::start_cycling("slow", vec![Reply::stream(&WORDS, Duration::from_millis(150), StreamEnd::Done)])
            .await;
    let mut served = serve(&slow.url(), 30_000, &["m"]).await;
    let mut streams = Vec::new();
    for _ in 0..20 {
        let mut stream = post_chat_stream(&served.url, "m").await;
        assert_eq!(stream.status, 200);
        stream.next_chunk(Duration::from_secs(10)).await.expect("a first chunk");
        streams.push(stream);
    }
    signal(&served.child, "TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let port = served.url.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err(),
        "draining: new connections are refused"
    );
    let readers: Vec<_> = streams.into_iter().map(|s| tokio::spawn(s.rest(Duration::from_secs(10)))).collect();
    for (i, reader) in readers.into_iter().enumerate() {
        let text = reader.await.unwrap();
        assert!(text.contains("twelve") && text.trim_end().ends_with("data: [DONE]"), "stream {i} was cut:\n{text}");
        assert!(!text.contains("shutting_down"), "stream {i}");
    }
    let status = exit_of(&mut served, Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}");
    let output = served.output_without_secrets();
    assert_eq!(output.matches("\"stream_end\":\"complete\"").count(), 20, "20 access log lines:\n{output}");
    assert!(slow.seen().iter().all(|s| s.authorization.as_deref() == Some(&format!("Bearer {KEY}"))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_still_open_when_the_grace_period_ends_get_a_clean_error_event() {
    // 12 words 1 s apart: longer than a 500 ms grace period.
    let slow =
        MockProvider::start_cycling("slow", vec![Reply::stream(&WORDS, Duration::from_secs(1), StreamEnd::Done)]).await;
    let mut served = serve(&slow.url(), 500, &["m"]).await;
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut stream = post_chat_stream(&served.url, "m").await;
        stream.next_chunk(Duration::from_secs(10)).await.expect("a first chunk");
        streams.push(stream);
    }
    let sent = Instant::now();
    signal(&served.child, "TERM");
    for stream in streams {
        let text = stream.rest(Duration::from_secs(10)).await;
        assert!(text.contains(r#""code":"gateway_shutting_down""#), "a clean error event:\n{text}");
        assert!(!text.contains("twelve"));
    }
    assert!(
        sent.elapsed() < Duration::from_secs(4),
        "ended at the grace period, not the stream's end: {:?}",
        sent.elapsed()
    );
    let status = exit_of(&mut served, Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_config_file_and_a_broken_one_is_refused() {
    let slow = MockProvider::start("slow").await;
    let served = serve(&slow.url(), 1000, &["m"]).await;
    assert_eq!(post_chat(&served.url, "n").await.status, 404);
    let port = served.url.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    // A broken file first: refused, m keeps serving.
    std::fs::write(&served.config, "listen = \n").unwrap();
    signal(&served.child, "HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(post_chat(&served.url, "m").await.status, 200);
    std::fs::write(&served.config, config_text(port, &slow.url(), 1000, &["m", "n"])).unwrap();
    signal(&served.child, "HUP");
    let deadline = Instant::now() + Duration::from_secs(20);
    while post_chat(&served.url, "n").await.status != 200 {
        assert!(Instant::now() < deadline, "SIGHUP never brought route n");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let output = served.output_without_secrets();
    assert!(output.contains("config reloaded") || output.contains("config_reloaded"), "{output}");
}
