//! The binary as a user runs it: demo, validate, policy check.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use switchyard_testkit::plugin_artifact;

fn switchyard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
}

#[test]
fn policy_check_accepts_the_default_policy() {
    let out = switchyard().args(["policy", "check"]).arg(plugin_artifact("failover")).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(": failover@") && stdout.contains("satisfied"), "{stdout}");
    assert!(stdout.contains("ok   on-attempt: 429 with Retry-After: 30"), "{stdout}");
    assert!(stdout.contains("route       p50") && stdout.contains("KiB high-water"), "{stdout}");
    assert_eq!(stdout.lines().last(), Some("ok"), "{stdout}");
}

#[test]
fn policy_check_piped_into_a_reader_that_stops_early_ends_quietly() {
    use std::io::BufRead;
    let mut child = switchyard()
        .args(["policy", "check"])
        .arg(plugin_artifact("failover"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // `| head -1`: one line, then the pipe closes while the checks still run.
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.contains("failover@"), "{first}");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
}

#[test]
fn policy_check_hints_at_the_naming_rule_for_a_file_named_against_it() {
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("My_C.wasm");
    std::fs::copy(plugin_artifact("failover"), &odd).unwrap();
    let out = switchyard().args(["policy", "check"]).arg(&odd).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("hint: policy names are lower-case letters, digits and dashes (like \"my-c\")"), "{said}");
    assert!(said.contains("loads as the policy \"My_C\""), "{said}");
    let out = switchyard().args(["policy", "check"]).arg(plugin_artifact("failover")).output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("hint:"), "a well-named file gets no hint");
}

#[test]
fn policy_check_flags_a_policy_that_ignores_retry_after() {
    let out = switchyard()
        .args(["policy", "check"])
        .arg(plugin_artifact("chaos"))
        .args(["--config", r#""hammer""#])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL on-attempt: 429 with Retry-After: 30"), "{stdout}");
    assert!(stdout.contains("before its Retry-After of 30000 ms"), "{stdout}");
}

#[test]
fn policy_check_rejects_a_policy_that_misbehaves_at_load() {
    let out = switchyard()
        .args(["policy", "check"])
        .arg(plugin_artifact("chaos"))
        .args(["--config", r#"{"always": "loop"}"#])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("REJECTED (budget_exceeded)"), "{stdout}");
}

#[test]
fn policy_check_rejects_a_forbidden_import_naming_it() {
    let out = switchyard().args(["policy", "check"]).arg(plugin_artifact("forbidden_import")).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("REJECTED (forbidden_import)") && stdout.contains("acme:exfil/net"), "{stdout}");
}

#[test]
fn policy_check_passes_settings_to_init() {
    let out = switchyard()
        .args(["policy", "check"])
        .arg(plugin_artifact("failover"))
        .args(["--config", r#"{"max_attempts": 0}"#])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("max_attempts must be at least 1"), "{stdout}");
}

#[test]
fn validate_explains_a_bad_config_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[providers]]\nname = \"a\"\napi = \"openai\"\nbase_url = \"http://127.0.0.1:1\"\n\n[[routes]]\nmodel = \"m\"\ntargets = [{ provider = \"b\", model = \"m\" }]\n",
    )
    .unwrap();
    let out = switchyard().args(["validate", "--config"]).arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("bad.toml:8: route \"m\" names provider \"b\""), "{stderr}");
}

#[test]
fn validate_summarises_the_example_config() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/failover/switchyard.toml");
    let out = switchyard().args(["validate", "--config", example]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("policy \"failover\": failover@") && stdout.contains("(embedded), settings accepted"),
        "{stdout}"
    );
}

#[test]
fn validate_accepts_the_resilient_example_with_every_guard_rail() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/resilient/switchyard.toml");
    let out = switchyard()
        .args(["validate", "--config", example])
        .env("OPENAI_API_KEY", "sk-test")
        .env("OPENROUTER_API_KEY", "sk-test")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("policy \"resilient\": resilient@") && stdout.contains("settings accepted"), "{stdout}");
}

#[test]
fn validate_accepts_the_claude_to_local_example() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/claude-to-local/switchyard.toml");
    let out = switchyard()
        .args(["validate", "--config", example])
        .env("ANTHROPIC_API_KEY", "sk-ant-test")
        .env("OPENAI_API_KEY", "sk-test")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("anthropic") && stdout.contains("local"), "{stdout}");
}

#[test]
fn validate_accepts_the_edge_example_and_names_its_keys_quotas_and_tls() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/edge/switchyard.toml");
    let out = switchyard().args(["validate", "--config", example]).env("OPENAI_API_KEY", "sk-test").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("key \"support-bot\": priority high"), "{stdout}");
    assert!(stdout.contains("rpm 5000, max_concurrency 200"), "{stdout}");
    assert!(stdout.contains("tls WARNING"), "the example's certificate paths are not on this machine: {stdout}");
}

#[test]
fn validate_accepts_the_cluster_example_and_says_where_its_state_is_shared() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/cluster/switchyard.toml");
    let run = |redis: Option<&str>| {
        let mut cmd = switchyard();
        cmd.args(["validate", "--config", example])
            .env("OPENAI_API_KEY", "sk-test")
            .env("ANTHROPIC_API_KEY", "sk-test");
        match redis {
            Some(url) => cmd.env("SWITCHYARD_REDIS_URL", url),
            None => cmd.env_remove("SWITCHYARD_REDIS_URL"),
        };
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let said = run(Some("redis://:secret-pass@127.0.0.1:6379/0"));
    assert!(
        said.contains("state shared through redis under \"switchyard\" — URL from $SWITCHYARD_REDIS_URL"),
        "{said}"
    );
    assert!(!said.contains("secret-pass"), "the URL's password is never printed: {said}");
    assert!(run(None).contains("WARNING: $SWITCHYARD_REDIS_URL is not set"));
}

#[test]
fn validate_loads_policies_with_their_settings() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.toml");
    std::fs::write(
        &path,
        "[policies.failover]\nmax_attempt = 3\n[[providers]]\nname = \"a\"\napi = \"openai\"\nbase_url = \"http://127.0.0.1:1\"\n\n[[routes]]\nmodel = \"m\"\ntargets = [{ provider = \"a\", model = \"m\" }]\n",
    )
    .unwrap();
    let out = switchyard().args(["validate", "--config"]).arg(&path).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(64), "{stdout}");
    assert!(stdout.contains("init refused its settings") && stdout.contains("max_attempt"), "{stdout}");
}

#[test]
fn demo_answers_the_curl_it_prints() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = switchyard()
        .args(["demo", "--listen", "127.0.0.1:0", "--policy-dir"])
        .arg(dir.path().join("policies"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Read the banner on a thread that keeps draining stdout, so the demo
    // never writes into a closed pipe.
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("Switchyard demo on http://") {
                let _ = tx.send(rest.trim().to_owned());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(60)).expect("the demo printed its address");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (answers, messages) = rt.block_on(async {
        let (mut chat, mut messages) = (Vec::new(), Vec::new());
        for _ in 0..4 {
            let r = switchyard_testkit::post_chat(&format!("http://{addr}"), "gpt-4o-mini").await;
            chat.push((r.status.as_u16(), r.header("x-switchyard-provider").to_owned()));
            let r = switchyard_testkit::post_messages(&format!("http://{addr}"), "claude-sonnet-4-5").await;
            let kind = r.json()["type"].as_str().unwrap_or_default().to_owned();
            messages.push((r.status.as_u16(), r.header("x-switchyard-provider").to_owned(), kind));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (chat, messages)
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(answers.iter().all(|(status, _)| *status == 200), "{answers:?}");
    // The flaky primary's outages are ridden out by the backup.
    assert!(answers.iter().any(|(_, p)| p == "primary") && answers.iter().any(|(_, p)| p == "backup"), "{answers:?}");
    // Anthropic clients: Claude's 529s are ridden out by GPT, answered as Anthropic messages.
    assert!(messages.iter().all(|(status, _, kind)| *status == 200 && kind == "message"), "{messages:?}");
    assert!(
        messages.iter().any(|(_, p, _)| p == "claude") && messages.iter().any(|(_, p, _)| p == "backup"),
        "{messages:?}"
    );
}

#[test]
fn new_refuses_a_bad_name_and_an_existing_folder() {
    let dir = tempfile::tempdir().unwrap();
    let bad = switchyard().args(["new", "Bad Name", "--lang", "rust", "--dir"]).arg(dir.path()).output().unwrap();
    assert_eq!(bad.status.code(), Some(64));
    std::fs::create_dir(dir.path().join("taken")).unwrap();
    let taken = switchyard().args(["new", "taken", "--lang", "rust", "--dir"]).arg(dir.path()).output().unwrap();
    assert_eq!(taken.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&taken.stderr).contains("already exists"));
}

#[test]
fn keys_new_prints_a_key_once_and_the_config_lines_holding_only_its_hash() {
    let out = switchyard().args(["keys", "new", "team-a"]).output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let key = stdout.lines().next().unwrap().to_owned();
    assert!(key.starts_with("sy-") && key.len() == 51, "{stdout}");
    let config = &stdout[key.len()..];
    assert!(config.contains("[[keys]]\nname = \"team-a\"\n"), "{stdout}");
    assert!(config.contains(&format!("hash = \"{}\"", switchyard_access::hash_line(&key))), "{stdout}");
    assert!(!config.contains(&key), "only the hash goes into the config");
    let refused = switchyard().args(["keys", "new", "team a/../x"]).output().unwrap();
    assert_eq!(refused.status.code(), Some(64));
}

#[test]
fn validate_accepts_the_tenant_tiers_example_with_its_embedded_policy() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/tenant-tiers/switchyard.toml");
    let out = switchyard().args(["validate", "--config", example]).env("OPENAI_API_KEY", "sk-test").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("policy \"tenant-tiers\": tenant-tiers@") && stdout.contains("settings accepted"),
        "{stdout}"
    );
}

#[test]
fn a_javascript_syntax_error_stops_the_build_with_its_line_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let made = switchyard().args(["new", "broken-js", "--lang", "js", "--dir"]).arg(dir.path()).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let project = dir.path().join("broken-js");
    let source = std::fs::read_to_string(project.join("policy.js")).unwrap();
    let broken = source.replacen(
        "export function route(request) {\n",
        "export function route(request) {\n  const x = (1 + ;\n",
        1,
    );
    assert_ne!(broken, source, "the template's route function is where the test expects it");
    std::fs::write(project.join("policy.js"), broken).unwrap();
    // An empty tools folder: the syntax is checked before any tool is installed.
    let tools = tempfile::tempdir().unwrap();
    let out =
        std::process::Command::new(project.join("build.sh")).env("SWITCHYARD_TOOLS", tools.path()).output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(said.contains("policy.js:54") && said.contains("SyntaxError: Unexpected token ';'"), "{said}");
    assert!(std::fs::read_dir(tools.path()).unwrap().next().is_none(), "nothing was installed");
}

#[test]
fn a_template_build_without_its_tools_names_what_is_missing_and_where_it_comes_from() {
    // A PATH with a shell and the core utilities only: no node, npm, python3 or cargo.
    let bin = tempfile::tempdir().unwrap();
    for tool in ["bash", "dirname", "cat", "find", "sort", "xargs", "sha256sum", "cut"] {
        let found = std::process::Command::new("bash").args(["-c", &format!("command -v {tool}")]).output().unwrap();
        let path = String::from_utf8_lossy(&found.stdout).trim().to_owned();
        std::os::unix::fs::symlink(path, bin.path().join(tool)).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    for (lang, missing, hint) in [
        ("js", "node", "Debian: apt-get install nodejs npm"),
        ("python", "python3", "python3-venv"),
        ("c", "python3", "python3-venv"),
        ("rust", "cargo", "rustup"),
    ] {
        let name = format!("bare-{lang}");
        let made = switchyard().args(["new", &name, "--lang", lang, "--dir"]).arg(dir.path()).output().unwrap();
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        let out = std::process::Command::new(bin.path().join("bash"))
            .arg(dir.path().join(&name).join("build.sh"))
            .env_clear()
            .env("PATH", bin.path())
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{lang}");
        assert!(said.contains(&format!("error: '{missing}' is needed to build this policy")), "{lang}: {said}");
        assert!(said.contains(hint), "{lang}: {said}");
        assert!(!said.contains("command not found"), "{lang}: {said}");
    }
}

#[test]
fn policy_test_runs_expectation_files_and_names_the_case_a_policy_fails() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("expect.toml");
    std::fs::write(
        &file,
        r#"
targets = ["primary", "backup"]
[[case]]
name = "an open breaker goes last"
health = { primary = "open" }
route = {}
expect = { decision = "send", targets = ["backup", "primary"] }
[[case]]
name = "a 503 is tried again soon"
on_attempt = { tried = ["primary"], status = 503 }
expect = { decision = "retry", max_delay_ms = 5000 }
[[case]]
name = "a wrong expectation"
on_attempt = { tried = ["primary"], status = 503 }
expect = { decision = "degrade", degrade = "cached" }
"#,
    )
    .unwrap();
    let out = switchyard()
        .args(["policy", "test"])
        .arg(plugin_artifact("failover"))
        .arg("--expect")
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("ok   an open breaker goes last — send to backup, primary"), "{stdout}");
    assert!(stdout.contains("ok   a 503 is tried again soon — retry on "), "{stdout}");
    assert!(stdout.contains("FAIL a wrong expectation — expected degrade; the policy said: retry on "), "{stdout}");
    assert!(stdout.contains("FAILED: 1 of 3 case(s)"), "{stdout}");

    // A mistake in the file is a usage error that names it.
    std::fs::write(&file, "[[case]]\nname = \"x\"\nroute = {}\nexpect = { decision = \"send\", colour = \"red\" }\n")
        .unwrap();
    let out = switchyard()
        .args(["policy", "test"])
        .arg(plugin_artifact("failover"))
        .arg("--expect")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `colour`"));
    // Outside a scaffolded folder, with no arguments: what to do instead.
    let out = switchyard().args(["policy", "test"]).current_dir(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("switchyard new"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn policy_keygen_and_sign_make_what_a_gateway_with_trusted_keys_needs() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("signing.key");
    let out = switchyard().args(["policy", "keygen"]).arg(&key).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let public = stdout.split('"').nth(1).unwrap().to_owned();
    assert!(stdout.starts_with("[policy]\ntrusted_keys = [\"ed25519:") && public.starts_with("ed25519:"), "{stdout}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600, "the key is the owner's only");
    }
    let again = switchyard().args(["policy", "keygen"]).arg(&key).output().unwrap();
    assert_eq!(again.status.code(), Some(64), "a key is never overwritten");

    let policy = dir.path().join("mine.wasm");
    std::fs::copy(plugin_artifact("failover"), &policy).unwrap();
    let out = switchyard().args(["policy", "sign"]).arg(&policy).arg("--key").arg(&key).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sig = std::fs::read_to_string(dir.path().join("mine.wasm.sig")).unwrap();
    let keys = [switchyard_policy_host::signature::TrustedKey::parse(&public).unwrap()];
    assert_eq!(switchyard_policy_host::signature::verify(&keys, &std::fs::read(&policy).unwrap(), &sig), Ok(()));

    // A config whose trusted key is not one is refused, naming it.
    let config = dir.path().join("switchyard.toml");
    std::fs::write(
        &config,
        "[policy]\ntrusted_keys = [\"ed25519:AAAA\"]\n[[providers]]\nname = \"p\"\napi = \"openai\"\nbase_url = \"http://127.0.0.1:1\"\n[[routes]]\nmodel = \"m\"\ntargets = [{ provider = \"p\", model = \"m\" }]\n",
    )
    .unwrap();
    let out = switchyard().args(["validate", "--config"]).arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("policy.trusted_keys: \"ed25519:AAAA\""));
}
