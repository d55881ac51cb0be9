//! `p2c`: power of two choices — of two available targets drawn at random,
//! the one with fewer attempts in flight (then the lower EWMA latency) goes
//! first, the rest in route order; then ordered failover. Spreads load like
//! least-in-flight at the cost of two health reads.
//!
//! Settings (`[policies.p2c]`), all optional: `max_attempts` (4),
//! `base_backoff_ms` (100), `max_backoff_ms` (2000), and the rest of
//! [`FailoverSettings`] (stream recovery, attempt limits).

use std::sync::OnceLock;

use switchyard_policy_sdk::*;

static CONFIG: OnceLock<(FailoverSettings, Topology)> = OnceLock::new();

struct PowerOfTwo;

impl Guest for PowerOfTwo {
    fn init(settings: String, topology: Topology) -> Result<(), String> {
        let settings = FailoverSettings::parse("p2c", &settings)?;
        let _ = CONFIG.set((settings, topology));
        Ok(())
    }

    fn route(request: RequestInfo) -> RouteDecision {
        let (s, topology) = CONFIG.get().expect("init runs first");
        let mut targets = available_first(&topology.routes[request.route as usize].targets);
        let up = targets.iter().take_while(|&&t| is_available(t)).count();
        if up >= 2 {
            let a = (host::random() * up as f64) as usize % up;
            let b = (a + 1 + (host::random() * (up - 1) as f64) as usize % (up - 1)) % up;
            let load = |i: usize| host::health(targets[i]).map_or((0, 0.0), |h| (h.inflight, h.ewma_latency_ms));
            let ((la, ea), (lb, eb)) = (load(a), load(b));
            let pick = if (la, ea) <= (lb, eb) { a } else { b };
            let chosen = targets.remove(pick);
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

export_policy!(PowerOfTwo);
