//! What a gateway key and every limit cost a request, in process: the calls
//! the request path makes for them, timed in a loop — the key looked up by
//! its SHA-256, the tenant's admission (routes, budgets, concurrency,
//! request and token rates), a place at the provider's and the model's
//! quota gates and its release, and the settlement from the answer's usage.
//! (The HTTP rows measure the same end to end, within their noise.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_access::KeyRing;
use switchyard_access::gate::Gate;
use switchyard_config::{Priority, Quota};

const KEY: &str = "sy-bench000000000000000000000000000000000000000000";

pub struct AccessFigures {
    /// p50, p99 of one request's keys + limits work.
    pub per_request: (Duration, Duration),
    /// p50 of the key lookup alone (hash + map).
    pub lookup: Duration,
}

pub fn measure(n: usize) -> AccessFigures {
    let text = format!(
        "version = 1\n[[providers]]\nname = \"p\"\napi = \"openai\"\nbase_url = \"http://127.0.0.1:9\"\n\
         [[routes]]\nmodel = \"m\"\ntargets = [{{ provider = \"p\", model = \"x\" }}]\n\
         [[keys]]\nname = \"bench\"\nhash = {:?}\nrequests_per_minute = 100000000\ntokens_per_minute = 2000000000\n\
         max_concurrency = 10000\nroutes = [\"m\"]\npriority = \"high\"\ndaily_tokens = 1000000000000\n",
        switchyard_access::hash_line(KEY)
    );
    let config = switchyard_config::from_str(&text, "bench").expect("bench config");
    let ring = KeyRing::new(&config, None);
    let quota = Quota { rpm: Some(100_000_000), tpm: Some(2_000_000_000), max_concurrency: Some(10_000) };
    let (provider, model) = (Gate::new(quota), Gate::new(quota));
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::AUTHORIZATION, format!("Bearer {KEY}").parse().expect("header"));
    let mut samples = Vec::with_capacity(n);
    let mut lookups = Vec::with_capacity(n);
    for i in 0..n + 1000 {
        let started = Instant::now();
        let tenant = ring.authenticate(switchyard_wire::Api::OpenAi, &headers).expect("key").expect("tenant");
        let looked_up = started.elapsed();
        let admission = tenant.admit("m", 19, Instant::now(), time::OffsetDateTime::now_utc()).expect("admitted");
        let permits = [model.try_enter(Priority::High, 19), provider.try_enter(Priority::High, 19)];
        assert!(permits.iter().all(Option::is_some));
        drop(permits);
        admission.settle(5, 3, 0.0, time::OffsetDateTime::now_utc());
        provider.settle(8 - 19);
        model.settle(8 - 19);
        drop(admission);
        let took = started.elapsed();
        if i >= 1000 {
            samples.push(took);
            lookups.push(looked_up);
        }
    }
    samples.sort();
    lookups.sort();
    let _ = Arc::strong_count(&provider);
    AccessFigures {
        per_request: (crate::pct(&samples, 0.5), crate::pct(&samples, 0.99)),
        lookup: crate::pct(&lookups, 0.5),
    }
}
