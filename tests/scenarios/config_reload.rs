//! Config hot reload: a route added, a target changed and a broken file
//! refused while traffic flows, with no failed request; what did not change
//! keeps its state (a target's open breaker, a provider's pooled connection);
//! the file is reloaded when it is edited.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::*;

async fn reload_via_admin(gw: &TestGateway) -> ChatResponse {
    post_raw(&gw.admin_url(), "/admin/reload", "", &[]).await
}

/// Clients hammering route `model` until told to stop; counts what failed.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<std::sync::Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(url: String, model: &'static str, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
        let tasks = (0..clients)
            .map(|_| {
                let (url, stop, ok, failed) = (url.clone(), stop.clone(), ok.clone(), failed.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let r = post_chat(&url, model).await;
                        if r.status == 200 {
                            ok.fetch_add(1, Ordering::Relaxed);
                        } else {
                            failed.lock().unwrap().push(format!("{} {}", r.status, r.body));
                        }
                    }
                })
            })
            .collect();
        Load { stop, ok, failed, tasks }
    }

    async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        (self.ok.load(Ordering::Relaxed), self.failed.lock().unwrap().clone())
    }
}

#[tokio::test]
async fn under_load_a_reload_adds_a_route_moves_a_target_and_refuses_a_broken_file_with_no_failed_request() {
    init_tracing();
    let (a, b, c) = (MockProvider::start("a").await, MockProvider::start("b").await, MockProvider::start("c").await);
    let first = ConfigBuilder::new().provider("a", &a.url()).provider("b", &b.url()).provider("c", &c.url()).route(
        "m",
        None,
        5000,
        &["a"],
    );
    let gw = TestGateway::start(&first).await;
    let load = Load::start(gw.url(), "m", 4);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(post_chat(&gw.url(), "n").await.status, 404, "no route n yet");

    // Route m moves to provider c; route n is new, on b.
    let second = ConfigBuilder::new()
        .provider("a", &a.url())
        .provider("b", &b.url())
        .provider("c", &c.url())
        .route("m", None, 5000, &["c"])
        .route("n", None, 5000, &["b"]);
    std::fs::write(&gw.config_path, second.build(&gw.policy_dir)).unwrap();
    let r = reload_via_admin(&gw).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let changes = &r.json()["changes"];
    assert_eq!(changes["routes_added"], serde_json::json!(["n"]));
    assert_eq!(changes["routes_changed"], serde_json::json!(["m"]));
    assert_eq!(changes["providers_kept"], 3, "no provider changed: every pool kept");
    let n = post_chat(&gw.url(), "n").await;
    assert_eq!((n.status.as_u16(), n.header("x-switchyard-provider")), (200, "b"), "{}", n.body);
    let m = post_chat(&gw.url(), "m").await;
    assert_eq!(m.header("x-switchyard-provider"), "c");
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A broken file: refused with its line, the running config keeps serving.
    let mut broken = second.build(&gw.policy_dir);
    broken.push_str("\n[[routes]]\nmodel = \"x\"\ntargets = [\"nowhere\"]\n");
    std::fs::write(&gw.config_path, &broken).unwrap();
    let r = reload_via_admin(&gw).await;
    assert_eq!(r.status, 422, "{}", r.body);
    let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("switchyard.toml:") && message.contains("nowhere"), "{message}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(post_chat(&gw.url(), "n").await.status, 200, "still serving the last good config");

    let (ok, failed) = load.finish().await;
    assert!(
        failed.is_empty(),
        "{} failed requests during the reloads: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
    assert!(ok > 20, "the load ran ({ok} answers)");
    assert!(c.received() > 0 && a.received() > 0);

    let events = get(&gw.admin_url(), "/admin/events").await.json();
    let kinds: Vec<&str> = events.as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    let reloaded = kinds.iter().position(|k| *k == "config_reloaded").expect("a config_reloaded event");
    let rejected = kinds.iter().position(|k| *k == "config_rejected").expect("a config_rejected event");
    assert!(reloaded < rejected, "{kinds:?}");
    let metrics = get(&gw.admin_url(), "/metrics").await.body;
    assert!(metrics.contains(r#"switchyard_config_reloads_total{result="ok"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"switchyard_config_reloads_total{result="rejected"} 1"#));
}

#[tokio::test]
async fn a_reload_keeps_an_unchanged_targets_open_breaker_and_an_unchanged_providers_connections() {
    init_tracing();
    let down = MockProvider::start_cycling("down", vec![Reply::status(500)]).await;
    let up = MockProvider::start("up").await;
    // The same server under another name is another base_url: another pool.
    let config = |extra_route: bool, up_host: &str| {
        let up_url = up.url().replace("127.0.0.1", up_host);
        let mut c = ConfigBuilder::new().provider("down", &down.url()).provider("up", &up_url).route(
            "m",
            None,
            5000,
            &["down", "up"],
        );
        if extra_route {
            c = c.route("other", None, 5000, &["up"]);
        }
        c
    };
    let gw = TestGateway::start(&config(false, "127.0.0.1")).await;
    for _ in 0..3 {
        assert_eq!(post_chat(&gw.url(), "m").await.status, 200);
    }
    let targets = get(&gw.admin_url(), "/admin/targets").await.json();
    assert_eq!(targets[0]["breaker"], "open", "{targets}");
    let connections = up.connections();

    std::fs::write(&gw.config_path, config(true, "127.0.0.1").build(&gw.policy_dir)).unwrap();
    let r = gw.reload().await.expect("reloaded");
    assert_eq!((r.providers_kept, r.targets_kept, r.targets_new), (2, 2, 1), "{r:?} (up/other is new)");
    let targets = get(&gw.admin_url(), "/admin/targets").await.json();
    assert_eq!(targets[0]["target"], "down/m");
    assert_eq!(targets[0]["breaker"], "open", "the open breaker survived the reload: {targets}");
    let before = down.received();
    assert_eq!(post_chat(&gw.url(), "m").await.header("x-switchyard-provider"), "up");
    assert_eq!(down.received(), before, "the open breaker still keeps traffic off the failing target");
    assert_eq!(up.connections(), connections, "the kept provider reused its pooled connection");

    // A changed provider is a new pool: a new connection.
    std::fs::write(&gw.config_path, config(true, "localhost").build(&gw.policy_dir)).unwrap();
    let r = gw.reload().await.expect("reloaded");
    assert_eq!((r.providers_kept, r.providers_new), (1, 1), "{r:?}");
    assert_eq!(post_chat(&gw.url(), "other").await.status, 200);
    assert_eq!(up.connections(), connections + 1);
}

#[tokio::test]
async fn editing_the_config_file_reloads_it_and_a_touch_does_not() {
    init_tracing();
    let a = MockProvider::start("a").await;
    let config = ConfigBuilder::new().provider("a", &a.url()).route("m", None, 5000, &["a"]);
    let gw = TestGateway::start(&config).await;
    let _watching = {
        // What `switchyard serve` does with the file it was started from.
        let toml = std::fs::read_to_string(&gw.config_path).unwrap();
        let mut config = switchyard_config::load_file(&gw.config_path).unwrap();
        config.base_dir = gw.config_path.parent().unwrap().to_owned();
        let gateway = switchyard_core::Gateway::new(&config, |_| None).await.unwrap();
        gateway.set_config_path(&gw.config_path);
        let watcher = gateway.watch_config().unwrap();
        let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = format!("http://{}", admin_listener.local_addr().unwrap());
        let _admin = tokio::spawn(gateway.admin(admin_listener, None));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let served = tokio::spawn(gateway.serve(listener, std::future::pending()));
        assert_eq!(post_chat(&url, "n").await.status, 404);
        std::fs::write(&gw.config_path, &toml).unwrap(); // the same content: no reload
        let edited = config_with_n(&a, &gw);
        tokio::time::sleep(Duration::from_millis(800)).await;
        let events = get(&admin, "/admin/events").await.body;
        assert!(!events.contains("config_reloaded"), "rewriting the same content is not a change: {events}");
        std::fs::write(&gw.config_path, edited).unwrap();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while post_chat(&url, "n").await.status != 200 {
            assert!(tokio::time::Instant::now() < deadline, "the edit was never picked up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(get(&admin, "/admin/events").await.body.contains("config_reloaded"));
        (watcher, served)
    };
}

fn config_with_n(a: &MockProvider, gw: &TestGateway) -> String {
    ConfigBuilder::new()
        .provider("a", &a.url())
        .route("m", None, 5000, &["a"])
        .route("n", None, 5000, &["a"])
        .build(&gw.policy_dir)
}
