//! Shadow mode: a candidate policy (`[policy] shadows = { NAME =
//! "CANDIDATE" }`) is asked every `route` and `on-attempt` the policy it
//! shadows answered, with the same inputs, off the request path: the
//! request puts a copy in a bounded queue (dropped when full, never waited
//! for, and waking nobody) and goes on with its own answer. A task drains
//! the queue every few milliseconds, asks the candidate, compares its
//! decisions with what was decided, and keeps the agreement rate and the
//! latest disagreements.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::call::CallContext;
use crate::decision::{AttemptOutcome, NextStep, RequestInfo, RouteDecision};
use crate::host::PolicyHost;

/// Decisions waiting for the candidate; more are dropped (and counted).
const QUEUE: usize = 4096;
/// How often the queue is drained. A request never wakes the task: a wake-up
/// per decision (a futex, a context switch) would cost the request path
/// more than the copy does.
const DRAIN_EVERY: Duration = Duration::from_millis(10);
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
    /// Of those, another decision.
    pub disagreed: u64,
    /// Of those, decisions the candidate failed (trap, deadline, not loaded).
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
    queue: Mutex<VecDeque<Job>>,
    reports: Mutex<BTreeMap<String, ShadowReport>>,
}

impl Shadows {
    /// The pairs, with an empty queue.
    pub fn new(pairs: &BTreeMap<String, String>) -> Arc<Shadows> {
        let reports = pairs
            .iter()
            .map(|(p, c)| (c.clone(), ShadowReport { policy: p.clone(), candidate: c.clone(), ..Default::default() }))
            .collect();
        let pairs = pairs.iter().map(|(p, c)| (p.clone(), Arc::from(c.as_str()))).collect();
        Arc::new(Shadows { pairs, queue: Mutex::new(VecDeque::new()), reports: Mutex::new(reports) })
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
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if queue.len() < QUEUE {
            queue.push_back(job);
        } else {
            drop(queue);
            self.report(candidate, |r| r.dropped += 1);
        }
    }

    /// Every pair's report.
    pub fn reports(&self) -> Vec<ShadowReport> {
        self.reports.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// Drains the queue every [`DRAIN_EVERY`], asking the candidates, until the host is gone.
    pub async fn run(self: Arc<Self>, host: Weak<PolicyHost>) {
        let mut tick = tokio::time::interval(DRAIN_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let jobs = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()));
            let Some(host) = host.upgrade() else { return };
            for job in jobs {
                self.ask(&host, job).await;
            }
        }
    }

    async fn ask(&self, host: &PolicyHost, job: Job) {
        let Some(version) = host.current(&job.candidate) else {
            self.report(&job.candidate, |r| {
                r.compared += 1;
                r.failed += 1;
            });
            return;
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
                    r.disagreed += 1;
                    // The first ten, then one in a thousand: a log, not a flood.
                    let disagreed = r.disagreed;
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
