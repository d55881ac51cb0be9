//! The last resort, built into the gateway: used only when no policy
//! component can answer a decision. Tries the route's targets in order, skips
//! targets that asked for a wait or whose breaker is open, then retries with capped exponential
//! backoff while the deadline allows; gives up with a 503.

use crate::HealthBook;
use crate::decision::{
    AttemptLimits, AttemptOutcome, Degrade, NextStep, Plan, Recovery, RequestInfo, Retry, RouteDecision, StreamBreak,
    Topology,
};

const BASE_BACKOFF_MS: u32 = 100;
const MAX_BACKOFF_MS: u32 = 1000;
/// At most this many attempts per request.
const MAX_ATTEMPTS: u32 = 4;
/// At most this many recoveries of a broken stream per request.
const MAX_RECOVERIES: u32 = 2;

/// The label responses carry when the native fallback decided.
pub const NATIVE_LABEL: &str = "native@builtin";

fn wait_ms(health: &HealthBook, target: u32) -> u32 {
    health.get(target).and_then(|h| h.retry_after_ms).unwrap_or(0)
}

fn available(health: &HealthBook, target: u32) -> bool {
    health.available(target)
}

/// `route`: the route's targets in order, waiting and open ones last.
pub fn route(topology: &Topology, health: &HealthBook, request: &RequestInfo) -> RouteDecision {
    let Some(route) = topology.routes.get(request.route as usize) else {
        return RouteDecision::Degrade(Degrade::Unavailable(1000));
    };
    let mut targets = route.targets.clone();
    targets.sort_by_key(|&t| !available(health, t));
    RouteDecision::Send(Plan { targets, limits: AttemptLimits::DEFAULT, hedge_after_ms: None })
}

/// `on-attempt`: move on, then back off, then give up.
pub fn on_attempt(
    topology: &Topology,
    health: &HealthBook,
    request: &RequestInfo,
    outcome: &AttemptOutcome,
) -> NextStep {
    let kind = outcome.kind;
    let retryable = matches!(
        kind,
        crate::OutcomeKind::ConnectError
            | crate::OutcomeKind::Timeout
            | crate::OutcomeKind::Reset
            | crate::OutcomeKind::RateLimited
            | crate::OutcomeKind::Overloaded
            | crate::OutcomeKind::ServerError
    );
    let other_target = matches!(kind, crate::OutcomeKind::Auth | crate::OutcomeKind::ContextTooLong);
    let give_up = NextStep::Degrade(Degrade::Unavailable(outcome.retry_after_ms.unwrap_or(1000).max(1000)));
    if !retryable && !other_target {
        return NextStep::Accept;
    }
    let Some(route) = topology.routes.get(request.route as usize) else { return give_up };
    if outcome.attempt >= MAX_ATTEMPTS {
        return if other_target { NextStep::Accept } else { give_up };
    }
    let untried = route.targets.iter().copied().find(|t| !outcome.tried.contains(t) && available(health, *t));
    if let Some(target) = untried {
        return NextStep::Retry(Retry { target, delay_ms: 0 });
    }
    if other_target {
        return NextStep::Accept;
    }
    let backoff = BASE_BACKOFF_MS.saturating_mul(1 << outcome.attempt.min(10)).min(MAX_BACKOFF_MS);
    let soonest = route.targets.iter().map(|&t| (wait_ms(health, t).max(backoff), t)).min();
    match soonest {
        Some((wait, target)) if wait.saturating_mul(4) <= request.deadline_ms.saturating_mul(3) => {
            NextStep::Retry(Retry { target, delay_ms: wait })
        }
        _ => give_up,
    }
}

/// `on-stream-break`: continue on another available target of the route
/// (the broken one when there is no other), restart instead when the break
/// fell inside a tool call or the last continuation was refused; end after
/// [`MAX_RECOVERIES`].
pub fn on_stream_break(
    topology: &Topology,
    health: &HealthBook,
    request: &RequestInfo,
    broken: &StreamBreak,
) -> Recovery {
    if broken.recoveries >= MAX_RECOVERIES {
        return Recovery::End;
    }
    let Some(route) = topology.routes.get(request.route as usize) else { return Recovery::End };
    let target =
        route.targets.iter().copied().find(|&t| t != broken.target && available(health, t)).unwrap_or(broken.target);
    let retry = Retry { target, delay_ms: 0 };
    let refused = broken.failed_recovery.as_ref().is_some_and(|o| o.kind == crate::OutcomeKind::InvalidRequest);
    if broken.in_tool_call || refused { Recovery::Restart(retry) } else { Recovery::Continue(retry) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OutcomeKind;
    use crate::decision::Caller;
    use crate::decision::{Api, RouteInfo, Target};

    fn topo() -> Topology {
        let t = |p: &str| Target { provider: p.into(), model: "m".into() };
        Topology { targets: vec![t("a"), t("b")], routes: vec![RouteInfo { model: "m".into(), targets: vec![0, 1] }] }
    }

    fn req(deadline_ms: u32) -> RequestInfo {
        RequestInfo {
            api: Api::OpenaiChat,
            route: 0,
            streaming: false,
            estimated_input_tokens: 1,
            deadline_ms,
            caller: Caller::default(),
        }
    }

    fn failed(target: u32, attempt: u32, tried: Vec<u32>, kind: OutcomeKind) -> AttemptOutcome {
        AttemptOutcome { target, attempt, tried, kind, http_status: None, retry_after_ms: None, elapsed_ms: 1 }
    }

    #[test]
    fn moves_on_then_backs_off_then_gives_up() {
        let (t, h) = (topo(), HealthBook::new(2));
        assert_eq!(
            on_attempt(&t, &h, &req(10_000), &failed(0, 1, vec![0], OutcomeKind::Overloaded)),
            NextStep::Retry(Retry { target: 1, delay_ms: 0 })
        );
        let step = on_attempt(&t, &h, &req(10_000), &failed(1, 2, vec![0, 1], OutcomeKind::Timeout));
        assert!(matches!(step, NextStep::Retry(Retry { delay_ms: 400, .. })), "{step:?}");
        let step = on_attempt(&t, &h, &req(100), &failed(1, 2, vec![0, 1], OutcomeKind::Timeout));
        assert!(matches!(step, NextStep::Degrade(Degrade::Unavailable(_))), "{step:?}");
        assert_eq!(
            on_attempt(&t, &h, &req(10_000), &failed(0, 1, vec![0], OutcomeKind::InvalidRequest)),
            NextStep::Accept
        );
    }
}
