//! `resilient`: the policy the demo runs, built to ride out long outages.
//!
//! * `route`: targets whose breaker is open or whose provider asked for a wait
//!   go last. Among the rest, the lowest expected cost first: EWMA latency
//!   weighted by the recent error rate (`latency × (1 + 4 × error rate)`;
//!   targets with no history first, so they are measured), with a small
//!   share of requests (`explore`) sent to another available target so every
//!   estimate stays fresh. A non-streamed request is hedged: when the first
//!   target has not answered after its p95 latency (at least `min_hedge_ms`),
//!   the next one is asked too. When nothing is available at all, degrade to
//!   the response cache, else a 503 with the soonest wait as Retry-After.
//! * `on-attempt`: ordered failover (move on at once, then full-jitter
//!   backoff honouring Retry-After), and out of attempts or time, the cache,
//!   then a 503.
//!
//! Settings (`[policies.resilient]`), all optional: `max_attempts` (4),
//! `base_backoff_ms` (100), `max_backoff_ms` (2000), `per_try_timeout_ms`
//! (20000), `hedge` (true), `min_hedge_ms` (50), `explore` (0.05).

use std::sync::OnceLock;

use serde::Deserialize;
use switchyard_policy_sdk::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    max_attempts: u32,
    base_backoff_ms: u32,
    max_backoff_ms: u32,
    per_try_timeout_ms: u32,
    hedge: bool,
    min_hedge_ms: u32,
    explore: f64,
    same_target_retries: u32,
    max_same_target_wait_ms: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_attempts: 4,
            base_backoff_ms: 100,
            max_backoff_ms: 2000,
            per_try_timeout_ms: 20_000,
            hedge: true,
            min_hedge_ms: 50,
            explore: 0.05,
            same_target_retries: 1,
            max_same_target_wait_ms: 5000,
        }
    }
}

struct Config {
    settings: Settings,
    topology: Topology,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

fn config() -> &'static Config {
    CONFIG.get().expect("init runs before any decision")
}

/// Expected cost of sending to a target: latency weighted by its error rate.
fn cost(target: u32) -> f32 {
    host::health(target).map_or(0.0, |h| h.ewma_latency_ms * (1.0 + 4.0 * h.error_rate))
}

struct Resilient;

impl Guest for Resilient {
    fn init(settings: String, topology: Topology) -> Result<(), String> {
        let settings: Settings = serde_json::from_str(&settings).map_err(|e| format!("resilient settings: {e}"))?;
        if settings.max_attempts == 0 || settings.per_try_timeout_ms == 0 {
            return Err("resilient settings: max_attempts and per_try_timeout_ms must be at least 1".into());
        }
        if settings.base_backoff_ms > settings.max_backoff_ms || !(0.0..=1.0).contains(&settings.explore) {
            return Err("resilient settings: base_backoff_ms ≤ max_backoff_ms and explore within 0..=1".into());
        }
        let _ = CONFIG.set(Config { settings, topology });
        Ok(())
    }

    fn route(request: RequestInfo) -> RouteDecision {
        let cfg = config();
        let s = &cfg.settings;
        let route = &cfg.topology.routes[request.route as usize];
        let (mut up, down): (Vec<u32>, Vec<u32>) = route.targets.iter().partition(|&&t| is_available(t));
        if up.is_empty() {
            let soonest = route.targets.iter().map(|&t| wait_requested_ms(t)).min().unwrap_or(0);
            return RouteDecision::Degrade(Degrade::Cached(soonest.max(1000)));
        }
        let mut costs: Vec<(f32, u32)> = up.iter().map(|&t| (cost(t), t)).collect();
        costs.sort_by(|a, b| a.0.total_cmp(&b.0));
        up = costs.into_iter().map(|(_, t)| t).collect();
        if up.len() > 1 && host::random() < s.explore {
            let other = 1 + (host::random() * (up.len() - 1) as f64) as usize;
            let last = up.len() - 1;
            up.swap(0, other.min(last));
        }
        let hedge_after_ms = (s.hedge && !request.streaming && up.len() > 1)
            .then(|| host::health(up[0]).map_or(0.0, |h| h.latency_p95_ms))
            .filter(|&p95| p95 > 0.0)
            .map(|p95| (p95.ceil() as u32).max(s.min_hedge_ms));
        up.extend(down);
        RouteDecision::Send(Plan {
            targets: up,
            per_try_timeout_ms: s.per_try_timeout_ms.min(request.deadline_ms).max(1),
            hedge_after_ms,
        })
    }

    fn on_attempt(request: RequestInfo, outcome: AttemptOutcome) -> NextStep {
        let cfg = config();
        let s = &cfg.settings;
        let backoff = Backoff {
            max_attempts: s.max_attempts,
            base_backoff_ms: s.base_backoff_ms,
            max_backoff_ms: s.max_backoff_ms,
            same_target_retries: s.same_target_retries,
            max_same_target_wait_ms: s.max_same_target_wait_ms,
        };
        let route = &cfg.topology.routes[request.route as usize];
        failover_next_step(&backoff, route, &request, &outcome, Degrade::Cached)
    }
}

export_policy!(Resilient);
