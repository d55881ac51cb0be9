//! {{name}}: a Switchyard failover policy: targets in route order, failover
//! with full-jitter backoff that honours Retry-After, and a stream that broke
//! after reaching the client continued on another available target
//! (restarted for a broken tool call or a refused continuation), twice at most.

use std::sync::OnceLock;

wit_bindgen::generate!({ path: "wit", world: "policy" });

use switchyard::policy::host;
use switchyard::policy::types::*;

/// What `init` derived from its arguments (the same in every instance).
struct Config {
    max_attempts: u32,
    topology: Topology,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

fn config() -> &'static Config {
    CONFIG.get().expect("init runs before any decision")
}

/// Reads `"max_attempts": N` from the settings JSON (default 4).
fn max_attempts(settings: &str) -> Result<u32, String> {
    let Some(rest) = settings.split("\"max_attempts\"").nth(1) else { return Ok(4) };
    let digits: String = rest.trim_start_matches([' ', ':']).chars().take_while(char::is_ascii_digit).collect();
    match digits.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("max_attempts must be a whole number above 0 in {settings}")),
    }
}

/// Milliseconds the provider asked us to wait before trying `target` again.
fn wait_ms(target: u32) -> u32 {
    host::health(target).and_then(|h| h.retry_after_ms).unwrap_or(0)
}

/// No Retry-After running and the breaker not open (asked of the host,
/// which keeps both).
fn available(target: u32) -> bool {
    host::available(target)
}

fn retryable(kind: OutcomeKind) -> bool {
    matches!(
        kind,
        OutcomeKind::ConnectError
            | OutcomeKind::Timeout
            | OutcomeKind::Reset
            | OutcomeKind::RateLimited
            | OutcomeKind::Overloaded
            | OutcomeKind::ServerError
            | OutcomeKind::Auth
    )
}

struct Policy;

impl Guest for Policy {
    fn init(settings: String, topology: Topology) -> Result<(), String> {
        let max_attempts = max_attempts(&settings)?;
        let _ = CONFIG.set(Config { max_attempts, topology });
        Ok(())
    }

    fn route(request: RequestInfo) -> RouteDecision {
        let route = &config().topology.routes[request.route as usize];
        let mut targets = route.targets.clone();
        // Stable: unavailable targets keep their order, at the back.
        targets.sort_by_key(|&t| !available(t));
        // Attempt limits left to the route's config (`first_token_timeout_ms`, ...).
        let limits = AttemptLimits { connect_ms: None, first_token_ms: None, idle_ms: None, answer_ms: None };
        RouteDecision::Send(Plan { targets, limits, hedge_after_ms: None })
    }

    fn on_attempt(request: RequestInfo, outcome: AttemptOutcome) -> NextStep {
        let cfg = config();
        if !retryable(outcome.kind) {
            return NextStep::Accept;
        }
        let give_up = NextStep::Degrade(Degrade::Unavailable(outcome.retry_after_ms.unwrap_or(1000).max(1000)));
        if outcome.attempt >= cfg.max_attempts {
            return give_up;
        }
        let route = &cfg.topology.routes[request.route as usize];
        if let Some(&next) = route.targets.iter().find(|t| !outcome.tried.contains(t) && available(**t)) {
            return NextStep::Retry(Retry { target: next, delay_ms: 0 });
        }
        // Every target tried: the one free soonest, after full-jitter backoff.
        let ceiling = 100u32.saturating_mul(1 << outcome.attempt.min(5)).min(2000);
        let backoff = (host::random() * f64::from(ceiling)) as u32;
        match route.targets.iter().map(|&t| (wait_ms(t).max(backoff), t)).min() {
            Some((wait, target)) if wait < request.deadline_ms / 2 => NextStep::Retry(Retry { target, delay_ms: wait }),
            _ => give_up,
        }
    }

    fn on_stream_break(request: RequestInfo, broken: StreamBreak) -> Recovery {
        // At most two recoveries per request, then a clean error event.
        if broken.recoveries >= 2 {
            return Recovery::End;
        }
        let route = &config().topology.routes[request.route as usize];
        let target = route.targets.iter().copied().find(|&t| t != broken.target && available(t)).unwrap_or(broken.target);
        let retry = Retry { target, delay_ms: 0 };
        // A partial tool call cannot be continued, and a target that refused
        // a partial assistant turn (a 400) is asked the question again instead.
        let refused = broken.failed_recovery.as_ref().is_some_and(|o| o.kind == OutcomeKind::InvalidRequest);
        if broken.in_tool_call || refused { Recovery::Restart(retry) } else { Recovery::Continue(retry) }
    }
}

export!(Policy);
