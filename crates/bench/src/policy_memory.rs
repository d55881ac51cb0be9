//! What a loaded policy costs in memory, per language: the `switchyard`
//! binary as its own process, once per language with that language's
//! template policy (`scripts/build-templates.sh`) dropped into its policy
//! folder and serving the route, and once with only the embedded Rust
//! policy (the baseline). Each runs under `wrk` (64 connections) for the
//! same time; its RSS is read from `/proc` as it runs. The largest RSS under
//! load, less the baseline's, is what the loaded policy costs (compiled
//! code as mapped, warm instances, their memory); apart, how much of it is
//! mapped from files (the compiled policy's code, read from the compile
//! cache: page cache, shared between processes, reclaimable) and how much
//! is the process's own.

use std::path::Path;
use std::time::{Duration, Instant};

use switchyard_testkit::{MockProvider, chat_body};

use crate::external::{run_wrk_load, script};

pub struct PolicyMemory {
    pub label: String,
    /// RSS once the policy, just compiled, answered its first request, KiB.
    pub compiled_kib: u64,
    /// The same after a restart that loaded it from the compile cache, KiB.
    pub idle_kib: u64,
    /// Largest RSS under load, KiB.
    pub loaded_kib: u64,
    /// Of that, mapped from files (the binary, compiled policies), KiB.
    pub loaded_file_kib: u64,
    pub requests: u64,
    pub errors: u64,
    /// Warm instances dropped under the load because their memory grew
    /// (`switchyard_policy_instances_retired_total`).
    pub retired: u64,
}

/// One gateway: `component` (a template's `.wasm`) serving the route, or
/// the embedded default policy when `None`.
pub fn measure(label: &str, component: Option<&Path>, secs: u64) -> PolicyMemory {
    let rt = crate::external::mock_runtime();
    let mock = rt.block_on(MockProvider::start("mock"));
    let dir = tempfile::tempdir().expect("temp dir");
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).expect("policy dir");
    let policy_line = match component {
        Some(file) => {
            let name = file.file_name().expect("a file name");
            std::fs::copy(file, policies.join(name)).expect("copy the component");
            let stem = file.file_stem().and_then(|s| s.to_str()).expect("NAME.wasm").to_owned();
            format!("policy = {stem:?}\n")
        }
        None => String::new(),
    };
    let port = crate::soak::free_port();
    let admin = crate::soak::free_port();
    let config = format!(
        "listen = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin}\"\n[policy]\ndir = \"policies\"\n[[providers]]\nname = \"mock\"\napi = \"openai\"\n\
         base_url = {:?}\n[[routes]]\nmodel = \"gpt-4o-mini\"\n{policy_line}\
         targets = [{{ provider = \"mock\", model = \"gpt-4o-mini\" }}]\n",
        mock.url()
    );
    let path = dir.path().join("switchyard.toml");
    std::fs::write(&path, config).expect("config");
    let url = format!("http://127.0.0.1:{port}");
    let wanted = component.and_then(|f| f.file_stem()).and_then(|s| s.to_str()).unwrap_or("failover").to_owned();
    // First start: the policy is compiled (and cached); then a restart loads it from the cache.
    let first = crate::external::start_gateway(&path, port, &[], Duration::from_secs(120));
    wait_until_serving(&rt, &url, &wanted);
    let compiled_kib = crate::soak::rss_kib(first.0.id());
    drop(first);
    let gateway = crate::external::start_gateway(&path, port, &[], Duration::from_secs(120));
    wait_until_serving(&rt, &url, &wanted);
    std::thread::sleep(Duration::from_secs(1));
    let pid = gateway.0.id();
    let idle_kib = crate::soak::rss_kib(pid);
    let script_path = dir.path().join("load.lua");
    std::fs::write(&script_path, script(&chat_body("gpt-4o-mini", false))).expect("script");
    let target = format!("{url}/v1/chat/completions");
    let (requests, errors, (loaded_kib, loaded_file_kib)) = std::thread::scope(|s| {
        let load = s.spawn(|| run_wrk_load(&script_path, &target, 64, secs));
        let read = || (crate::soak::rss_kib(pid), crate::soak::rss_file_kib(pid));
        let mut largest = (idle_kib, 0);
        while !load.is_finished() {
            largest = largest.max(read());
            std::thread::sleep(Duration::from_millis(100));
        }
        let (requests, errors) = load.join().expect("wrk");
        (requests, errors, largest.max(read()))
    });
    let metrics = rt.block_on(switchyard_testkit::get(&format!("http://127.0.0.1:{admin}"), "/metrics")).body;
    let counted = format!("switchyard_policy_instances_retired_total{{policy=\"{wanted}\"}} ");
    let retired = metrics.lines().find_map(|l| l.strip_prefix(&counted)).and_then(|n| n.parse().ok()).unwrap_or(0);
    PolicyMemory {
        label: label.to_owned(),
        compiled_kib,
        idle_kib,
        loaded_kib,
        loaded_file_kib,
        requests,
        errors,
        retired,
    }
}

/// Waits until `wanted` (a policy name) answers at `url` (a dropped-in
/// policy is compiled after startup).
fn wait_until_serving(rt: &tokio::runtime::Runtime, url: &str, wanted: &str) {
    let started = Instant::now();
    loop {
        let answer = rt.block_on(switchyard_testkit::post_chat(url, "gpt-4o-mini"));
        let serving = answer.header("x-switchyard-policy");
        if answer.status == 200 && serving.starts_with(&format!("{wanted}@")) {
            break;
        }
        let waited = started.elapsed();
        assert!(waited < Duration::from_secs(300), "{wanted} never served ({} by {serving:?})", answer.status);
        std::thread::sleep(Duration::from_millis(200));
    }
}
