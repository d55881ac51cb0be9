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
//! * `on-stream-break`: as `failover` (continue on the next available
//!   target, restart when a continuation is refused or a tool call broke).
//!
//! Settings (`[policies.resilient]`), all optional: `hedge` (true),
//! `min_hedge_ms` (50), `explore` (0.05), and every [`FailoverSettings`] key:
//! `max_attempts` (4), `base_backoff_ms` (100), `max_backoff_ms` (2000),
//! `same_target_retries` (1), `max_same_target_wait_ms` (5000), `recovery`
//! (`"continue"`), `max_recoveries` (2), attempt limits (unset: the route's).

use std::sync::OnceLock;

use serde::Deserialize;
use switchyard_policy_sdk::*;

/// Resilient's own settings; the rest are [`FailoverSettings`].
#[derive(Deserialize)]
#[serde(default)]
struct Own {
    hedge: bool,
    min_hedge_ms: u32,
    explore: f64,
}

impl Default for Own {
    fn default() -> Self {
        Own { hedge: true, min_hedge_ms: 50, explore: 0.05 }
    }
}

struct Config {
    own: Own,
    failover: FailoverSettings,
    topology: Topology,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

fn config() -> &'static Config {
    CONFIG.get().expect("init runs before any decision")
}

/// Splits the settings JSON into resilient's own keys and the failover rest.
fn parse(json: &str) -> Result<(Own, FailoverSettings), String> {
    let mut all: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(json).map_err(|e| format!("resilient settings: {e}"))?;
    let mut own = serde_json::Map::new();
    for key in ["hedge", "min_hedge_ms", "explore"] {
        if let Some(v) = all.remove(key) {
            own.insert(key.to_owned(), v);
        }
    }
    let own: Own = serde_json::from_value(own.into()).map_err(|e| format!("resilient settings: {e}"))?;
    if !(0.0..=1.0).contains(&own.explore) {
        return Err("resilient settings: explore must be within 0..=1".into());
    }
    let rest = serde_json::Value::Object(all).to_string();
    Ok((own, FailoverSettings::parse("resilient", &rest)?))
}

/// Expected cost of sending to a target: latency weighted by its error rate.
fn cost(target: u32) -> f32 {
    host::health(target).map_or(0.0, |h| h.ewma_latency_ms * (1.0 + 4.0 * h.error_rate))
}

struct Resilient;

impl Guest for Resilient {
    fn init(settings: String, topology: Topology) -> Result<(), String> {
        let (own, failover) = parse(&settings)?;
        let _ = CONFIG.set(Config { own, failover, topology });
        Ok(())
    }

    fn route(request: RequestInfo) -> RouteDecision {
        let cfg = config();
        let s = &cfg.own;
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
        RouteDecision::Send(Plan { targets: up, limits: cfg.failover.limits(), hedge_after_ms })
    }

    fn on_attempt(request: RequestInfo, outcome: AttemptOutcome) -> NextStep {
        let cfg = config();
        let route = &cfg.topology.routes[request.route as usize];
        failover_next_step(&cfg.failover.backoff(), route, &request, &outcome, Degrade::Cached)
    }

    fn on_stream_break(request: RequestInfo, broken: StreamBreak) -> Recovery {
        let cfg = config();
        cfg.failover.recover(&cfg.topology.routes[request.route as usize], &broken)
    }
}

export_policy!(Resilient);
