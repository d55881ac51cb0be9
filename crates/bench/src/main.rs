//! `switchyard-bench`: measures, in one run on one machine,
//! 1. warm policy decision latency (`route`, `on-attempt`) of the embedded
//!    default policy, through the same pinned-policy path requests use;
//! 2. gateway added latency (sequential, one keep-alive connection per path,
//!    the paths interleaved request by request) and
//!    throughput (64 connections) against a direct call to the same loopback
//!    mock provider, and against an nginx hop when `nginx` is installed; and
//!    the cost of translation (an Anthropic client, the OpenAI-wire mock);
//! 3. the same policy in Rust, C, Python and JavaScript (the templates, built
//!    by `scripts/build-templates.sh`): size, load cold and from the compile
//!    cache, instantiation, warm decision latency;
//! 4. streams: the relay's per-event work against the relay before the
//!    streams work (same chunks, same run), a long stream's added time per
//!    event, and what a mid-stream recovery costs beyond the fallback's own
//!    time to first token (`--streams` for this table only);
//! 5. with `--fuel`: how long a looping policy runs before its fuel budget
//!    stops it, idle and with every core busy;
//! 6. with `--queue`: the memory 10,000 requests waiting for a provider's
//!    quota cost (both ends of each connection, in one process);
//! 7. with `--saturate SECONDS`: decisions that fell back under a saturating load;
//! 8. with `--idle SECONDS`: the `switchyard` binary's CPU while idle;
//! 9. with `--external SECONDS`: `wrk` from its own process (64
//!    connections, JSON and SSE) against the mock, an nginx hop and the
//!    `switchyard` binary, in alternating rounds of SECONDS: requests per
//!    second, latency, and each hop's CPU time per request; `--against
//!    BINARY` adds another build of switchyard as a fourth path, for an A/B
//!    of a change in the same run (`--hold SECONDS [--sse]`: the gateway and nginx alone under that
//!    load, user and system CPU apart, PIDs printed for `perf record -p`);
//! 10. with `--policy-memory SECONDS`: the binary's RSS with each
//!     language's template policy loaded and serving under that load,
//!     against the embedded policy alone;
//! 11. with `--callgrind N`: instructions per request (N sequential
//!     requests, JSON and SSE) of the `switchyard` binary and of nginx under
//!     valgrind's callgrind (`--keep DIR` keeps the dumps for `callgrind_annotate`);
//! 12. with `--open-streams [N h1|h2]`: slow streams held open at once
//!     (100 to 10,000) through the `switchyard` binary and through nginx:
//!     time to first byte and RSS per open stream;
//! 13. with `--soak SECONDS`: the `switchyard` binary's RSS under full load
//!     of questions never asked before (every answer a new cache entry),
//!     against the same run with the cache off (build it first:
//!     `cargo build --release -p switchyard`);
//! 14. with `--shared-state SECONDS`: `[state] backend = "memory"` against
//!     `"redis"` (a real redis-server): added latency per request, open and
//!     with a key's rate, and attempts at a failing provider over three
//!     instances (a storm of SECONDS) against one instance.
//!
//! Figures are printed as ratios against the baselines of the same run,
//! since absolute numbers on a shared 2-core machine move from run to run.
//! Run: `cargo run --release -p switchyard-bench` (`--quick` for a short run,
//! `--languages` for the language table only, `--templates DIR` for where the
//! built templates are; default `target/ci-templates`).

#![forbid(unsafe_code)]

mod access;
mod callgrind;
mod decision;
mod external;
mod fuel;
mod http_load;
mod idle;
mod languages;
mod many_streams;
mod nginx;
mod policy_memory;
mod queue;
mod shadow;
mod shared_state;
mod simulate;
mod soak;
mod streaming;

use std::time::Duration;

/// Percentile of sorted samples.
pub fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

/// `a - b` in µs, with its sign.
fn signed_us(a: Duration, b: Duration) -> String {
    format!("{:+.1} µs", (a.as_secs_f64() - b.as_secs_f64()) * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let scale = if quick { 1 } else { 5 };
    let templates = args
        .iter()
        .position(|a| a == "--templates")
        .and_then(|i| args.get(i + 1))
        .map_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ci-templates"), Into::into);
    println!("switchyard bench ({} run)\n", if quick { "quick" } else { "full" });
    if args.iter().any(|a| a == "--languages") {
        language_table(&templates, 10_000 * scale);
        return;
    }
    if let Some(secs) = args.iter().position(|a| a == "--soak").and_then(|i| args.get(i + 1)) {
        soak_table(Duration::from_secs(secs.parse().expect("--soak SECONDS")));
        return;
    }

    if let Some(i) = args.iter().position(|a| a == "--queue-phase") {
        let phase = match args.get(i + 1).map(String::as_str) {
            Some("direct") => queue::Phase::Direct,
            _ => queue::Phase::Gateway,
        };
        queue::run_phase(phase, args.get(i + 2).and_then(|n| n.parse().ok()).unwrap_or(10_000));
        return;
    }
    if let Some(secs) = args.iter().position(|a| a == "--idle").and_then(|i| args.get(i + 1)) {
        let f = idle::measure(Duration::from_secs(secs.parse().expect("--idle SECONDS")));
        println!(
            "## An idle gateway (the switchyard binary, one request answered, then none)\n\
             CPU over {:.0} s idle: {:.2} s = {:.3} % of a core\n",
            f.seconds,
            f.cpu,
            f.cpu * 100.0 / f.seconds.max(1e-9)
        );
        return;
    }
    if let Some(secs) = args.iter().position(|a| a == "--external").and_then(|i| args.get(i + 1)) {
        let against = args.iter().position(|a| a == "--against").and_then(|i| args.get(i + 1));
        external_table(secs.parse().expect("--external SECONDS"), against.map(std::path::Path::new));
        return;
    }
    if let Some(secs) = args.iter().position(|a| a == "--shared-state").and_then(|i| args.get(i + 1)) {
        let storm_for = Duration::from_secs(secs.parse().expect("--shared-state SECONDS"));
        if std::process::Command::new("redis-server").arg("--version").output().is_err() {
            println!("redis-server is needed: apt-get install redis-server");
            return;
        }
        let n = 3000 * scale;
        shared_state::print(&shared_state::measure(n, storm_for), n, storm_for);
        return;
    }
    if let Some(secs) = args.iter().position(|a| a == "--policy-memory").and_then(|i| args.get(i + 1)) {
        policy_memory_table(&templates, secs.parse().expect("--policy-memory SECONDS"));
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--open-streams") {
        // `--open-streams N h1|h2`: one level; `--open-streams`: all of them.
        let one = args.get(i + 1).and_then(|n| n.parse().ok()).map(|n| {
            let clients = match args.get(i + 2).map(String::as_str) {
                Some("h2") => many_streams::Clients::Http2(100),
                _ => many_streams::Clients::Http1,
            };
            (n, clients)
        });
        open_streams_table(one);
        return;
    }
    if let Some(secs) = args.iter().position(|a| a == "--hold").and_then(|i| args.get(i + 1)) {
        external::hold(args.iter().any(|a| a == "--sse"), secs.parse().expect("--hold SECONDS"));
        return;
    }
    if let Some(n) = args.iter().position(|a| a == "--callgrind").and_then(|i| args.get(i + 1)) {
        let keep = args.iter().position(|a| a == "--keep").and_then(|i| args.get(i + 1)).map(std::path::Path::new);
        callgrind_table(n.parse().expect("--callgrind REQUESTS"), keep);
        return;
    }
    if let Some(secs) = args.iter().position(|a| a == "--saturate").and_then(|i| args.get(i + 1)) {
        let secs: u64 = secs.parse().expect("--saturate SECONDS");
        println!("## Fallbacks under a saturating load (64 connections, {secs} s each, default decision budget)");
        println!("| policy | requests | decisions answered by a fallback |");
        println!("|---|---|---|");
        for policy in ["failover", "resilient"] {
            let (requests, failed) = http_load::saturate(policy, Duration::from_secs(secs));
            println!("| {policy} | {requests:.0} | {failed} |");
        }
        println!();
        return;
    }
    if args.iter().any(|a| a == "--fuel") {
        fuel_table(20 * scale);
        return;
    }
    if args.iter().any(|a| a == "--queue") {
        access_line();
        println!();
        queue_table();
        return;
    }
    if let Some(secs) = args.iter().position(|a| a == "--shadow").and_then(|i| args.get(i + 1)) {
        let each = Duration::from_secs(secs.parse().expect("--shadow SECONDS"));
        println!("## Shadow mode's cost on the request path (failover, with and without resilient shadowing it)");
        println!("| run | added p50 plain | added p50 shadowed | ratio | req/s plain | req/s shadowed | ratio |");
        println!("|---|---|---|---|---|---|---|");
        for run in 1..=3 {
            let c = shadow::measure(3000, each);
            let added = |p: Duration| p.saturating_sub(c.direct_p50);
            let (a, b) = (added(c.plain_p50), added(c.shadowed_p50));
            println!(
                "| {run} | {} | {} | {:.3}× | {:.0} | {:.0} | {:.3}× |",
                us(a),
                us(b),
                b.as_secs_f64() / a.as_secs_f64().max(1e-9),
                c.plain_rps,
                c.shadowed_rps,
                c.shadowed_rps / c.plain_rps.max(1e-9)
            );
        }
        return;
    }
    if args.iter().any(|a| a == "--simulate") {
        println!("## `switchyard simulate`: one hour at 50 requests/s (multi-hour-5xx, half streamed)");
        println!("| run | requests | wall time | simulated requests per wall second | simulated / wall time |");
        println!("|---|---|---|---|---|");
        for run in 1..=3 {
            let s = simulate::measure();
            println!(
                "| {run} | {} | {:.1} s | {:.0} | {:.0}× |",
                s.requests,
                s.wall.as_secs_f64(),
                s.requests as f64 / s.wall.as_secs_f64(),
                s.simulated.as_secs_f64() / s.wall.as_secs_f64()
            );
        }
        return;
    }
    if args.iter().any(|a| a == "--streams") {
        stream_table(scale);
        return;
    }
    if args.iter().any(|a| a == "--telemetry") {
        let h = http_load::telemetry_cost(2_000 * scale as usize, Duration::from_secs(2 * scale as u64));
        telemetry_line(&h);
        return;
    }

    println!("## Policy decision latency (embedded policies, warm instance pool)");
    println!("| policy | call | p50 | p99 | calls |");
    println!("|---|---|---|---|---|");
    for policy in ["failover", "resilient"] {
        let d = decision::measure(policy, 20_000 * scale);
        println!("| {policy} | route | {} | {} | {} |", us(d.route_p50), us(d.route_p99), d.calls);
        println!("| {policy} | on-attempt | {} | {} | {} |", us(d.attempt_p50), us(d.attempt_p99), d.calls);
    }
    println!();

    let h = http_load::measure(2_000 * scale as usize, Duration::from_secs(2 * scale as u64));
    println!("## Gateway overhead (non-streaming chat completion, loopback mock provider)");
    println!("| path | p50 | p99 | added p50 | added p99 | throughput (64 conns) |");
    println!("|---|---|---|---|---|---|");
    for row in &h.rows {
        println!(
            "| {} | {} | {} | {} | {} | {:.0} req/s |",
            row.name,
            us(row.p50),
            us(row.p99),
            us(row.p50.saturating_sub(h.rows[0].p50)),
            us(row.p99.saturating_sub(h.rows[0].p99)),
            row.throughput
        );
    }
    println!();
    let direct = &h.rows[0];
    let gateway = h.rows.iter().find(|r| r.name == "switchyard").expect("gateway row");
    println!("gateway throughput / direct: {:.2}", gateway.throughput / direct.throughput);
    if let Some(resilient) = h.rows.iter().find(|r| r.name == "switchyard (resilient)") {
        let added = |r: &http_load::Row| r.p50.as_secs_f64() - direct.p50.as_secs_f64();
        println!(
            "resilient vs failover: added latency p50 {:.2}x, throughput {:.2}; resilient throughput / direct: {:.2}",
            added(resilient) / added(gateway).max(1e-9),
            resilient.throughput / gateway.throughput,
            resilient.throughput / direct.throughput
        );
    }
    if let Some(translated) = h.rows.iter().find(|r| r.name == http_load::TRANSLATED) {
        let added = |r: &http_load::Row| r.p50.as_secs_f64() - direct.p50.as_secs_f64();
        println!(
            "translated (Anthropic client, OpenAI provider) vs passthrough: added latency p50 {:.2}x (+{}), throughput {:.2}",
            added(translated) / added(gateway).max(1e-9),
            us(translated.p50.saturating_sub(gateway.p50)),
            translated.throughput / gateway.throughput
        );
    }
    telemetry_line(&h);
    access_line();
    if let Some(keyed) = h.rows.iter().find(|r| r.name == http_load::KEYED) {
        println!(
            "gateway key + all limits on vs the same gateway without: added latency p50 {} (p99 {}), throughput {:.2}",
            signed_us(keyed.p50, gateway.p50),
            signed_us(keyed.p99, gateway.p99),
            keyed.throughput / gateway.throughput
        );
    }
    if let Some(nginx) = h.rows.iter().find(|r| r.name == "nginx") {
        let added =
            |r: &http_load::Row, p: fn(&http_load::Row) -> Duration| p(r).as_secs_f64() - p(direct).as_secs_f64();
        // A ratio over an nginx hop that added (next to) nothing in this run means nothing.
        let ratio = |p: fn(&http_load::Row) -> Duration| match added(nginx, p) {
            hop if hop < 1e-6 => "n/a (nginx added < 1 µs in this run: noise)".to_owned(),
            hop => format!("{:.2}x", added(gateway, p) / hop),
        };
        println!(
            "added latency vs nginx's: p50 {}, p99 {}; throughput vs nginx: {:.2}",
            ratio(|r| r.p50),
            ratio(|r| r.p99),
            gateway.throughput / nginx.throughput
        );
    } else {
        println!("nginx not installed: no nginx row (apt-get install nginx to add it)");
    }
    println!();
    language_table(&templates, 10_000 * scale);
}

fn external_table(secs: u64, against: Option<&std::path::Path>) {
    if !external::ensure_tools() {
        println!("wrk and nginx are needed: apt-get install wrk nginx-light");
        return;
    }
    let rounds = 5;
    println!(
        "## Load from outside (wrk: 1 thread, 64 connections; {rounds} alternating rounds of {secs} s per path; \
         mock, nginx, gateway and wrk share the machine)"
    );
    println!("| request | path | req/s | p50 | p99 | added p50 | CPU per request | errors |");
    println!("|---|---|---|---|---|---|---|---|");
    let table = external::measure(64, rounds, secs, against);
    for t in &table {
        let mut paths = vec![("direct", &t.direct), ("nginx", &t.nginx), ("switchyard", &t.gateway)];
        if let Some(other) = &t.against {
            paths.push(("switchyard (--against)", other));
        }
        for (name, l) in paths {
            println!(
                "| {} | {name} | {:.0} | {} | {} | {} | {} | {} |",
                t.kind,
                l.rps(),
                us(l.p50),
                us(l.p99),
                if name == "direct" { "—".to_owned() } else { signed_us(l.p50, t.direct.p50) },
                l.cpu_per_request_us().map_or("—".to_owned(), |c| format!("{c:.1} µs")),
                l.errors
            );
        }
    }
    println!();
    for t in &table {
        let added = |l: &external::Load| l.p50.as_secs_f64() - t.direct.p50.as_secs_f64();
        let cpu = |l: &external::Load| l.cpu_per_request_us().unwrap_or(0.0);
        println!(
            "{}: switchyard vs nginx: req/s {:.2}x, added p50 {:.2}x, CPU per request {:.2}x",
            t.kind,
            t.gateway.rps() / t.nginx.rps().max(1e-9),
            added(&t.gateway) / added(&t.nginx).max(1e-6),
            cpu(&t.gateway) / cpu(&t.nginx).max(1e-9)
        );
        if let Some(other) = &t.against {
            println!(
                "{}: switchyard vs the --against build: req/s {:.2}x, added p50 {:.2}x, CPU per request {:.2}x",
                t.kind,
                t.gateway.rps() / other.rps().max(1e-9),
                added(&t.gateway) / added(other).max(1e-6),
                cpu(&t.gateway) / cpu(other).max(1e-9)
            );
        }
    }
    println!();
}

fn open_streams_table(one: Option<(usize, many_streams::Clients)>) {
    if !external::ensure_tools() {
        println!("nginx is needed: apt-get install nginx-light");
        return;
    }
    let levels = one.map_or_else(|| many_streams::LEVELS.to_vec(), |level| vec![level]);
    many_streams::print(&many_streams::measure(&levels));
}

fn policy_memory_table(templates: &std::path::Path, secs: u64) {
    if !external::ensure_tools() {
        println!("wrk is needed: apt-get install wrk");
        return;
    }
    println!("## Memory per loaded policy (the switchyard binary; wrk, 64 connections, {secs} s; RSS from /proc)");
    println!(
        "| policy serving the route | RSS just after compiling it | RSS restarted, loaded from the compile cache | largest RSS under load | the policy's cost under load | of which mapped from files / private | requests (errors) | instances retired |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let base = policy_memory::measure("embedded failover (Rust) only: the baseline", None, secs);
    let mib = |kib: u64| kib as f64 / 1024.0;
    let row = |m: &policy_memory::PolicyMemory, cost: String, split: String| {
        println!(
            "| {} | {:.1} MiB | {:.1} MiB | {:.1} MiB | {cost} | {split} | {} ({}) | {} |",
            m.label,
            mib(m.compiled_kib),
            mib(m.idle_kib),
            mib(m.loaded_kib),
            m.requests,
            m.errors,
            m.retired
        );
    };
    row(&base, "—".to_owned(), "—".to_owned());
    for lang in languages::LANGUAGES {
        let file = languages::component(templates, lang);
        if !file.exists() {
            println!("(not built: {}; run scripts/build-templates.sh)", file.display());
            continue;
        }
        let m = policy_memory::measure(&format!("{lang} template, dropped in"), Some(&file), secs);
        let cost = format!("{:+.1} MiB", mib(m.loaded_kib) - mib(base.loaded_kib));
        let file = mib(m.loaded_file_kib) - mib(base.loaded_file_kib);
        let private = mib(m.loaded_kib - m.loaded_file_kib) - mib(base.loaded_kib - base.loaded_file_kib);
        row(&m, cost, format!("{file:+.1} / {private:+.1} MiB"));
    }
    println!();
}

fn callgrind_table(n: usize, keep: Option<&std::path::Path>) {
    if !callgrind::available() {
        println!("valgrind is needed: apt-get install valgrind");
        return;
    }
    let _ = external::ensure_tools();
    let c = callgrind::measure(n, keep);
    println!(
        "## Instructions per request (callgrind, {} sequential requests on one keep-alive connection)",
        c.requests
    );
    println!("| request | switchyard | nginx | switchyard / nginx |");
    println!("|---|---|---|---|");
    for (kind, gateway, nginx) in &c.rows {
        println!("| {kind} | {gateway:.0} | {nginx:.0} | {:.2} |", gateway / nginx.max(1.0));
    }
    println!();
}

/// What a gateway key and every limit cost a request, in process.
fn access_line() {
    let a = access::measure(200_000);
    println!(
        "gateway key + all limits, in process (key lookup, admission, two quota gates, settlement): p50 {} (key lookup {}), p99 {}",
        us(a.per_request.0),
        us(a.lookup),
        us(a.per_request.1)
    );
}

fn fuel_table(n: usize) {
    let f = fuel::measure(n);
    println!("## A looping policy against its fuel budget (chaos fixture, `decision_timeout_ms = 5`)");
    println!("| machine | budget | time to the stop, p50 | max | fuel per ms (p50) |");
    println!("|---|---|---|---|---|");
    for (name, (p50, max)) in [("idle", f.idle), ("every core busy (2 spinning threads per core)", f.busy)] {
        println!(
            "| {name} | {} | {} | {} | {:.0} |",
            f.budget,
            ms_frac(p50),
            ms_frac(max),
            f.budget as f64 / (p50.as_secs_f64() * 1e3).max(1e-9)
        );
    }
    println!("stopped by the budget (not the wall-clock backstop): {} of {}\n", f.by_budget.0, f.by_budget.1);
}

fn ms_frac(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn queue_table() {
    println!("## Memory of waiting requests (10,000 queued for a provider's quota)");
    println!("100 HTTP/2 clients with 100 requests each; each row a process of its own; RSS from /proc.");
    let direct = queue::measure(queue::Phase::Direct, 10_000);
    let queued = queue::measure(queue::Phase::Gateway, 10_000);
    let per = |q: &queue::QueueFigures| q.rss_waiting.saturating_sub(q.rss_before) as f64 / q.waiting.max(1) as f64;
    println!("| where they wait | waiting | RSS idle | RSS while waiting | per waiting request |");
    println!("|---|---|---|---|---|");
    for (name, q) in
        [("a provider that never answers (baseline: clients + a server)", &direct), ("the gateway's queue", &queued)]
    {
        println!(
            "| {name} | {} | {:.1} MiB | {:.1} MiB | {:.1} KiB |",
            q.waiting,
            q.rss_before as f64 / 1024.0,
            q.rss_waiting as f64 / 1024.0,
            per(q)
        );
    }
    println!();
    println!(
        "the gateway's own cost per waiting request (queue row − baseline row): {:.1} KiB; \
         10,000 waiting: {:.0} MiB, bounded by [queue] max_waiting per route",
        per(&queued) - per(&direct),
        (per(&queued) - per(&direct)) * 10_000.0 / 1024.0
    );
    println!();
}

fn soak_table(for_how_long: Duration) {
    println!("## Memory under churn (the switchyard binary, 64 connections, every question new)");
    println!("| run | requests (not 200) | req/s | RSS after warm-up | largest RSS after | growth | flat (≤ 10 %) |");
    println!("|---|---|---|---|---|---|---|");
    for (label, ttl_ms) in [("cache off (ttl_ms = 0)", 0), ("cache on (defaults)", 300_000)] {
        let run = soak::run(label, ttl_ms, for_how_long);
        let (start, max) = run.after_warm_up();
        println!(
            "| {} | {} ({}) | {:.0} | {:.1} MiB | {:.1} MiB | {:+.1} % | {} |",
            run.label,
            run.requests,
            run.failed,
            run.requests as f64 / run.seconds,
            start as f64 / 1024.0,
            max as f64 / 1024.0,
            (run.growth() - 1.0) * 100.0,
            if run.growth() <= 1.10 { "yes" } else { "NO" }
        );
        let curve: Vec<String> =
            run.samples.iter().map(|(t, kib)| format!("{t:.0}s {:.1}", *kib as f64 / 1024.0)).collect();
        eprintln!("{label}: RSS MiB over time: {}", curve.join(", "));
    }
    println!();
}

fn language_table(dir: &std::path::Path, calls: usize) {
    println!("## The same policy in each language (templates; warm instance pool, 5 ms decision deadline)");
    println!(
        "| language | component | load, cold | load, cached | instantiate | route p50 / p99 | on-attempt p50 / p99 | `policy check`: route p50 / p99 | `policy check`: on-attempt p50 / p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut missing = Vec::new();
    for lang in languages::LANGUAGES {
        let file = languages::component(dir, lang);
        if !file.exists() {
            missing.push(file);
            continue;
        }
        let r = languages::measure(lang, &file, calls);
        println!(
            "| {} | {} KiB | {} | {} | {} | {} / {} | {} / {} | {} / {} | {} / {} |",
            r.lang,
            r.size.div_ceil(1024),
            ms(r.cold_load),
            ms(r.cached_load),
            us(r.instantiate),
            us(r.route.0),
            us(r.route.1),
            us(r.on_attempt.0),
            us(r.on_attempt.1),
            us(r.check_route.0),
            us(r.check_route.1),
            us(r.check_on_attempt.0),
            us(r.check_on_attempt.1)
        );
    }
    for file in missing {
        println!("(not built: {}; run scripts/build-templates.sh)", file.display());
    }
    println!();
}

fn stream_table(scale: usize) {
    let s = streaming::measure(scale);
    println!("## Streams");
    println!("| what | figure |");
    println!("|---|---|");
    println!("| relay scan per event, before (DoneDetector over every byte) | {:.0} ns |", s.scan_old_ns);
    println!("| relay scan per event, now (whole events cut, transcript kept) | {:.0} ns |", s.scan_new_ns);
    println!("| 1000-event stream, per event: direct | {:.2} µs |", s.event_direct_us);
    println!("| 1000-event stream, per event: through the gateway | {:.2} µs |", s.event_gateway_us);
    let (gap, ttft) = (s.recovery_gap, s.backup_ttft);
    println!("| recovery: the client's gap at the break (p50 / p99) | {} / {} |", us(gap.0), us(gap.1));
    println!("| recovery: the backup's own time to first token (p50 / p99) | {} / {} |", us(ttft.0), us(ttft.1));
    let over = |a: Duration, b: Duration| a.as_secs_f64() * 1e6 - b.as_secs_f64() * 1e6;
    println!(
        "| recovery: gap − the backup's time to first token (p50 / p99) | {:+.1} µs / {:+.1} µs |",
        over(gap.0, ttft.0),
        over(gap.1, ttft.1)
    );
    println!();
    println!(
        "relay scan now / before: {:.2} (the rest of the relay's per-event work did not change); \
         a long stream through the gateway / direct: {:.2} (the relay forwards what arrives together as one chunk)",
        s.scan_new_ns / s.scan_old_ns.max(1.0),
        s.event_gateway_us / s.event_direct_us.max(1e-9)
    );
    println!();
}

/// Metrics and the access log on vs both off (the budget: ≤ 5 %
/// latency, ≤ 10 % throughput).
fn telemetry_line(h: &http_load::HttpFigures) {
    let logged = h.rows.iter().find(|r| r.name == http_load::LOGGED);
    let quiet = h.rows.iter().find(|r| r.name == http_load::QUIET);
    if let (Some(logged), Some(quiet)) = (logged, quiet) {
        let (on, off, twin) = h.telemetry_throughput;
        println!(
            "metrics + access log (to a file) on vs both off: latency p50 {:.3}x (+{}), p99 {:.3}x (interleaved requests); \
             throughput {:.3}x ({on:.0} vs {off:.0} req/s, median of 5 alternating rounds each); \
             noise: an identical twin of the off gateway measured {:.3}x of it in the same rounds",
            logged.p50.as_secs_f64() / quiet.p50.as_secs_f64().max(1e-9),
            us(logged.p50.saturating_sub(quiet.p50)),
            logged.p99.as_secs_f64() / quiet.p99.as_secs_f64().max(1e-9),
            on / off.max(1e-9),
            twin / off.max(1e-9)
        );
    }
}
