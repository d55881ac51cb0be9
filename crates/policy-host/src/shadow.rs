//! Shadow mode: a candidate policy (`[policy] shadows = { NAME =
//! "CANDIDATE" }`) is asked every `route` and `on-attempt` the policy it
//! shadows answered, with the same inputs, off the request path: the
//! request hands a copy to a bounded queue (dropped when full, never
//! waited for) and goes on with its own answer. A task compares the
//! candidate's decisions with what was decided, and keeps the agreement
//! rate and the latest disagreements.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::mpsc;

use crate::call::CallContext;
use crate::decision::{AttemptOutcome, NextStep, RequestInfo, RouteDecision};
use crate::host::PolicyHost;

/// Decisions waiting for the candidate; more are dropped (and counted).
const QUEUE: usize = 1024;
/// Disagreements kept per candidate.
const SAMPLES: usize = 20;

/// One decision the candidate is asked again.
pub(crate) enum Asked {
    Route(RequestInfo, RouteDecision),
    OnAttempt(RequestInfo, AttemptOutcome, NextStep),
}

pub(crate) struct Job {
    candidate: Arc<str>,
    call: Arc<CallContext>,
    asked: Asked,
}

/// How a candidate compares, so far.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ShadowReport {
    /// The policy it shadows.
    pub policy: String,
    /// The candidate.
    pub candidate: String,
    /// Decisions compared.
    pub compared: u64,
    /// Of those, the same decision.
    pub agreed: u64,
    /// Decisions the candidate failed (trap, deadline, not loaded).
    pub failed: u64,
    /// Decisions not handed over because the queue was full.
    pub dropped: u64,
    /// The latest disagreements, newest last.
    pub disagreements: VecDeque<String>,
}

/// The shadow pairs of a host and their reports.
pub(crate) struct Shadows {
    /// Policy name → candidate name.
    pairs: BTreeMap<String, Arc<str>>,
    tx: mpsc::Sender<Job>,
    reports: Mutex<BTreeMap<String, ShadowReport>>,
}

impl Shadows {
    /// The pairs, and the queue's receiving end for [`Shadows::run`].
    pub fn new(pairs: &BTreeMap<String, String>) -> (Arc<Shadows>, mpsc::Receiver<Job>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let reports = pairs
            .iter()
            .map(|(p, c)| (c.clone(), ShadowReport { policy: p.clone(), candidate: c.clone(), ..Default::default() }))
            .collect();
        let pairs = pairs.iter().map(|(p, c)| (p.clone(), Arc::from(c.as_str()))).collect();
        (Arc::new(Shadows { pairs, tx, reports: Mutex::new(reports) }), rx)
    }

    fn report(&self, candidate: &str, f: impl FnOnce(&mut ShadowReport)) {
        let mut reports = self.reports.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = reports.get_mut(candidate) {
            f(r);
        }
    }

    /// Hands `asked` (decided by `policy`) to its candidate, if it has one;
    /// never waits.
    pub fn offer(&self, policy: &str, call: &Arc<CallContext>, asked: impl FnOnce() -> Asked) {
        let Some(candidate) = self.pairs.get(policy) else { return };
        let job = Job { candidate: candidate.clone(), call: call.clone(), asked: asked() };
        if self.tx.try_send(job).is_err() {
            self.report(candidate, |r| r.dropped += 1);
        }
    }

    /// Every pair's report.
    pub fn reports(&self) -> Vec<ShadowReport> {
        self.reports.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// Asks the candidates, one decision at a time, until the host is gone.
    pub async fn run(self: Arc<Self>, host: Weak<PolicyHost>, mut rx: mpsc::Receiver<Job>) {
        while let Some(job) = rx.recv().await {
            let Some(host) = host.upgrade() else { return };
            let Some(version) = host.current(&job.candidate) else {
                self.report(&job.candidate, |r| r.failed += 1);
                continue;
            };
            let (theirs, ours) = match &job.asked {
                Asked::Route(request, decided) => {
                    (version.route(request, job.call.clone()).await.map(|d| format!("{d:?}")), format!("{decided:?}"))
                }
                Asked::OnAttempt(request, outcome, decided) => (
                    version.on_attempt(request, outcome, job.call.clone()).await.map(|d| format!("{d:?}")),
                    format!("{decided:?}"),
                ),
            };
            let hook = match job.asked {
                Asked::Route(..) => "route",
                Asked::OnAttempt(..) => "on-attempt",
            };
            self.report(&job.candidate, |r| {
                r.compared += 1;
                match theirs {
                    Ok(theirs) if theirs == ours => r.agreed += 1,
                    Ok(theirs) => {
                        let line = format!("{hook}: decided {ours}; {} would decide {theirs}", r.candidate);
                        // The first ten, then one in a thousand: a log, not a flood.
                        let disagreed = r.compared - r.agreed - r.failed;
                        if disagreed <= 10 || disagreed.is_multiple_of(1000) {
                            tracing::info!(policy = %r.policy, candidate = %r.candidate, disagreed, "shadow disagrees: {line}");
                        }
                        if r.disagreements.len() == SAMPLES {
                            r.disagreements.pop_front();
                        }
                        r.disagreements.push_back(line);
                    }
                    Err(e) => {
                        r.failed += 1;
                        tracing::info!(policy = %r.policy, candidate = %r.candidate, "shadow failed a {hook}: {e}");
                    }
                }
            });
        }
    }
}
