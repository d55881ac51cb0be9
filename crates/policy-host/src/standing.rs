//! How a loaded version has served: a version *proves itself* by answering
//! enough decisions, and is *demoted* after a few failed decisions in a row
//! (traps, its own deadline overruns, memory, invalid answers — never a busy
//! machine's overrun), or — automatic rollback — when, past a minimum
//! number of decisions, the share that failed exceeds the version before's
//! by more than a threshold (a version that traps on one request in five
//! never fails five in a row, but is as broken). A demoted version is not
//! called again; it stays demoted until its file changes (which makes a new
//! version).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::PolicyError;

/// Decisions a version must answer before it counts as good: it becomes the
/// version that answers when a newer one fails.
pub const PROVEN_AFTER: u64 = 20;
/// Failed decisions in a row that demote a version.
pub const DEMOTE_AFTER: u32 = 5;

/// One version's record.
#[derive(Debug, Default)]
pub struct Standing {
    answered: AtomicU64,
    failures_in_a_row: AtomicU32,
    /// Decisions it failed by its own fault, ever.
    faults: AtomicU64,
    demoted: OnceLock<String>,
}

/// When a failure rate rolls a version back (`[policy] rollback_*`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RollbackRule {
    /// Decisions a version must have had before its rate is judged.
    pub min_decisions: u64,
    /// The share of failed decisions allowed above the version before's.
    pub max_failure_rate: f64,
    /// For a canary: the share of its requests the client got no answer to
    /// allowed above the serving version's over the same time (each side
    /// judged once it decided `min_decisions` requests).
    pub max_request_failure_rate: f64,
}

impl Standing {
    /// Counts an answered decision; true exactly once, when it proves the version.
    pub(crate) fn answered(&self) -> bool {
        if self.failures_in_a_row.load(Ordering::Relaxed) != 0 {
            self.failures_in_a_row.store(0, Ordering::Relaxed);
        }
        // Every decision is counted (one relaxed add, tens of ns against a
        // decision's microsecond): the failure rate needs the total.
        self.answered.fetch_add(1, Ordering::Relaxed) + 1 == PROVEN_AFTER
    }

    /// Counts a failed decision; true exactly once, when it demotes the
    /// version: `DEMOTE_AFTER` in a row, or under `rule` a failure rate
    /// above `baseline` (the version before's) by more than the rule allows.
    pub(crate) fn failed(&self, error: &PolicyError, rule: Option<(RollbackRule, f64)>) -> bool {
        if !error.is_the_policys_fault() {
            return false;
        }
        let in_a_row = self.failures_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
        let faults = self.faults.fetch_add(1, Ordering::Relaxed) + 1;
        if in_a_row >= DEMOTE_AFTER {
            return self.demoted.set(format!("{in_a_row} decisions in a row failed, the last: {error}")).is_ok();
        }
        let Some((rule, baseline)) = rule else { return false };
        // Failed decisions never count as answered: the total is both.
        let decisions = faults + self.answered.load(Ordering::Relaxed);
        let rate = faults as f64 / decisions as f64;
        decisions >= rule.min_decisions
            && rate > baseline + rule.max_failure_rate
            && self
                .demoted
                .set(format!(
                    "rolled back: {:.1} % of its {decisions} decisions failed, against {:.1} % for the version before (allowed: {:.1} points more); the last: {error}",
                    rate * 100.0,
                    baseline * 100.0,
                    rule.max_failure_rate * 100.0
                ))
                .is_ok()
    }

    /// Demotes the version for `reason`; true if it was not demoted yet.
    pub(crate) fn demote(&self, reason: String) -> bool {
        self.demoted.set(reason).is_ok()
    }

    /// The share of its decisions that failed by its own fault.
    pub fn failure_rate(&self) -> f64 {
        let faults = self.faults.load(Ordering::Relaxed);
        let decisions = faults + self.answered.load(Ordering::Relaxed);
        if decisions == 0 { 0.0 } else { faults as f64 / decisions as f64 }
    }

    /// Why the version was demoted, if it was.
    pub fn demoted(&self) -> Option<&str> {
        self.demoted.get().map(String::as_str)
    }

    /// Answered enough decisions, and not demoted.
    pub fn is_proven(&self) -> bool {
        self.answered.load(Ordering::Relaxed) >= PROVEN_AFTER && self.demoted().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_proves_itself_once() {
        let s = Standing::default();
        let proofs = (0..PROVEN_AFTER * 2).filter(|_| s.answered()).count();
        assert_eq!(proofs, 1);
        assert!(s.is_proven());
    }

    #[test]
    fn failures_in_a_row_demote_and_an_answer_breaks_the_row() {
        let s = Standing::default();
        let trap = PolicyError::Trap("unreachable".into());
        for _ in 0..DEMOTE_AFTER - 1 {
            assert!(!s.failed(&trap, None));
        }
        s.answered();
        for _ in 0..DEMOTE_AFTER - 1 {
            assert!(!s.failed(&trap, None));
        }
        assert!(s.failed(&trap, None), "the fifth in a row demotes");
        assert!(!s.failed(&trap, None), "only once");
        assert!(s.demoted().unwrap().contains("unreachable"));
    }

    #[test]
    fn a_failure_rate_above_the_version_befores_rolls_back_once_judged() {
        let rule = RollbackRule { min_decisions: 100, max_failure_rate: 0.05, max_request_failure_rate: 1.0 };
        let trap = PolicyError::Trap("unreachable".into());
        // One decision in five fails: never five in a row.
        let s = Standing::default();
        let mut demoted_at = None;
        for i in 1..=200u64 {
            if i % 5 == 0 {
                if s.failed(&trap, Some((rule, 0.01))) {
                    demoted_at = Some(i);
                }
            } else {
                s.answered();
            }
        }
        assert_eq!(demoted_at, Some(100), "judged once 100 decisions are in");
        assert!(s.demoted().unwrap().starts_with("rolled back: 20.0 % of its 100 decisions failed, against 1.0 %"));
        // The same rate is what the version before had: no rollback.
        let s = Standing::default();
        for i in 1..=200u64 {
            if i % 5 == 0 {
                assert!(!s.failed(&trap, Some((rule, 0.18))));
            } else {
                s.answered();
            }
        }
        assert!((s.failure_rate() - 0.2).abs() < 1e-9);
    }

    #[test]
    fn a_busy_machine_never_demotes() {
        let s = Standing::default();
        for _ in 0..100 {
            assert!(!s.failed(&PolicyError::Preempted(5), None));
        }
        assert!(s.demoted().is_none());
    }
}
