//! Example policy: weighted split.
//!
//! `route` draws the first target at random in proportion to its provider's
//! weight (a weight of 0 means "only as a fallback"); the route's other
//! targets follow in config order. `on-attempt` moves on to the next untried
//! target after any retryable failure, and gives up with a 503 when none is
//! left. A stream that broke after reaching the client is continued on the
//! route's next available target (the SDK's `stream_recovery`), at most twice.
//!
//! Settings (`[policies.weighted-split]`): `weights = { provider-name = N }`
//! (unlisted providers weigh 1). Attempt limits come from the route's config.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;
use switchyard_policy_sdk::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    weights: BTreeMap<String, u32>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { weights: BTreeMap::new() }
    }
}

struct Config {
    /// Weight per target index of the topology.
    weight: Vec<u32>,
    topology: Topology,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

fn config() -> &'static Config {
    CONFIG.get().expect("init runs before any decision")
}

struct WeightedSplit;

impl Guest for WeightedSplit {
    fn init(settings: String, topology: Topology) -> Result<(), String> {
        let settings: Settings =
            serde_json::from_str(&settings).map_err(|e| format!("weighted-split settings: {e}"))?;
        let weight = topology.targets.iter().map(|t| settings.weights.get(&t.provider).copied().unwrap_or(1)).collect();
        let _ = CONFIG.set(Config { weight, topology });
        Ok(())
    }

    fn route(request: RequestInfo) -> RouteDecision {
        let cfg = config();
        let route = &cfg.topology.routes[request.route as usize];
        let total: u64 = route.targets.iter().map(|&t| cfg.weight[t as usize] as u64).sum();
        let mut targets = route.targets.clone();
        if total > 0 {
            let mut pick = (host::random() * total as f64) as u64;
            let first = route
                .targets
                .iter()
                .position(|&t| {
                    let w = cfg.weight[t as usize] as u64;
                    if pick < w {
                        true
                    } else {
                        pick -= w;
                        false
                    }
                })
                .unwrap_or(0);
            let chosen = targets.remove(first);
            targets.insert(0, chosen);
        }
        RouteDecision::Send(Plan { targets, limits: route_limits(), hedge_after_ms: None })
    }

    fn on_attempt(request: RequestInfo, outcome: AttemptOutcome) -> NextStep {
        if !outcome.kind.is_retryable() && !outcome.kind.needs_other_target() {
            return NextStep::Accept;
        }
        let route = &config().topology.routes[request.route as usize];
        match untried(route, &outcome.tried).next() {
            Some(target) => NextStep::Retry(Retry { target, delay_ms: 0 }),
            None => NextStep::Degrade(Degrade::Unavailable(outcome.retry_after_ms.unwrap_or(1000).max(1000))),
        }
    }

    fn on_stream_break(request: RequestInfo, broken: StreamBreak) -> Recovery {
        let route = &config().topology.routes[request.route as usize];
        stream_recovery(RecoveryMode::Continue, 2, route, &broken)
    }
}

export_policy!(WeightedSplit);
