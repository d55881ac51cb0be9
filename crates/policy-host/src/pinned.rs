//! A request's pinned policy: the version current when the request
//! started, asked each decision through the fallback chain (pinned version
//! → the newest version that proved itself → the embedded version → the
//! native fallback), keeping every version's standing; and the request's end,
//! told to a canary's trial.

use std::sync::Arc;

use crate::PolicyError;
use crate::call::CallContext;
use crate::canary::{Side, Trial};
use crate::decision::{AttemptOutcome, NextStep, Recovery, RequestInfo, RouteDecision, StreamBreak};
use crate::host::{Decided, PolicyHost, Slot};
use crate::native;
use crate::version::PolicyVersion;

/// A request's view of its policy: the version current when it started, kept
/// for the whole request even if a newer one is swapped in meanwhile.
#[derive(Clone)]
pub struct PinnedPolicy {
    pub(crate) host: Arc<PolicyHost>,
    pub(crate) slot: Option<Arc<Slot>>,
    pub(crate) version: Option<Arc<PolicyVersion>>,
    pub(crate) call: Arc<CallContext>,
    /// The trial this request is part of, and on which side.
    pub(crate) trial: Option<(Arc<Trial>, Side)>,
}

/// What a request asks its policy.
enum Question<'a> {
    Route(&'a RequestInfo),
    OnAttempt(&'a RequestInfo, &'a AttemptOutcome),
    OnStreamBreak(&'a RequestInfo, &'a StreamBreak),
}

/// A policy's answer to a [`Question`].
enum Answer {
    Route(RouteDecision),
    Step(NextStep),
    Recovery(Recovery),
}

impl PinnedPolicy {
    /// The request ended: `failed` when the client got no answer (a 5xx or
    /// 429 from the gateway, a stream that broke for good). A request a
    /// canary decided counts toward its rollback verdict against the
    /// serving version's requests meanwhile (`[policy]
    /// rollback_request_failure_rate`).
    pub fn finished(&self, failed: bool) {
        let (Some((trial, side)), Some(rule)) = (&self.trial, self.host.rollback) else { return };
        let Some(why) = trial.finished(*side, failed, rule.max_request_failure_rate, rule.min_decisions) else {
            return;
        };
        if trial.version.standing().demote(why) {
            self.host.announce_demoted(self.slot.as_ref(), &trial.version);
        }
    }

    /// Label of the version this request runs on (`native@builtin` if none).
    pub fn label(&self) -> Arc<str> {
        self.version.as_ref().map_or_else(|| self.host.native_label.clone(), |v| v.label().clone())
    }

    /// Asks `version` the question.
    async fn ask(&self, version: &PolicyVersion, question: &Question<'_>) -> Result<Answer, PolicyError> {
        match *question {
            Question::Route(request) => version.route(request, self.call.clone()).await.map(Answer::Route),
            Question::OnAttempt(request, outcome) => {
                version.on_attempt(request, outcome, self.call.clone()).await.map(Answer::Step)
            }
            Question::OnStreamBreak(request, broken) => {
                version.on_stream_break(request, broken, self.call.clone()).await.map(Answer::Recovery)
            }
        }
    }

    /// Asks `version`, timing it for the observer.
    async fn timed(
        &self,
        version: &PolicyVersion,
        hook: crate::Hook,
        question: &Question<'_>,
    ) -> Result<Answer, PolicyError> {
        let started = std::time::Instant::now();
        let answer = self.ask(version, question).await;
        if let Some(observer) = self.host.observer.get() {
            observer.decided(version.name(), hook, started.elapsed());
            let retired = version.retirements_to_tell();
            if retired > 0 {
                observer.instances_retired(version.name(), retired);
            }
        }
        answer
    }

    /// Asks the pinned version (unless demoted), then the fallbacks;
    /// `None` when none could answer. Keeps every version's standing and
    /// tells the observer who answered when the pinned version could not.
    async fn decide(&self, question: Question<'_>) -> Option<Decided<Answer>> {
        let hook = match question {
            Question::Route(_) => crate::Hook::Route,
            Question::OnAttempt(..) => crate::Hook::OnAttempt,
            Question::OnStreamBreak(..) => crate::Hook::OnStreamBreak,
        };
        let what = hook.name();
        let slot = self.slot.as_ref();
        let mut failure: Option<(String, &'static str)> = None;
        let pinned = self.version.as_ref().filter(|v| v.standing().demoted().is_none());
        if let Some(version) = pinned {
            match self.timed(version, hook, &question).await {
                Ok(value) => {
                    self.host.answered(slot, version);
                    return Some(Decided { value, answered_by: version.label().clone() });
                }
                Err(e) => {
                    failure = Some((version.name().to_owned(), e.reason()));
                    self.host.failed(slot, version, what, &e);
                }
            }
        } else if let Some(version) = &self.version {
            failure = Some((version.name().to_owned(), "demoted"));
        }
        let tell = |failure: &Option<(String, &'static str)>, to: crate::FallbackTo| {
            if let (Some((policy, reason)), Some(observer)) = (failure, self.host.observer.get()) {
                observer.fell_back(policy, hook, reason, to);
            }
        };
        for version in slot.map(|s| s.fallbacks(self.version.as_ref())).unwrap_or_default() {
            match self.timed(&version, hook, &question).await {
                Ok(value) => {
                    self.host.answered(slot, &version);
                    let embedded = slot.and_then(|s| s.embedded.load_full()).is_some_and(|e| Arc::ptr_eq(&e, &version));
                    tell(&failure, if embedded { crate::FallbackTo::Embedded } else { crate::FallbackTo::LastGood });
                    return Some(Decided { value, answered_by: version.label().clone() });
                }
                Err(e) => {
                    if failure.is_none() {
                        failure = Some((version.name().to_owned(), e.reason()));
                    }
                    self.host.failed(slot, &version, what, &e);
                }
            }
        }
        tell(&failure, crate::FallbackTo::Native);
        None
    }

    /// Offers the decision to the candidate shadowing this request's policy, if any.
    fn shadow(&self, asked: impl FnOnce() -> crate::shadow::Asked) {
        if let (Some(shadows), Some(version)) = (&self.host.shadows, &self.version) {
            shadows.offer(version.name(), &self.call, asked);
        }
    }

    /// `route`, answered by the first version that can, else the native fallback.
    pub async fn route(&self, request: &RequestInfo) -> Decided<RouteDecision> {
        match self.decide(Question::Route(request)).await {
            Some(Decided { value: Answer::Route(value), answered_by }) => {
                self.shadow(|| crate::shadow::Asked::Route(request.clone(), value.clone()));
                Decided { value, answered_by }
            }
            _ => Decided {
                value: native::route(&self.host.topology, &self.host.shared.health, request),
                answered_by: self.host.native_label.clone(),
            },
        }
    }

    /// `on-attempt`, answered by the first version that can, else the native fallback.
    pub async fn on_attempt(&self, request: &RequestInfo, outcome: &AttemptOutcome) -> Decided<NextStep> {
        match self.decide(Question::OnAttempt(request, outcome)).await {
            Some(Decided { value: Answer::Step(value), answered_by }) => {
                self.shadow(|| crate::shadow::Asked::OnAttempt(request.clone(), outcome.clone(), value));
                Decided { value, answered_by }
            }
            _ => Decided {
                value: native::on_attempt(&self.host.topology, &self.host.shared.health, request, outcome),
                answered_by: self.host.native_label.clone(),
            },
        }
    }

    /// `on-stream-break`, answered by the first version that can, else the native fallback.
    pub async fn on_stream_break(&self, request: &RequestInfo, broken: &StreamBreak) -> Decided<Recovery> {
        match self.decide(Question::OnStreamBreak(request, broken)).await {
            Some(Decided { value: Answer::Recovery(value), answered_by }) => Decided { value, answered_by },
            _ => Decided {
                value: native::on_stream_break(&self.host.topology, &self.host.shared.health, request, broken),
                answered_by: self.host.native_label.clone(),
            },
        }
    }
}
