//! Policies in every language, the way a plugin author meets them: each
//! template is scaffolded by `switchyard new`, built by its own `./build.sh`
//! (which installs the language's tools when missing), passes
//! `switchyard policy check`, and, dropped into a running gateway's policy
//! folder under load, takes over and rides out a primary outage.
//!
//! Tools are installed under `target/tools` (`SWITCHYARD_TOOLS`), so a
//! machine pays for them once.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use switchyard_mock::{MockProvider, Reply};
use switchyard_testkit::{ConfigBuilder, TestGateway, post_chat};

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

fn run(what: &str, command: &mut Command) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{what} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// `switchyard new NAME --lang LANG` in a fresh folder, then `./build.sh`.
/// Returns the built component.
fn scaffold_and_build(lang: &str, name: &str) -> PathBuf {
    let parent = target_dir().join("lang-builds").join(lang);
    let project = parent.join(name);
    if project.exists() {
        std::fs::remove_dir_all(&project).unwrap();
    }
    std::fs::create_dir_all(&parent).unwrap();
    run(
        "switchyard new",
        Command::new(env!("CARGO_BIN_EXE_switchyard")).args(["new", name, "--lang", lang, "--dir"]).arg(&parent),
    );
    let started = Instant::now();
    let built = run("./build.sh", &mut build_command(&project));
    assert!(built.contains("ok: 15 case(s)"), "the build ran the template's expectations:\n{built}");
    let wasm = project.join(format!("{name}.wasm"));
    let size = std::fs::metadata(&wasm).unwrap_or_else(|e| panic!("{} after build.sh: {e}", wasm.display())).len();
    eprintln!("{lang}: built {name}.wasm ({} KiB) in {:?}", size / 1024, started.elapsed());
    wasm
}

/// The scaffold's `./build.sh`, with the tools under `target/tools`.
fn build_command(project: &Path) -> Command {
    let mut command = Command::new(project.join("build.sh"));
    command
        .env("SWITCHYARD_TOOLS", target_dir().join("tools"))
        // The build runs the scaffold's policy-tests.toml with this binary.
        .env("SWITCHYARD", env!("CARGO_BIN_EXE_switchyard"))
        // The Rust scaffold's dependencies build once per machine.
        .env("CARGO_TARGET_DIR", target_dir().join("scaffold-builds"));
    command
}

/// `switchyard policy test` in the scaffold's folder passes; an expectation
/// the policy does not meet fails it, naming the case and what the policy said.
fn policy_tests_pass_and_fail_as_they_should(wasm: &Path) {
    let project = wasm.parent().unwrap();
    let passed = run(
        "switchyard policy test",
        Command::new(env!("CARGO_BIN_EXE_switchyard")).args(["policy", "test"]).current_dir(project),
    );
    assert!(passed.contains("ok   a 503 moves on at once to the next untried target — retry on backup"), "{passed}");
    let shipped = std::fs::read_to_string(project.join("policy-tests.toml")).unwrap();
    let wrong = shipped.replacen(
        r#"expect = { decision = "retry", target = "backup", max_delay_ms = 0 }"#,
        r#"expect = { decision = "retry", target = "local", max_delay_ms = 0 }"#,
        1,
    );
    assert_ne!(wrong, shipped, "the template's 503 case is where the test expects it");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), wrong).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["policy", "test"])
        .arg(wasm)
        .arg("--expect")
        .arg(file.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL a 503 moves on at once to the next untried target — expected target local; the policy said: retry on backup after 0 ms"),
        "{stdout}"
    );
    assert!(stdout.contains("FAILED: 1 of 15 case(s)"), "{stdout}");
}

/// `switchyard policy check`, compiling into `cache_dir`.
fn check(wasm: &Path, cache_dir: &Path) -> String {
    let report = run(
        "switchyard policy check",
        Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["policy", "check"])
            .arg(wasm)
            .args(["--config", r#"{"max_attempts": 3}"#, "--cache-dir"])
            .arg(cache_dir),
    );
    eprintln!("{report}");
    assert_eq!(report.lines().last(), Some("ok"), "{report}");
    for scenario in ["breaker open", "Retry-After", "every target failed", "500 request headers"] {
        assert!(report.contains(scenario), "the check skipped {scenario:?}:\n{report}");
    }
    report
}

/// The settings a template refuses: `init`'s error reaches the author (the
/// compiled component from `cache_dir`: settings are refused by `init`,
/// after compilation).
fn check_refuses_bad_settings(wasm: &Path, cache_dir: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["policy", "check"])
        .arg(wasm)
        .args(["--config", r#"{"max_attempts": 0}"#, "--cache-dir"])
        .arg(cache_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("REJECTED") && stdout.contains("max_attempts"), "{stdout}");
}

/// A gateway whose primary answers 503 to everything serves route `m` with
/// the native fallback; `name.wasm` lands in its policy folder while three
/// clients keep sending. Every client request succeeds (from the backup);
/// answers soon come from the new policy; once the primary's breaker is open,
/// the new policy sends it (almost) nothing.
async fn hot_swapped_in_under_load_it_rides_out_the_outage(name: &str, wasm: &Path, cache_dir: &Path) {
    let primary = MockProvider::start("primary").await;
    primary.set_cycle(vec![Reply::status(503)]);
    let backup = MockProvider::start("backup").await;
    let temp = tempfile::tempdir().unwrap();
    let policy_dir = temp.path().join("policies");
    std::fs::create_dir_all(&policy_dir).unwrap();
    let config = ConfigBuilder::new()
        .provider("primary", &primary.url())
        .provider("backup", &backup.url())
        .route("m", Some(name), 10_000, &["primary", "backup"])
        .settings(name, &["max_attempts = 3"])
        .policy(&format!("cache_dir = {:?}", cache_dir.display().to_string()));
    let gw = Arc::new(TestGateway::start_in(&config.build(&policy_dir), temp.path(), |_| None).await);

    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let (gw, stop, sent, failed) = (gw.clone(), stop.clone(), sent.clone(), failed.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let r = post_chat(&gw.url(), "m").await;
                    sent.fetch_add(1, Ordering::Relaxed);
                    if r.status != 200 || r.header("x-switchyard-provider") != "backup" {
                        failed.fetch_add(1, Ordering::Relaxed);
                        eprintln!("bad answer: {} from {:?}: {}", r.status, r.header("x-switchyard-provider"), r.body);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let dropped = Instant::now();
    std::fs::copy(wasm, policy_dir.join(format!("{name}.wasm"))).unwrap();
    let prefix = format!("{name}@");
    loop {
        let r = post_chat(&gw.url(), "m").await;
        assert_eq!(r.status, 200, "{}", r.body);
        if r.header("x-switchyard-policy").starts_with(&prefix) {
            break;
        }
        assert!(dropped.elapsed() < Duration::from_secs(60), "{name}.wasm never served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("{name}: serving {:?} after its file landed", dropped.elapsed());

    // With the new policy serving and the primary's breaker open, 60 client
    // requests cost the primary at most a few half-open probes.
    let before = primary.received();
    for _ in 0..60 {
        let r = post_chat(&gw.url(), "m").await;
        assert_eq!((r.status.as_u16(), r.header("x-switchyard-provider")), (200, "backup"), "{}", r.body);
        assert!(r.header("x-switchyard-policy").starts_with(&prefix));
    }
    let probes = primary.received() - before;
    assert!(probes <= 6, "{name} sent {probes} of 60 requests to a primary whose breaker is open");

    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let sent = sent.load(Ordering::Relaxed);
    assert_eq!(failed.load(Ordering::Relaxed), 0, "of {sent} requests under load");
    assert!(sent > 10, "the load loop sent only {sent} requests");
}

/// `./build.sh` again, sources unchanged: the same file, byte for byte (Rust
/// and C builds are reproducible; the Python and JavaScript builds, whose
/// tools snapshot a heap with live randomness, keep the file they built).
fn a_rebuild_of_unchanged_sources_gives_the_same_file(lang: &str, wasm: &Path) {
    let before = std::fs::read(wasm).unwrap();
    let said = run("./build.sh again", &mut build_command(wasm.parent().unwrap()));
    if matches!(lang, "python" | "js") {
        assert!(said.contains("is up to date (same sources"), "{said}");
    }
    assert!(std::fs::read(wasm).unwrap() == before, "{lang}: a rebuild of the same sources changed the file");
}

/// The policy made to fail on a streamed request, in each language's own
/// way (a Rust panic, a C trap, a Python exception, a JavaScript `throw`),
/// rebuilt: `policy check` fails the scenario with the guest's own message
/// and where it was raised (for C, which has no stdio here: its frames), not
/// only "wasm `unreachable`".
fn a_policy_that_fails_is_reported_in_its_own_words(lang: &str, wasm: &Path) {
    let project = wasm.parent().unwrap();
    let (file, anchor, failing, location) = match lang {
        "rust" => (
            "src/lib.rs",
            "    fn route(request: RequestInfo) -> RouteDecision {\n",
            "        if request.streaming { panic!(\"streaming route {} is not supported here\", request.route); }\n",
            "src/lib.rs:",
        ),
        // C has no stdio here (see the template's README): the account is
        // the policy's own frames, kept by the build.
        "c" => (
            "policy.c",
            "void exports_policy_route(policy_request_info_t *request, policy_route_decision_t *ret) {\n",
            "  refuse_streaming(request);\n",
            "in: refuse_streaming <- exports_policy_route",
        ),
        "python" => (
            "app.py",
            "    def route(self, request):\n",
            "        if request.streaming:\n            raise ValueError(f\"streaming route {request.route} is not supported here\")\n",
            "app.py\", line 74, in route",
        ),
        "js" => (
            "policy.js",
            "export function route(request) {\n",
            "  if (request.streaming) throw new TypeError(`streaming route ${request.route} is not supported here`);\n",
            "route@policy.js:54:",
        ),
        _ => unreachable!(),
    };
    let path = project.join(file);
    let source = std::fs::read_to_string(&path).unwrap();
    assert!(source.contains(anchor), "{lang}: the template's route function is where the test expects it");
    let mut changed = source.replacen(anchor, &format!("{anchor}{failing}"), 1);
    if lang == "c" {
        let helper = "__attribute__((noinline)) static void refuse_streaming(const policy_request_info_t *request) {\n  if (request->streaming) __builtin_trap();\n}\n\n";
        changed = changed.replacen(anchor, &format!("{helper}{anchor}"), 1);
    }
    std::fs::write(&path, changed).unwrap();
    // The build's own expectations would fail first: build without switchyard at hand.
    let said = run("./build.sh (failing policy)", build_command(project).env("SWITCHYARD", "/nonexistent"));
    assert!(said.contains("built "), "{lang}: changed sources are built again:\n{said}");
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard")).args(["policy", "check"]).arg(wasm).output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let failed =
        report.lines().skip_while(|l| !l.contains("FAIL route: an Anthropic client's streamed request")).take(30);
    let failed = failed.collect::<Vec<_>>().join("\n");
    eprintln!("{lang}:\n{failed}");
    if lang != "c" {
        assert!(failed.contains("the policy wrote:"), "{lang}: {failed}");
        assert!(failed.contains("streaming route") && failed.contains("is not supported here"), "{lang}: {failed}");
    }
    assert!(failed.contains(location), "{lang}: no {location:?} in {failed}");
}

async fn policy_in(lang: &str) {
    let name = format!("{lang}-failover");
    let wasm = scaffold_and_build(lang, &name);
    let cache = tempfile::tempdir().unwrap();
    check(&wasm, cache.path());
    policy_tests_pass_and_fail_as_they_should(&wasm);
    check_refuses_bad_settings(&wasm, cache.path());
    hot_swapped_in_under_load_it_rides_out_the_outage(&name, &wasm, cache.path()).await;
    a_rebuild_of_unchanged_sources_gives_the_same_file(lang, &wasm);
    a_policy_that_fails_is_reported_in_its_own_words(lang, &wasm);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_policy_scaffolds_builds_checks_and_takes_over_a_running_gateway() {
    policy_in("rust").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_policy_scaffolds_builds_checks_and_takes_over_a_running_gateway() {
    policy_in("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_policy_scaffolds_builds_checks_and_takes_over_a_running_gateway() {
    policy_in("python").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_javascript_policy_scaffolds_builds_checks_and_takes_over_a_running_gateway() {
    policy_in("js").await;
}
