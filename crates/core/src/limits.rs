//! The limits of one attempt, resolved from the policy's plan, the route's
//! config and the gateway's `[timeouts]`, in that order. A stream's
//! first-token limit, when neither the plan nor the route sets it, adapts to
//! the target: four times its recent p95 time to first token (at least the
//! floor, at most the gateway's limit), so a silent provider is caught in
//! seconds where the model is fast and a slow model is not cut.

use std::time::Duration;

use switchyard_config::TimeoutsSection;
use switchyard_policy_host::{AttemptLimits, HealthBook};

/// Streams a target must have had before its own first-token history counts.
const HISTORY: usize = 20;
/// The adaptive first-token limit is this many times the target's p95.
const P95_MULTIPLE: u32 = 4;

/// The gateway's defaults (`[timeouts]`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Defaults {
    pub first_token: Duration,
    pub first_token_floor: Duration,
    pub idle: Duration,
    pub answer: Duration,
}

impl From<&TimeoutsSection> for Defaults {
    fn from(t: &TimeoutsSection) -> Self {
        Defaults {
            first_token: Duration::from_millis(t.first_token_timeout_ms),
            first_token_floor: Duration::from_millis(t.first_token_floor_ms),
            idle: Duration::from_millis(t.idle_timeout_ms),
            answer: Duration::from_millis(t.answer_timeout_ms),
        }
    }
}

/// A route's own limits (config), each optional.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RouteLimits {
    pub connect: Option<Duration>,
    pub first_token: Option<Duration>,
    pub idle: Option<Duration>,
    pub answer: Option<Duration>,
}

impl RouteLimits {
    pub fn from_route(route: &switchyard_config::Route) -> Self {
        let ms = |v: Option<u64>| v.map(Duration::from_millis);
        RouteLimits {
            connect: ms(route.connect_timeout_ms),
            first_token: ms(route.first_token_timeout_ms),
            idle: ms(route.idle_timeout_ms),
            answer: ms(route.answer_timeout_ms),
        }
    }
}

/// The limits one attempt runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Shortens the provider's connect timeout when set.
    pub connect: Option<Duration>,
    /// Streams: to the first content-bearing event. Non-streamed: to the headers.
    pub first_token: Duration,
    /// Streams: between content-bearing events.
    pub idle: Duration,
    /// Non-streamed: the whole answer.
    pub answer: Duration,
}

fn ms(v: Option<u32>) -> Option<Duration> {
    v.map(|ms| Duration::from_millis(ms.into()))
}

/// The limits of an attempt at `target`: the plan's, else the route's, else
/// the gateway's (adapted to the target's history for a stream's first token).
pub(crate) fn resolve(
    plan: &AttemptLimits,
    route: &RouteLimits,
    defaults: &Defaults,
    health: &HealthBook,
    target: u32,
    streaming: bool,
) -> Limits {
    let answer = ms(plan.answer_ms).or(route.answer).unwrap_or(defaults.answer);
    let first_token = ms(plan.first_token_ms).or(route.first_token).unwrap_or_else(|| {
        if !streaming {
            // A non-streamed answer's headers come with the whole answer.
            return answer;
        }
        match health.first_token_p95(target, HISTORY) {
            Some(p95) => (p95 * P95_MULTIPLE).clamp(defaults.first_token_floor, defaults.first_token),
            None => defaults.first_token,
        }
    });
    Limits {
        connect: ms(plan.connect_ms).or(route.connect),
        first_token,
        idle: ms(plan.idle_ms).or(route.idle).unwrap_or(defaults.idle),
        answer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Defaults {
        Defaults::from(&TimeoutsSection::default())
    }

    #[test]
    fn the_plan_beats_the_route_which_beats_the_defaults() {
        let health = HealthBook::new(1);
        let route = RouteLimits { idle: Some(Duration::from_secs(5)), ..RouteLimits::default() };
        let plan = AttemptLimits { idle_ms: Some(700), ..AttemptLimits::DEFAULT };
        let l = resolve(&plan, &route, &defaults(), &health, 0, true);
        assert_eq!(l.idle, Duration::from_millis(700));
        let l = resolve(&AttemptLimits::DEFAULT, &route, &defaults(), &health, 0, true);
        assert_eq!(l.idle, Duration::from_secs(5));
        assert_eq!(l.first_token, Duration::from_secs(30), "no history yet");
        assert_eq!(l.answer, Duration::from_secs(600));
    }

    #[test]
    fn a_non_streamed_answer_gets_its_whole_answer_limit_for_headers() {
        let l = resolve(&AttemptLimits::DEFAULT, &RouteLimits::default(), &defaults(), &HealthBook::new(1), 0, false);
        assert_eq!(l.first_token, Duration::from_secs(600));
    }

    #[test]
    fn a_fast_targets_first_token_limit_tightens_to_the_floor_a_slow_ones_to_the_ceiling() {
        let health = HealthBook::new(2);
        for _ in 0..HISTORY {
            health.record_first_token(0, Duration::from_millis(400));
            health.record_first_token(1, Duration::from_secs(20));
        }
        let at = |t| resolve(&AttemptLimits::DEFAULT, &RouteLimits::default(), &defaults(), &health, t, true);
        assert_eq!(at(0).first_token, Duration::from_secs(10));
        assert_eq!(at(1).first_token, Duration::from_secs(30));
        let route = RouteLimits { first_token: Some(Duration::from_secs(120)), ..RouteLimits::default() };
        let explicit = resolve(&AttemptLimits::DEFAULT, &route, &defaults(), &health, 0, true);
        assert_eq!(explicit.first_token, Duration::from_secs(120), "a route's own limit is used as is");
    }
}
