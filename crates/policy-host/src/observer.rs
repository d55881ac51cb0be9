//! What the gateway is told about decisions as they are made: how long each
//! took, and when a version failed and another answered instead. The host
//! names no metric; the gateway's telemetry turns these into metrics.

use std::time::Duration;

/// Which export of the policy world a decision called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    /// `route`.
    Route,
    /// `on-attempt`.
    OnAttempt,
    /// `on-stream-break`.
    OnStreamBreak,
}

impl Hook {
    /// The export's name in the WIT.
    pub fn name(self) -> &'static str {
        match self {
            Hook::Route => "route",
            Hook::OnAttempt => "on-attempt",
            Hook::OnStreamBreak => "on-stream-break",
        }
    }
}

/// Who answered a decision the request's own version could not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FallbackTo {
    /// The newest version of the same name that proved itself.
    LastGood,
    /// The version of the same name built into the gateway.
    Embedded,
    /// The built-in native policy.
    Native,
}

impl FallbackTo {
    /// A short label: `last_good`, `embedded`, `native`.
    pub fn name(self) -> &'static str {
        match self {
            FallbackTo::LastGood => "last_good",
            FallbackTo::Embedded => "embedded",
            FallbackTo::Native => "native",
        }
    }
}

/// Told of every decision a policy component makes; set with
/// [`crate::PolicyHost::observe`]. Called on the request path: keep it cheap.
pub trait DecisionObserver: Send + Sync {
    /// A version of `policy` answered (or failed) `hook` in `took`.
    fn decided(&self, policy: &str, hook: Hook, took: Duration);
    /// A version of `policy` failed `hook` for `reason` (a
    /// [`crate::PolicyError::reason`]) and `to` answered instead.
    fn fell_back(&self, policy: &str, hook: Hook, reason: &'static str, to: FallbackTo);
    /// `count` warm instances of a version of `policy` were dropped after
    /// their call because their memory had grown (a fresh one replaces each).
    fn instances_retired(&self, policy: &str, count: u64) {
        let _ = (policy, count);
    }
}
