//! Example policy: tenant tiers. Who is asking (`request.caller`, from the
//! gateway key) decides where a request goes.
//!
//! * **Batch** traffic — a key of priority `low`, a tenant listed in
//!   `batch_tenants`, or a key with fewer than `save_tokens_below` tokens
//!   left this minute — goes to the route's cheap targets only (those whose
//!   model is in `cheap_models`), in config order. When none of them can
//!   answer it gets a 503 with `Retry-After`: batch work never spills onto
//!   the expensive model.
//! * **Premium** traffic (priority `high`) goes to the route's other
//!   (non-cheap) targets first and falls back to the cheap ones.
//! * Everyone else: the route's targets in config order.
//!
//! Within its targets each request fails over as the default `failover`
//! policy does (same settings, under `failover`), and a broken stream is
//! recovered the same way.
//!
//! Settings (`[policies.tenant-tiers]`):
//! `cheap_models = ["gpt-4o-mini", "llama3.2"]`, `batch_tenants = ["nightly"]`,
//! `save_tokens_below = 0` (off), `failover = { max_attempts = 4, ... }`.

use std::sync::OnceLock;

use serde::Deserialize;
use switchyard_policy_sdk::*;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    cheap_models: Vec<String>,
    batch_tenants: Vec<String>,
    save_tokens_below: u32,
    failover: serde_json::Value,
}

struct Config {
    /// Per target index of the topology: its model is a cheap one.
    cheap: Vec<bool>,
    batch_tenants: Vec<String>,
    save_tokens_below: u32,
    failover: FailoverSettings,
    topology: Topology,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

fn config() -> &'static Config {
    CONFIG.get().expect("init runs before any decision")
}

/// The tier a request is served in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tier {
    Batch,
    Standard,
    Premium,
}

fn tier(cfg: &Config, caller: &Caller) -> Tier {
    let listed = caller.tenant.as_ref().is_some_and(|t| cfg.batch_tenants.contains(t));
    let running_out = caller.tokens_left.is_some_and(|left| left < cfg.save_tokens_below);
    match caller.priority {
        _ if listed || running_out => Tier::Batch,
        Priority::Low => Tier::Batch,
        Priority::High => Tier::Premium,
        Priority::Normal => Tier::Standard,
    }
}

/// The targets of `route` a request of `tier` may use, best first.
fn targets_for(cfg: &Config, route: &Route, tier: Tier) -> Vec<u32> {
    let (cheap, dear): (Vec<u32>, Vec<u32>) = route.targets.iter().partition(|&&t| cfg.cheap[t as usize]);
    match tier {
        Tier::Batch => cheap,
        Tier::Premium => dear.into_iter().chain(cheap).collect(),
        Tier::Standard => route.targets.clone(),
    }
}

struct TenantTiers;

impl Guest for TenantTiers {
    fn init(settings: String, topology: Topology) -> Result<(), String> {
        let settings: Settings = serde_json::from_str(&settings).map_err(|e| format!("tenant-tiers settings: {e}"))?;
        let failover = match &settings.failover {
            serde_json::Value::Null => FailoverSettings::default(),
            value => FailoverSettings::parse("tenant-tiers failover", &value.to_string())?,
        };
        let cheap = topology.targets.iter().map(|t| settings.cheap_models.contains(&t.model)).collect();
        let _ = CONFIG.set(Config {
            cheap,
            batch_tenants: settings.batch_tenants,
            save_tokens_below: settings.save_tokens_below,
            failover,
            topology,
        });
        Ok(())
    }

    fn route(request: RequestInfo) -> RouteDecision {
        let cfg = config();
        let route = &cfg.topology.routes[request.route as usize];
        let targets = targets_for(cfg, route, tier(cfg, &request.caller));
        if targets.is_empty() {
            // A batch request on a route with no cheap target.
            return RouteDecision::Degrade(Degrade::Unavailable(60_000));
        }
        cfg.failover.send(available_first(&targets))
    }

    fn on_attempt(request: RequestInfo, outcome: AttemptOutcome) -> NextStep {
        let cfg = config();
        let route = &cfg.topology.routes[request.route as usize];
        // Fail over within the tier's targets only.
        let tiered = Route { model: route.model.clone(), targets: targets_for(cfg, route, tier(cfg, &request.caller)) };
        cfg.failover.next_step(&tiered, &request, &outcome)
    }

    fn on_stream_break(request: RequestInfo, broken: StreamBreak) -> Recovery {
        let cfg = config();
        let route = &cfg.topology.routes[request.route as usize];
        let tiered = Route { model: route.model.clone(), targets: targets_for(cfg, route, tier(cfg, &request.caller)) };
        cfg.failover.recover(&tiered, &broken)
    }
}

export_policy!(TenantTiers);
