//! `least-latency`: the available target with the lowest EWMA latency first
//! (targets with no history first, so they get measured), the rest in route
//! order; then ordered failover.
//!
//! Settings (`[policies.least-latency]`), all optional: `max_attempts` (4),
//! `base_backoff_ms` (100), `max_backoff_ms` (2000), and the rest of
//! [`FailoverSettings`] (stream recovery, attempt limits).

use std::sync::OnceLock;

use switchyard_policy_sdk::*;

static CONFIG: OnceLock<(FailoverSettings, Topology)> = OnceLock::new();

struct LeastLatency;

impl Guest for LeastLatency {
    fn init(settings: String, topology: Topology) -> Result<(), String> {
        let settings = FailoverSettings::parse("least-latency", &settings)?;
        let _ = CONFIG.set((settings, topology));
        Ok(())
    }

    fn route(request: RequestInfo) -> RouteDecision {
        let (s, topology) = CONFIG.get().expect("init runs first");
        let mut targets = available_first(&topology.routes[request.route as usize].targets);
        let fastest = targets
            .iter()
            .enumerate()
            .take_while(|&(_, &t)| is_available(t))
            .map(|(i, &t)| (host::health(t).map_or(0.0, |h| h.ewma_latency_ms), i))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((_, i)) = fastest {
            let chosen = targets.remove(i);
            targets.insert(0, chosen);
        }
        s.send(targets)
    }

    fn on_attempt(request: RequestInfo, outcome: AttemptOutcome) -> NextStep {
        let (s, topology) = CONFIG.get().expect("init runs first");
        s.next_step(&topology.routes[request.route as usize], &request, &outcome)
    }

    fn on_stream_break(request: RequestInfo, broken: StreamBreak) -> Recovery {
        let (s, topology) = CONFIG.get().expect("init runs first");
        s.recover(&topology.routes[request.route as usize], &broken)
    }
}

export_policy!(LeastLatency);
