//! Write Switchyard policies in Rust.
//!
//! This crate holds the one `wit_bindgen::generate!` of the `switchyard:policy`
//! world and re-exports what a policy needs. A policy implements [`Guest`]
//! and exports it with [`export_policy!`]:
//!
//! ```ignore
//! use switchyard_policy_sdk::*;
//! struct MyPolicy;
//! impl Guest for MyPolicy { /* init, route, on_attempt */ }
//! export_policy!(MyPolicy);
//! ```
//!
//! Instances are interchangeable and may be discarded at any time: keep only
//! what `init` derives from its arguments in guest memory, never per-request state.

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "policy",
        pub_export_macro: true,
        export_macro_name: "export_policy_inner",
        default_bindings_module: "switchyard_policy_sdk::bindings",
    });
}

pub use bindings::Guest;
pub use bindings::switchyard::policy::host;
pub use bindings::switchyard::policy::types::*;

/// Exports a type implementing [`Guest`] as the component's policy.
#[macro_export]
macro_rules! export_policy {
    ($ty:ident) => {
        $crate::bindings::export_policy_inner!($ty with_types_in $crate::bindings);
    };
}

/// Attempt limits that leave every limit to the route's config (and the
/// gateway's defaults): what most policies want.
pub fn route_limits() -> AttemptLimits {
    AttemptLimits { connect_ms: None, first_token_ms: None, idle_ms: None, answer_ms: None }
}

/// Deterministic full-jitter exponential backoff: a delay in
/// `[0, min(cap, base * 2^(attempt-1))]`, drawn from the host's generator.
pub fn full_jitter_backoff_ms(attempt: u32, base_ms: u32, cap_ms: u32) -> u32 {
    let exp = attempt.saturating_sub(1).min(20);
    let ceiling = (base_ms as u64).saturating_mul(1u64 << exp).min(cap_ms as u64);
    (host::random() * (ceiling as f64 + 1.0)) as u32
}

/// Log through the gateway's log, tagged with the policy's name.
pub fn log(level: LogLevel, message: &str) {
    host::log(level, message);
}

/// The targets of `route` that have not been tried yet, in route order.
pub fn untried<'a>(route: &'a Route, tried: &'a [u32]) -> impl Iterator<Item = u32> + 'a {
    route.targets.iter().copied().filter(move |t| !tried.contains(t))
}

/// Milliseconds the provider asked us to wait before sending to `target` again
/// (0 when it asked nothing or the wait is over).
pub fn wait_requested_ms(target: u32) -> u32 {
    host::health(target).and_then(|h| h.retry_after_ms).unwrap_or(0)
}

/// The target's circuit breaker is open: it failed too often and its
/// cool-down is running.
pub fn breaker_open(target: u32) -> bool {
    host::health(target).is_some_and(|h| h.breaker == BreakerState::Open)
}

/// Whether sending to `target` now is reasonable: no Retry-After running and
/// the breaker not open.
pub fn is_available(target: u32) -> bool {
    host::available(target)
}

impl OutcomeKind {
    /// A failure that another attempt may fix (the same or another target).
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            OutcomeKind::ConnectError
                | OutcomeKind::Timeout
                | OutcomeKind::Reset
                | OutcomeKind::RateLimited
                | OutcomeKind::Overloaded
                | OutcomeKind::ServerError
        )
    }

    /// A failure that another *target* may fix but the same one will not.
    pub fn needs_other_target(self) -> bool {
        matches!(self, OutcomeKind::Auth | OutcomeKind::ContextTooLong)
    }
}

/// How ordered failover retries, shared by the policies shipped in `plugins/`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// At most this many attempts per request.
    pub max_attempts: u32,
    /// Full-jitter backoff base, ms.
    pub base_backoff_ms: u32,
    /// Full-jitter backoff cap, ms.
    pub max_backoff_ms: u32,
    /// Times a target is retried after a transient failure of its own (a
    /// 5xx, or a short Retry-After) before the request moves on.
    pub same_target_retries: u32,
    /// Longest Retry-After waited out on the same target (when it fits the
    /// deadline); a longer one moves on at once.
    pub max_same_target_wait_ms: u32,
}

/// After a transient failure, the wait before trying the same target again,
/// if that is the better move: it has retries left, its breaker is not
/// open, and either the provider asked for a short wait (Retry-After up to
/// `max_same_target_wait_ms`) or it answered a 5xx without one (then a
/// full-jitter backoff). The wait must fit the deadline.
pub fn same_target_wait_ms(backoff: &Backoff, request: &RequestInfo, outcome: &AttemptOutcome) -> Option<u32> {
    let times = outcome.tried.iter().filter(|&&t| t == outcome.target).count() as u32;
    if times > backoff.same_target_retries || breaker_open(outcome.target) {
        return None;
    }
    let wait = match (outcome.kind, outcome.retry_after_ms) {
        (OutcomeKind::RateLimited | OutcomeKind::Overloaded | OutcomeKind::ServerError, Some(ms))
            if ms <= backoff.max_same_target_wait_ms =>
        {
            ms
        }
        (OutcomeKind::Overloaded | OutcomeKind::ServerError, None) => {
            full_jitter_backoff_ms(times, backoff.base_backoff_ms, backoff.max_backoff_ms)
        }
        _ => return None,
    };
    fits_in_deadline(wait, request.deadline_ms).then_some(wait)
}

/// A wait we can afford: leave at least a quarter of what is left for the attempt itself.
pub fn fits_in_deadline(wait_ms: u32, deadline_ms: u32) -> bool {
    wait_ms.saturating_mul(4) <= deadline_ms.saturating_mul(3)
}

/// The `on-attempt` of ordered failover: success and failures no retry can
/// fix go to the client as they are; a transient failure is retried on the
/// same target first when [`same_target_wait_ms`] says so; otherwise a
/// retryable failure moves on at once to
/// an untried available target (no Retry-After running, breaker not open);
/// when every target was tried, the one free soonest is retried after
/// `max(Retry-After, full-jitter backoff)` if that fits the deadline. Auth
/// and context-length failures go to another target, never the same one.
/// Out of attempts or time: `give_up(retry_after_ms)`.
pub fn failover_next_step(
    backoff: &Backoff,
    route: &Route,
    request: &RequestInfo,
    outcome: &AttemptOutcome,
    give_up: impl Fn(u32) -> Degrade,
) -> NextStep {
    let kind = outcome.kind;
    if !kind.is_retryable() && !kind.needs_other_target() {
        return NextStep::Accept;
    }
    // A failure the client should see as is (a 4xx) is passed through when
    // no other target can take the request.
    let stop = |wait: u32| {
        if kind.needs_other_target() { NextStep::Accept } else { NextStep::Degrade(give_up(wait.max(1000))) }
    };
    if outcome.attempt >= backoff.max_attempts {
        return stop(outcome.retry_after_ms.unwrap_or(1000));
    }
    if let Some(delay_ms) = same_target_wait_ms(backoff, request, outcome) {
        return NextStep::Retry(Retry { target: outcome.target, delay_ms });
    }
    if let Some(next) = untried(route, &outcome.tried).find(|&t| is_available(t)) {
        return NextStep::Retry(Retry { target: next, delay_ms: 0 });
    }
    let jitter = full_jitter_backoff_ms(outcome.attempt, backoff.base_backoff_ms, backoff.max_backoff_ms);
    let candidates = route.targets.iter().copied().filter(|&t| !(kind.needs_other_target() && t == outcome.target));
    match candidates.map(|t| (wait_requested_ms(t).max(jitter), t)).min() {
        Some((wait, target)) if fits_in_deadline(wait, request.deadline_ms) => {
            NextStep::Retry(Retry { target, delay_ms: wait })
        }
        Some((wait, _)) => stop(wait),
        None => stop(outcome.retry_after_ms.unwrap_or(1000)),
    }
}

/// `targets` with the available ones (no Retry-After running, breaker not
/// open) first, each group in its given order.
pub fn available_first(targets: &[u32]) -> Vec<u32> {
    let (mut up, down): (Vec<u32>, Vec<u32>) = targets.iter().partition(|&&t| is_available(t));
    up.extend(down);
    up
}

/// How a shipped policy recovers a stream that broke after reaching the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecoveryMode {
    /// Ask another target to continue from the delivered text (restart when
    /// that target refuses a partial assistant turn, or a tool call broke).
    Continue,
    /// Ask another target the question again and splice its answer.
    Restart,
    /// Never recover: the stream ends with an error event.
    Off,
}

/// The `on-stream-break` of the shipped policies: `mode` on the next
/// available target of the route after the broken one (the broken one when
/// no other is available), restarting instead of continuing when the last
/// continuation was refused as an invalid request (a target that does not
/// take a partial assistant turn) or a tool call broke; at most
/// `max_recoveries` per request, then the stream ends.
pub fn stream_recovery(mode: RecoveryMode, max_recoveries: u32, route: &Route, broken: &StreamBreak) -> Recovery {
    if mode == RecoveryMode::Off || broken.recoveries >= max_recoveries {
        return Recovery::End;
    }
    let targets = &route.targets;
    let at = targets.iter().position(|&t| t == broken.target).map_or(0, |i| i + 1);
    let next = (0..targets.len())
        .map(|i| targets[(at + i) % targets.len()])
        .find(|&t| t != broken.target && is_available(t))
        .unwrap_or(broken.target);
    let retry = Retry { target: next, delay_ms: 0 };
    let refused = broken.failed_recovery.as_ref().is_some_and(|o| o.kind == OutcomeKind::InvalidRequest);
    match mode {
        RecoveryMode::Continue if !refused && !broken.in_tool_call => Recovery::Continue(retry),
        _ => Recovery::Restart(retry),
    }
}

/// The settings of an ordered-failover policy (`failover`, `least-latency`,
/// `p2c`, and the shared part of `resilient`): `max_attempts` (4),
/// `base_backoff_ms` (100), `max_backoff_ms` (2000), `same_target_retries`
/// (1), `max_same_target_wait_ms` (5000), `recovery` (`"continue"`),
/// `max_recoveries` (2), and attempt limits that override the route's
/// config when set: `connect_timeout_ms`, `first_token_timeout_ms`,
/// `idle_timeout_ms`, `answer_timeout_ms`. Unknown keys are refused, so a
/// typo is an error at load instead of a silent default.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FailoverSettings {
    /// At most this many attempts per request.
    pub max_attempts: u32,
    /// Full-jitter backoff base, ms.
    pub base_backoff_ms: u32,
    /// Full-jitter backoff cap, ms.
    pub max_backoff_ms: u32,
    /// See [`Backoff::same_target_retries`].
    pub same_target_retries: u32,
    /// See [`Backoff::max_same_target_wait_ms`].
    pub max_same_target_wait_ms: u32,
    /// How a broken stream is recovered.
    pub recovery: RecoveryMode,
    /// At most this many recoveries per request.
    pub max_recoveries: u32,
    /// `attempt-limits.connect-ms` (none: the route's).
    pub connect_timeout_ms: Option<u32>,
    /// `attempt-limits.first-token-ms` (none: the route's).
    pub first_token_timeout_ms: Option<u32>,
    /// `attempt-limits.idle-ms` (none: the route's).
    pub idle_timeout_ms: Option<u32>,
    /// `attempt-limits.answer-ms` (none: the route's).
    pub answer_timeout_ms: Option<u32>,
}

impl Default for FailoverSettings {
    fn default() -> Self {
        FailoverSettings {
            max_attempts: 4,
            base_backoff_ms: 100,
            max_backoff_ms: 2000,
            same_target_retries: 1,
            max_same_target_wait_ms: 5000,
            recovery: RecoveryMode::Continue,
            max_recoveries: 2,
            connect_timeout_ms: None,
            first_token_timeout_ms: None,
            idle_timeout_ms: None,
            answer_timeout_ms: None,
        }
    }
}

impl FailoverSettings {
    /// Parses and checks `init`'s settings JSON; errors name `policy`.
    pub fn parse(policy: &str, json: &str) -> Result<Self, String> {
        if json.contains("\"per_try_timeout_ms\"") {
            return Err(format!(
                "{policy} settings: per_try_timeout_ms was replaced in switchyard:policy 0.2.0 by \
                 first_token_timeout_ms, idle_timeout_ms and answer_timeout_ms (best set per route in the \
                 gateway config)"
            ));
        }
        let s: FailoverSettings = serde_json::from_str(json).map_err(|e| format!("{policy} settings: {e}"))?;
        if s.max_attempts == 0 {
            return Err(format!("{policy} settings: max_attempts must be at least 1"));
        }
        let limits = [s.connect_timeout_ms, s.first_token_timeout_ms, s.idle_timeout_ms, s.answer_timeout_ms];
        if limits.contains(&Some(0)) {
            return Err(format!("{policy} settings: a timeout must be at least 1 ms"));
        }
        if s.base_backoff_ms > s.max_backoff_ms {
            return Err(format!("{policy} settings: base_backoff_ms is larger than max_backoff_ms"));
        }
        Ok(s)
    }

    /// The retry half of these settings.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            max_attempts: self.max_attempts,
            base_backoff_ms: self.base_backoff_ms,
            max_backoff_ms: self.max_backoff_ms,
            same_target_retries: self.same_target_retries,
            max_same_target_wait_ms: self.max_same_target_wait_ms,
        }
    }

    /// The attempt limits these settings set (the rest left to the route).
    pub fn limits(&self) -> AttemptLimits {
        AttemptLimits {
            connect_ms: self.connect_timeout_ms,
            first_token_ms: self.first_token_timeout_ms,
            idle_ms: self.idle_timeout_ms,
            answer_ms: self.answer_timeout_ms,
        }
    }

    /// Sends a request to `targets` (the first now, the rest in order of
    /// preference) under [`Self::limits`]; no hedge.
    pub fn send(&self, targets: Vec<u32>) -> RouteDecision {
        RouteDecision::Send(Plan { targets, limits: self.limits(), hedge_after_ms: None })
    }

    /// [`failover_next_step`] with these settings, giving up with a clean 503.
    pub fn next_step(&self, route: &Route, request: &RequestInfo, outcome: &AttemptOutcome) -> NextStep {
        failover_next_step(&self.backoff(), route, request, outcome, Degrade::Unavailable)
    }

    /// [`stream_recovery`] with these settings.
    pub fn recover(&self, route: &Route, broken: &StreamBreak) -> Recovery {
        stream_recovery(self.recovery, self.max_recoveries, route, broken)
    }
}
