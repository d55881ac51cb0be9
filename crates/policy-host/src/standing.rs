//! How a loaded version has served: a version *proves itself* by answering
//! enough decisions, and is *demoted* after a few failed decisions in a row
//! (traps, its own deadline overruns, memory, invalid answers — never a busy
//! machine's overrun). A demoted version is not called again; it stays
//! demoted until its file changes (which makes a new version).

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
    demoted: OnceLock<String>,
}

impl Standing {
    /// Counts an answered decision; true exactly once, when it proves the version.
    pub(crate) fn answered(&self) -> bool {
        if self.failures_in_a_row.load(Ordering::Relaxed) != 0 {
            self.failures_in_a_row.store(0, Ordering::Relaxed);
        }
        // Once proven, only a load: no shared write per decision.
        if self.answered.load(Ordering::Relaxed) >= PROVEN_AFTER {
            return false;
        }
        self.answered.fetch_add(1, Ordering::Relaxed) + 1 == PROVEN_AFTER
    }

    /// Counts a failed decision; true exactly once, when it demotes the version.
    pub(crate) fn failed(&self, error: &PolicyError) -> bool {
        if !error.is_the_policys_fault() {
            return false;
        }
        let in_a_row = self.failures_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
        in_a_row >= DEMOTE_AFTER
            && self.demoted.set(format!("{in_a_row} decisions in a row failed, the last: {error}")).is_ok()
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
            assert!(!s.failed(&trap));
        }
        s.answered();
        for _ in 0..DEMOTE_AFTER - 1 {
            assert!(!s.failed(&trap));
        }
        assert!(s.failed(&trap), "the fifth in a row demotes");
        assert!(!s.failed(&trap), "only once");
        assert!(s.demoted().unwrap().contains("unreachable"));
    }

    #[test]
    fn a_busy_machine_never_demotes() {
        let s = Standing::default();
        for _ in 0..100 {
            assert!(!s.failed(&PolicyError::Preempted(5)));
        }
        assert!(s.demoted().is_none());
    }
}
