//! The same policy written in each language (the templates in
//! `plugins/templates/`, built by `scripts/build-templates.sh`): component
//! size, cold load (compile + instantiate + init + load-time checks), load
//! from the compile cache, instantiation, and warm decision latency through
//! the request path's pinned-policy calls — beside what `switchyard policy
//! check` reports for the same component in the same run.

use std::path::Path;
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
    /// What `switchyard policy check` prints for the same component in the
    /// same run: its 4000 warm decisions, no warm-up, varied health.
    pub check_route: (Duration, Duration),
    pub check_on_attempt: (Duration, Duration),
}

pub const LANGUAGES: [&str; 4] = ["rust", "c", "python", "js"];

/// Where `scripts/build-templates.sh DIR` leaves `lang`'s component.
pub fn component(dir: &Path, lang: &str) -> std::path::PathBuf {
    dir.join(format!("{lang}-policy")).join(format!("{lang}-policy.wasm"))
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
        let (_, from_cache) = crate::decision::host(Some(cache.path().to_owned()))
            .prepare(&name, bytes.clone(), origin())
            .await
            .expect("cold load");
        let cold_load = started.elapsed();
        assert!(!from_cache, "a fresh cache dir served {name}");

        let host = crate::decision::host(Some(cache.path().to_owned()));
        let started = Instant::now();
        let (version, from_cache) = host.prepare(&name, bytes.clone(), origin()).await.expect("cached load");
        let cached_load = started.elapsed();
        assert!(from_cache, "{name} was not loaded from the compile cache");

        let mut instantiations = Vec::new();
        for _ in 0..20 {
            instantiations.push(version.warm_instance().await.expect("instantiate"));
        }

        let installed = host.load_file(file).await.expect("load").expect("installed");
        let (route, attempt) = crate::decision::time_decisions(&host, &name, calls).await;
        let check = host.conformance(&installed).await;
        LanguageRow {
            lang,
            size: bytes.len() as u64,
            cold_load,
            cached_load,
            instantiate: percentiles(instantiations).0,
            route: percentiles(route),
            on_attempt: percentiles(attempt),
            check_route: check.route,
            check_on_attempt: check.on_attempt,
        }
    })
}
