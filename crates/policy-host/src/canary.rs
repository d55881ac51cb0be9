//! Canary trials: a new file version of a policy that already serves first
//! decides for a share of requests, for a window, before it serves all.
//! Meanwhile both sides count the requests they decided and how many of them
//! the gateway could not answer: the same time, the same mix of traffic, so
//! an outage that starts meanwhile hits both alike, and a canary whose
//! requests fail more than the serving version's is rolled back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::version::PolicyVersion;

/// How a new version is tried before it serves everything.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Canary {
    /// The share of requests it decides for meanwhile, 0..=1.
    pub share: f64,
    /// For how long.
    pub window: std::time::Duration,
}

/// Which side of a trial decided a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The version that served before the canary came.
    Serving = 0,
    /// The new version on trial.
    Canary = 1,
}

/// A new version on trial.
pub(crate) struct Trial {
    pub(crate) version: Arc<PolicyVersion>,
    share: f64,
    pub(crate) until: tokio::time::Instant,
    /// Requests each side decided since the trial began ([`Side`] order).
    sides: [RequestTally; 2],
}

/// Requests decided, and how many of them the gateway could not answer.
#[derive(Debug, Default)]
struct RequestTally {
    requests: AtomicU64,
    failed: AtomicU64,
}

impl RequestTally {
    fn count(&self, failed: bool) -> (u64, u64) {
        let failed =
            if failed { self.failed.fetch_add(1, Ordering::Relaxed) + 1 } else { self.failed.load(Ordering::Relaxed) };
        (self.requests.fetch_add(1, Ordering::Relaxed) + 1, failed)
    }

    fn read(&self) -> (u64, u64) {
        (self.requests.load(Ordering::Relaxed), self.failed.load(Ordering::Relaxed))
    }
}

impl Trial {
    pub(crate) fn new(version: Arc<PolicyVersion>, canary: Canary) -> Trial {
        Trial {
            version,
            share: canary.share,
            until: tokio::time::Instant::now() + canary.window,
            sides: Default::default(),
        }
    }

    /// The side a new request goes to: the canary for its share, drawn per request.
    pub(crate) fn draw(&self) -> Side {
        if rand::random::<f64>() < self.share { Side::Canary } else { Side::Serving }
    }

    /// Counts a request `side` decided (`failed`: the client got no
    /// answer). For the canary's, the verdict: why it is rolled back, once
    /// both sides decided `min_requests` and the canary's share of failed
    /// requests exceeds the serving version's by more than `allowed`.
    pub(crate) fn finished(&self, side: Side, failed: bool, allowed: f64, min_requests: u64) -> Option<String> {
        let mine = self.sides[side as usize].count(failed);
        if side == Side::Serving {
            return None;
        }
        verdict(mine, self.sides[Side::Serving as usize].read(), allowed, min_requests)
    }
}

/// Standard errors by which the canary's failure rate must exceed the
/// serving version's plus the allowance: the verdict is asked after every
/// canary request, and two sides of a few hundred requests each that fail
/// alike in an outage differ by several points by chance alone.
const CONFIDENCE_SE: f64 = 3.0;

/// Why a canary whose requests went `canary` (decided, failed) is rolled
/// back against the serving version's `serving` over the same time, if it
/// is: both sides decided `min_requests`, and the canary's failure rate is
/// above the serving one's by more than `allowed`, beyond chance.
fn verdict(canary: (u64, u64), serving: (u64, u64), allowed: f64, min_requests: u64) -> Option<String> {
    if canary.0 < min_requests || serving.0 < min_requests {
        return None;
    }
    let rate = |(n, failed): (u64, u64)| failed as f64 / n as f64;
    let (mine, theirs) = (rate(canary), rate(serving));
    let variance = |p: f64, n: u64| p * (1.0 - p) / n as f64;
    let standard_error = (variance(mine, canary.0) + variance(theirs, serving.0)).sqrt();
    (mine - theirs > allowed + CONFIDENCE_SE * standard_error).then(|| {
        format!(
            "rolled back: the client got no answer to {:.1} % of its {} requests, against {:.1} % of the {} the serving version decided meanwhile (allowed: {:.1} points more)",
            mine * 100.0,
            canary.0,
            theirs * 100.0,
            serving.0,
            allowed * 100.0
        )
    })
}

#[cfg(test)]
mod tests {
    use super::verdict;

    #[test]
    fn a_canary_is_judged_only_once_both_sides_decided_enough_requests() {
        assert_eq!(verdict((99, 99), (1000, 0), 0.05, 100), None);
        assert_eq!(verdict((1000, 1000), (99, 0), 0.05, 100), None);
        let why = verdict((100, 20), (300, 3), 0.05, 100).expect("20 % against 1 %");
        assert_eq!(
            why,
            "rolled back: the client got no answer to 20.0 % of its 100 requests, against 1.0 % of the 300 the serving version decided meanwhile (allowed: 5.0 points more)"
        );
    }

    #[test]
    fn an_outage_that_hits_both_sides_alike_rolls_nothing_back() {
        // Half the requests of both sides fail: the canary is no worse.
        assert_eq!(verdict((200, 100), (800, 396), 0.05, 100), None);
        // Within the allowance.
        assert_eq!(verdict((200, 14), (800, 16), 0.05, 100), None);
        // Ten points more, but on so few requests that chance explains it.
        assert_eq!(verdict((100, 55), (100, 45), 0.05, 100), None);
        // Every canary request failed, none of the others: no doubt.
        assert!(verdict((100, 100), (100, 0), 0.05, 100).is_some());
    }
}
