//! The same policy written in each language (the templates in
//! `plugins/templates/`, built by `scripts/build-templates.sh`): component
//! size, cold load (compile + instantiate + init + load-time checks), load
//! from the compile cache, instantiation, and warm decision latency through
//! the request path's pinned-policy calls.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_policy_host::*;

pub struct LanguageRow {
    pub lang: &'static str,
    pub size: u64,
    pub cold_load: Duration,
    pub cached_load: Duration,
    pub instantiate: Duration,
    pub route: (Duration, Duration),
    pub on_attempt: (Duration, Duration),
}

pub const LANGUAGES: [&str; 4] = ["rust", "c", "python", "js"];

/// Where `scripts/build-templates.sh DIR` leaves `lang`'s component.
pub fn component(dir: &Path, lang: &str) -> std::path::PathBuf {
    dir.join(format!("{lang}-policy")).join(format!("{lang}-policy.wasm"))
}

fn host(cache_dir: &Path) -> Arc<PolicyHost> {
    let t = |p: &str| Target { provider: p.into(), model: "gpt-4o-mini".into() };
    let options = HostOptions {
        topology: Topology {
            targets: vec![t("primary"), t("backup"), t("local")],
            routes: vec![RouteInfo { model: "gpt-4o-mini".into(), targets: vec![0, 1, 2] }],
        },
        settings: Default::default(),
        limits: Limits { decision_timeout: Duration::from_millis(5), memory_limit_bytes: 64 << 20 },
        cache_dir: Some(cache_dir.to_owned()),
    };
    PolicyHost::new(options, Arc::new(HealthBook::new(3))).expect("policy host")
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    (crate::pct(&samples, 0.5), crate::pct(&samples, 0.99))
}

pub fn measure(lang: &'static str, file: &Path, calls: usize) -> LanguageRow {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let name = switchyard_policy_host::host::policy_name(file).expect("NAME.wasm");
        let cache = tempfile::tempdir().expect("cache dir");
        let origin = || PolicyOrigin::File(file.to_owned());

        let started = Instant::now();
        let (_, from_cache) = host(cache.path()).prepare(&name, bytes.clone(), origin()).await.expect("cold load");
        let cold_load = started.elapsed();
        assert!(!from_cache, "a fresh cache dir served {name}");

        let host = host(cache.path());
        let started = Instant::now();
        let (version, from_cache) = host.prepare(&name, bytes.clone(), origin()).await.expect("cached load");
        let cached_load = started.elapsed();
        assert!(from_cache, "{name} was not loaded from the compile cache");

        let mut instantiations = Vec::new();
        for _ in 0..20 {
            instantiations.push(version.warm_instance().await.expect("instantiate"));
        }

        host.load_file(file).await.expect("load").expect("installed");
        let request = RequestInfo {
            api: Api::OpenaiChat,
            route: 0,
            streaming: false,
            estimated_input_tokens: 250,
            deadline_ms: 30_000,
        };
        let outcome = AttemptOutcome {
            target: 0,
            attempt: 1,
            tried: vec![0],
            kind: OutcomeKind::Overloaded,
            http_status: Some(503),
            retry_after_ms: None,
            elapsed_ms: 12,
        };
        let pinned = host.pin(&name, CallContext::default());
        for _ in 0..1000 {
            pinned.route(&request).await;
            pinned.on_attempt(&request, &outcome).await;
        }
        let (mut route, mut attempt) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
        for _ in 0..calls {
            let s = Instant::now();
            std::hint::black_box(pinned.route(&request).await);
            route.push(s.elapsed());
            let s = Instant::now();
            std::hint::black_box(pinned.on_attempt(&request, &outcome).await);
            attempt.push(s.elapsed());
        }
        let failed = host.failed_decisions();
        assert!(failed * 200 <= 2 * calls as u64, "{name}: {failed} of {} decisions failed", 2 * calls);
        LanguageRow {
            lang,
            size: bytes.len() as u64,
            cold_load,
            cached_load,
            instantiate: percentiles(instantiations).0,
            route: percentiles(route),
            on_attempt: percentiles(attempt),
        }
    })
}
