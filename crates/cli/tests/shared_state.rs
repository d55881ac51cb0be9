//! Three `switchyard serve` processes sharing one real `redis-server`
//! (`[state] backend = "redis"`) act as one gateway: a storm one sees
//! trips the breaker for all, a provider's Retry-After holds for all, and
//! Redis going away fails no request.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use switchyard_testkit::{MockProvider, RedisServer as Redis, Reply, post_chat};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until `port` listens; `Err` with what `alive` says when the
/// process exited first.
async fn wait_for_port(port: u16, what: &str, alive: &mut dyn FnMut() -> Option<String>) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if let Some(why) = alive() {
            return Err(why);
        }
        assert!(Instant::now() < deadline, "{what} never listened on {port}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// A child process killed when dropped, unless taken out.
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One `switchyard serve` process.
struct Instance {
    child: Child,
    url: String,
    admin: String,
    dir: tempfile::TempDir,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Instance {
    async fn start(config: &str, redis_url: &str) -> Instance {
        Instance::start_with(config, redis_url, &[]).await
    }

    /// [`Instance::start`] with `policies` (`(NAME, artifact)`) in its policy folder.
    async fn start_with(config: &str, redis_url: &str, policies: &[(&str, &str)]) -> Instance {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("policies")).unwrap();
        for (name, artifact) in policies {
            std::fs::copy(
                switchyard_testkit::plugin_artifact(artifact),
                dir.path().join(format!("policies/{name}.wasm")),
            )
            .unwrap();
        }
        // A port picked free can be taken by another test before the
        // process binds it: then start again on new ones.
        for attempt in 1.. {
            let (port, admin) = (free_port(), free_port());
            match Instance::spawn(dir.path(), port, admin, config, redis_url).await {
                Ok(child) => {
                    return Instance {
                        child,
                        url: format!("http://127.0.0.1:{port}"),
                        admin: format!("http://127.0.0.1:{admin}"),
                        dir,
                    };
                }
                Err(why) if attempt < 4 && why.contains("Address already in use") => continue,
                Err(why) => panic!("switchyard serve exited: {why}"),
            }
        }
        unreachable!()
    }

    /// `switchyard serve` in `dir` on `port` and `admin`, once it listens;
    /// `Err` with its log when it exited first.
    async fn spawn(
        dir: &std::path::Path,
        port: u16,
        admin: u16,
        config: &str,
        redis_url: &str,
    ) -> Result<Child, String> {
        let path = dir.join("switchyard.toml");
        std::fs::write(&path, format!("listen = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin}\"\n{config}"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["serve", "--config"])
            .arg(&path)
            .env("SWITCHYARD_REDIS_URL", redis_url)
            .env("SWITCHYARD_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
            .spawn()
            .unwrap();
        let stderr = dir.join("stderr");
        // Killed if the wait panics (it never listened).
        let mut child = KillOnDrop(Some(child));
        let running = child.0.as_mut().unwrap();
        wait_for_port(port, "switchyard serve", &mut || {
            running.try_wait().unwrap().map(|_| std::fs::read_to_string(&stderr).unwrap_or_default())
        })
        .await?;
        Ok(child.0.take().unwrap())
    }

    /// `GET /metrics` (classic Prometheus text), checked by Debian's `promtool`.
    async fn metrics(&self) -> String {
        let text = switchyard_testkit::get(&self.admin, "/metrics").await.body;
        let mut promtool = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool (Debian package prometheus; scripts/test.sh installs it)");
        std::io::Write::write_all(&mut promtool.stdin.take().unwrap(), text.as_bytes()).unwrap();
        let checked = promtool.wait_with_output().unwrap();
        assert!(checked.status.success(), "promtool: {}\n{text}", String::from_utf8_lossy(&checked.stderr));
        text
    }

    /// The value of the series `line` starts (`name{labels}`).
    async fn metric(&self, series: &str) -> f64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }
}

/// Route `m`: `primary` first, then `backup`; state in Redis under `prefix`
/// (`None`: each instance on its own memory).
fn config(primary: &str, backup: &str, prefix: Option<&str>) -> String {
    config_with(primary, backup, prefix, "")
}

/// [`config`] with more lines in the route's table.
fn config_with(primary: &str, backup: &str, prefix: Option<&str>, route_lines: &str) -> String {
    let state = match prefix {
        Some(prefix) => format!("[state]\nbackend = \"redis\"\nprefix = \"{prefix}\"\n"),
        None => String::new(),
    };
    format!(
        "[log]\naccess = \"off\"\n[breaker]\ncool_down_ms = 60000\nmax_cool_down_ms = 60000\n{state}\
         [[providers]]\nname = \"primary\"\napi = \"openai\"\nbase_url = \"{primary}\"\n\
         [[providers]]\nname = \"backup\"\napi = \"openai\"\nbase_url = \"{backup}\"\n\
         [[routes]]\nmodel = \"m\"\ntargets = [{{ provider = \"primary\", model = \"m\" }}, {{ provider = \"backup\", model = \"m\" }}]\n{route_lines}"
    )
}

/// Three instances, all up and answering from the primary (and, sharing
/// state, connected to Redis: their first health news would be lost otherwise).
async fn three(config: &str, redis: &str, shared: bool) -> Vec<Instance> {
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(Instance::start(config, redis).await);
    }
    if shared {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !instances.iter().all(|i| i.log().contains("state: redis answers")) {
            assert!(Instant::now() < deadline, "an instance never reached redis:\n{}", instances[0].log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    instances
}

/// Requests spread over the instances in turn, `gap` apart; every answer
/// must be a 200. How many the primary received.
async fn storm(instances: &[Instance], primary: &MockProvider, requests: usize, gap: Duration) -> usize {
    let before = primary.received();
    for i in 0..requests {
        let r = post_chat(&instances[i % instances.len()].url, "m").await;
        assert_eq!(r.status, 200, "request {i}: {}", r.body);
        tokio::time::sleep(gap).await;
    }
    primary.received() - before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_storm_spread_over_three_instances_costs_the_primary_what_one_instance_would() {
    let primary = MockProvider::start_cycling("primary", vec![Reply::status(503)]).await;
    let backup = MockProvider::start("backup").await;
    let redis = Redis::start().await;

    let isolated = three(&config(&primary.url(), &backup.url(), None), &redis.url(), false).await;
    let isolated_attempts = storm(&isolated, &primary, 60, Duration::from_millis(25)).await;
    drop(isolated);

    let shared = three(&config(&primary.url(), &backup.url(), Some("storm")), &redis.url(), true).await;
    let shared_attempts = storm(&shared, &primary, 60, Duration::from_millis(25)).await;

    println!(
        "primary attempts over 60 requests: isolated instances {isolated_attempts}, sharing state {shared_attempts}"
    );
    // Isolated, each instance needs its own 5 failures in a row (15 in all).
    assert_eq!(isolated_attempts, 15, "isolated: 5 failures per instance");
    // Together they trip on 5 (one more may have been on its way).
    assert!(shared_attempts <= 6, "sharing state: {shared_attempts} attempts at the failing primary");
    assert!(shared.iter().all(|i| !i.log().contains("ERROR")), "{}", shared[0].log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_one_instance_opens_stops_the_others_traffic_within_100_ms() {
    let primary = MockProvider::start_cycling("primary", vec![Reply::status(503)]).await;
    let backup = MockProvider::start("backup").await;
    let redis = Redis::start().await;
    let instances = three(&config(&primary.url(), &backup.url(), Some("open")), &redis.url(), true).await;

    // Only A sees the storm: its own five failures in a row open its breaker.
    storm(&instances[..1], &primary, 5, Duration::ZERO).await;
    let opened = Instant::now();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = primary.received();
    for instance in &instances[1..] {
        let r = post_chat(&instance.url, "m").await;
        assert_eq!((r.status.as_u16(), r.header("x-switchyard-provider")), (200, "backup"), "{}", r.body);
    }
    assert_eq!(primary.received(), before, "B and C sent the primary nothing {:?} after A opened", opened.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_one_instance_hears_holds_for_every_instance() {
    let primary = MockProvider::start_cycling("primary", vec![Reply::Ok]).await;
    primary.push(
        Reply::Status { status: 429, headers: vec![("retry-after".into(), "30".into())], body: "slow down".into() },
        1,
    );
    let backup = MockProvider::start("backup").await;
    let redis = Redis::start().await;
    let instances = three(&config(&primary.url(), &backup.url(), Some("cool")), &redis.url(), true).await;

    let r = post_chat(&instances[0].url, "m").await;
    assert_eq!((r.status.as_u16(), r.header("x-switchyard-provider")), (200, "backup"), "{}", r.body);
    assert_eq!(primary.received(), 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    for instance in &instances {
        let r = post_chat(&instance.url, "m").await;
        assert_eq!(r.header("x-switchyard-provider"), "backup", "the primary asked for 30 s without requests");
    }
    assert_eq!(primary.received(), 1, "no instance asked the primary again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_under_load_fails_no_request_and_after_a_restart_the_instances_share_again() {
    let primary = MockProvider::start_cycling("primary", vec![Reply::Ok]).await;
    let backup = MockProvider::start("backup").await;
    let mut redis = Redis::start().await;
    let instances = three(&config(&primary.url(), &backup.url(), Some("kill")), &redis.url(), true).await;

    // Load on all three while Redis is killed, then while it is away.
    let load = |instances: &[Instance], n: usize| {
        let urls: Vec<String> = instances.iter().map(|i| i.url.clone()).collect();
        tokio::spawn(async move {
            let mut failed = 0;
            for i in 0..n {
                if post_chat(&urls[i % urls.len()], "m").await.status != 200 {
                    failed += 1;
                }
            }
            failed
        })
    };
    let running = load(&instances, 600);
    tokio::time::sleep(Duration::from_millis(100)).await;
    redis.kill();
    assert_eq!(running.await.unwrap(), 0, "no request failed while Redis went away");
    let away = Instant::now();
    assert_eq!(load(&instances, 300).await.unwrap(), 0, "none while it is away");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !instances.iter().all(|i| i.log().contains("serving on this instance's state")) {
        assert!(Instant::now() < deadline, "the instances did not notice:\n{}", instances[0].log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("Redis away for {:?} under load: 0 failed requests", away.elapsed());

    // Back: the instances reconnect and share again.
    redis.restart().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !instances.iter().all(|i| i.log().contains("again; resynchronising")) {
        assert!(Instant::now() < deadline, "an instance did not reconnect:\n{}", instances[0].log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    primary.set_cycle(vec![Reply::status(503)]);
    storm(&instances[..1], &primary, 5, Duration::ZERO).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = primary.received();
    for instance in &instances[1..] {
        assert_eq!(post_chat(&instance.url, "m").await.header("x-switchyard-provider"), "backup");
    }
    assert_eq!(primary.received(), before, "after the restart, A's breaker holds for B and C again");
    for instance in &instances {
        assert_eq!(instance.metric("switchyard_state_up").await, 1.0);
        assert_eq!(instance.metric("switchyard_state_reconnects_total").await, 1.0);
        assert!(instance.metric("switchyard_state_failures_total").await >= 1.0, "the PINGs Redis did not answer");
    }
    assert_eq!(instances[0].metric("switchyard_state_health_news_total{direction=\"sent\"}").await, 1.0, "A opened");
    for instance in &instances[1..] {
        assert_eq!(instance.metric("switchyard_state_health_news_total{direction=\"applied\"}").await, 1.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_one_instance_kept_is_served_by_another_while_every_provider_is_down() {
    let primary = MockProvider::start("primary").await;
    let backup = MockProvider::start("backup").await;
    let redis = Redis::start().await;
    let resilient = "policy = \"resilient\"\n[policies.resilient]\nbase_backoff_ms = 20\nmax_backoff_ms = 100\n";
    let instances =
        three(&config_with(&primary.url(), &backup.url(), Some("cache"), resilient), &redis.url(), true).await;
    let question = r#"{"model":"m","messages":[{"role":"user","content":"What is 2+2?"}]}"#;
    let ask =
        |i: usize| switchyard_testkit::post_raw(&instances[i].url, "/v1/chat/completions", question.to_owned(), &[]);

    let fresh = ask(0).await;
    assert_eq!((fresh.status.as_u16(), fresh.header("x-switchyard-degraded")), (200, ""), "{}", fresh.body);
    // Kept off the response path, in A's memory and in Redis.
    tokio::time::sleep(Duration::from_millis(200)).await;

    primary.set_cycle(vec![Reply::status(503)]);
    backup.set_cycle(vec![Reply::status(503)]);
    for i in [1, 2] {
        let cached = ask(i).await;
        assert_eq!(cached.status, 200, "instance {i}: {}", cached.body);
        assert_eq!(cached.header("x-switchyard-degraded"), "cached", "instance {i}");
        assert_eq!(cached.json()["choices"][0]["message"]["content"], fresh.json()["choices"][0]["message"]["content"]);
    }
    // A question nobody asked before has no answer to fall back on.
    let other = r#"{"model":"m","messages":[{"role":"user","content":"And 3+3?"}]}"#;
    let r = switchyard_testkit::post_raw(&instances[2].url, "/v1/chat/completions", other.to_owned(), &[]).await;
    assert_eq!(r.status, 503, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policys_compare_and_swap_counter_moves_exactly_once_per_request_across_instances() {
    let primary = MockProvider::start("primary").await;
    let backup = MockProvider::start("backup").await;
    let redis = Redis::start().await;
    let config = config_with(&primary.url(), &backup.url(), Some("rr"), "policy = \"rr\"\n");
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(Instance::start_with(&config, &redis.url(), &[("rr", "round_robin")]).await);
    }
    for instance in &instances {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !post_chat(&instance.url, "m").await.header("x-switchyard-policy").starts_with("rr@") {
            assert!(Instant::now() < deadline, "rr never served:\n{}", instance.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let mut redis_conn = redis::Client::open(redis.url()).unwrap().get_connection().unwrap();
    let mut turn = || -> u64 {
        redis::cmd("GET").arg("rr:policy:rr:turn").query::<String>(&mut redis_conn).unwrap().parse().unwrap()
    };
    let (turns_before, served_before) = (turn(), primary.received() + backup.received());

    // Four clients per instance, 25 requests each, all at once.
    let clients: Vec<_> = (0..12)
        .map(|c| {
            let url = instances[c % 3].url.clone();
            tokio::spawn(async move {
                for _ in 0..25 {
                    let r = post_chat(&url, "m").await;
                    assert_eq!(r.status, 200, "{}", r.body);
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    let turns = turn() - turns_before;
    let served = primary.received() + backup.received() - served_before;
    assert_eq!((served, turns), (300, 300), "one turn per request, whichever instance took it");
    let split = primary.received().abs_diff(backup.received());
    assert!(
        split <= 1,
        "turns shared: the targets alternate cluster-wide ({} / {})",
        primary.received(),
        backup.received()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_requests_per_minute_holds_across_three_instances_within_three_percent() {
    let primary = MockProvider::start("primary").await;
    let backup = MockProvider::start("backup").await;
    let redis = Redis::start().await;
    let key = "sk-shared-limit-test-key";
    let keys = format!(
        "[[keys]]\nname = \"team-a\"\nhash = \"{}\"\nrequests_per_minute = 120\n",
        switchyard_access::hash_line(key)
    );
    let config = format!("{keys}{}", config(&primary.url(), &backup.url(), Some("limit")));
    let instances = three(&config, &redis.url(), true).await;
    let bearer = format!("Bearer {key}");

    // 12 clients, 4 per instance, 40 requests each: 480 asked of a limit of 120 a minute.
    let started = Instant::now();
    let clients: Vec<_> = (0..12)
        .map(|c| {
            let (url, bearer) = (instances[c % 3].url.clone(), bearer.clone());
            tokio::spawn(async move {
                let (mut admitted, mut limited) = (0u32, 0u32);
                for _ in 0..40 {
                    let body = switchyard_testkit::chat_body("m", false);
                    let r =
                        switchyard_testkit::post_raw(&url, "/v1/chat/completions", body, &[("authorization", &bearer)])
                            .await;
                    match r.status.as_u16() {
                        200 => admitted += 1,
                        429 => {
                            assert!(!r.header("retry-after").is_empty(), "a 429 says when to come back");
                            limited += 1;
                        }
                        other => panic!("{other}: {}", r.body),
                    }
                }
                (admitted, limited)
            })
        })
        .collect();
    let (mut admitted, mut limited) = (0, 0);
    for client in clients {
        let (a, l) = client.await.unwrap();
        admitted += a;
        limited += l;
    }
    // A minute's worth at once, then 2 a second refilled while the load ran.
    let expected = 120.0 + 2.0 * started.elapsed().as_secs_f64();
    println!("admitted {admitted} of 480 (limited {limited}) in {:?}; expected {expected:.1}", started.elapsed());
    assert_eq!(admitted + limited, 480);
    let off = (f64::from(admitted) - expected).abs() / expected;
    assert!(off <= 0.03, "admitted {admitted}, expected {expected:.1}: {:.1} % off", off * 100.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_probe_an_open_breaker_in_turn_not_each_on_its_own() {
    let primary = MockProvider::start_cycling("primary", vec![Reply::status(503)]).await;
    let backup = MockProvider::start("backup").await;
    let redis = Redis::start().await;
    let probed = |prefix: Option<&'static str>| {
        let config = config(&primary.url(), &backup.url(), prefix)
            .replace("base_url = \"", "probe = \"models\"\nprobe_interval_ms = 200\nbase_url = \"");
        let (primary, redis) = (&primary, redis.url());
        async move {
            let instances = three(&config, &redis, prefix.is_some()).await;
            for instance in &instances {
                storm(std::slice::from_ref(instance), primary, 5, Duration::ZERO).await;
            }
            let before = primary.received();
            tokio::time::sleep(Duration::from_secs(2)).await;
            primary.received() - before
        }
    };
    let isolated = probed(None).await;
    let shared = probed(Some("probes")).await;
    println!("active probes of the open primary in 2 s (every 200 ms): isolated {isolated}, sharing {shared}");
    // At most one probe per 200 ms among the three (10 in 2 s, one more at an edge)...
    assert!((1..=12).contains(&shared), "one probe per interval among three instances: {shared}");
    // ...where, on their own, each probes every interval.
    assert!(isolated >= 2 * shared, "isolated {isolated}, sharing {shared}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_providers_rpm_holds_across_three_instances_within_three_percent() {
    let provider = MockProvider::start("provider").await;
    let redis = Redis::start().await;
    let config = format!(
        "[log]\naccess = \"off\"\n[state]\nbackend = \"redis\"\nprefix = \"rpm\"\n[queue]\nmax_wait_ms = 1\n\
         [[providers]]\nname = \"provider\"\napi = \"openai\"\nbase_url = \"{}\"\nrpm = 60\n\
         [[routes]]\nmodel = \"m\"\ntargets = [{{ provider = \"provider\", model = \"m\" }}]\n",
        provider.url()
    );
    let instances = three(&config, &redis.url(), true).await;
    let started = Instant::now();
    let clients: Vec<_> = (0..9)
        .map(|c| {
            let url = instances[c % 3].url.clone();
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for _ in 0..30 {
                    let r = post_chat(&url, "m").await;
                    if r.status == 503 {
                        assert!(!r.header("retry-after").is_empty(), "a shed request says when to come back");
                    }
                    statuses.push(r.status.as_u16());
                }
                statuses
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for client in clients {
        statuses.extend(client.await.unwrap());
    }
    let answered = statuses.iter().filter(|s| **s == 200).count();
    assert!(statuses.iter().all(|s| [200, 503].contains(s)), "{statuses:?}");
    // A minute's worth at once, then one a second.
    let expected = 60.0 + started.elapsed().as_secs_f64();
    println!(
        "the provider got {} of 270 ({answered} answered) in {:?}; expected {expected:.1}",
        provider.received(),
        started.elapsed()
    );
    assert_eq!(provider.received(), answered, "what was shed never reached the provider");
    let off = (answered as f64 - expected).abs() / expected;
    assert!(off <= 0.03, "{answered} reached the provider, expected {expected:.1}: {:.1} % off", off * 100.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_each_keep_their_share_of_a_keys_max_concurrency() {
    let slow = Reply::Delay(Duration::from_millis(600), Box::new(Reply::Ok));
    let (primary, backup) =
        (MockProvider::start_cycling("primary", vec![slow]).await, MockProvider::start("backup").await);
    let redis = Redis::start().await;
    let key = "sk-shared-concurrency-key";
    let config = format!(
        "[[keys]]\nname = \"team-a\"\nhash = \"{}\"\nmax_concurrency = 3\n{}",
        switchyard_access::hash_line(key),
        config(&primary.url(), &backup.url(), Some("conc"))
    );
    let instances = three(&config, &redis.url(), true).await;
    // Every instance has seen the three beat (each heartbeat counts them).
    tokio::time::sleep(Duration::from_millis(600)).await;
    let bearer = format!("Bearer {key}");
    // Nine at once, three per instance, each held 600 ms by the provider.
    let clients: Vec<_> = (0..9)
        .map(|c| {
            let (url, bearer) = (instances[c % 3].url.clone(), bearer.clone());
            tokio::spawn(async move {
                let body = switchyard_testkit::chat_body("m", false);
                switchyard_testkit::post_raw(&url, "/v1/chat/completions", body, &[("authorization", &bearer)])
                    .await
                    .status
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for client in clients {
        statuses.push(client.await.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, [200, 200, 200, 429, 429, 429, 429, 429, 429], "a third of 3 each: 3 at once in all");
    assert_eq!(primary.max_inflight(), 3);
}

#[test]
fn a_redis_backend_without_its_url_variable_refuses_to_start_and_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchyard.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:{}\"\n{}",
            free_port(),
            config("http://127.0.0.1:9", "http://127.0.0.1:9", Some("x"))
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["serve", "--config"])
        .arg(&path)
        .env_remove("SWITCHYARD_REDIS_URL")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(said.contains("SWITCHYARD_REDIS_URL"), "{said}");
}
