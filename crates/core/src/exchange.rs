//! One client request from the policy's `route` decision to the final
//! answer. Every choice — which target, whether to retry, how long to wait,
//! when to give up or degrade — is asked of the request's policy; this file
//! only carries the choices out, within the route's deadline.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::BodyExt;
use switchyard_policy_host::{
    Api, AttemptOutcome, CallContext, Degrade, NextStep, OutcomeKind, PinnedPolicy, RequestInfo, RouteDecision,
};
use switchyard_wire::RequestPeek;
use tokio::time::Instant;

use crate::ResponseBody;
use crate::gateway::Shared;
use crate::relay::{Relay, StreamSource};
use crate::respond::{self, Meta};
use crate::upstream::{self, AnswerBody, Attempt};

/// Whatever a policy says, a request makes at most this many attempts.
pub(crate) const MAX_ATTEMPTS: u32 = 10;

pub(crate) struct Exchange {
    shared: Arc<Shared>,
    route: usize,
    peek: RequestPeek,
    body: Bytes,
    policy: PinnedPolicy,
    deadline: Instant,
    meta: Meta,
    tried: Vec<u32>,
}

/// What to do next after a decision.
enum Step {
    Attempt { target: u32, delay: Duration },
    Answer(Response<ResponseBody>),
}

impl Exchange {
    pub fn new(
        shared: Arc<Shared>,
        route: usize,
        peek: RequestPeek,
        body: Bytes,
        call: CallContext,
        started: Instant,
    ) -> Self {
        let entry = &shared.routes[route];
        let deadline = started + entry.timeout;
        let policy = shared.policies.pin(&entry.policy, call);
        let meta = Meta { provider: None, attempts: 0, policy: Some(policy.label()), degraded: None };
        Exchange { shared, route, peek, body, policy, deadline, meta, tried: Vec::new() }
    }

    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    fn request_info(&self) -> RequestInfo {
        RequestInfo {
            api: Api::OpenaiChat,
            route: self.shared.routes[self.route].index,
            streaming: self.peek.stream,
            estimated_input_tokens: self.peek.estimated_input_tokens,
            deadline_ms: u32::try_from(self.remaining().as_millis()).unwrap_or(u32::MAX),
        }
    }

    pub async fn run(mut self) -> Response<ResponseBody> {
        let decided = self.policy.route(&self.request_info()).await;
        self.meta.policy = Some(decided.answered_by);
        let (mut step, per_try) = match decided.value {
            RouteDecision::Send(plan) => (
                Step::Attempt { target: plan.targets[0], delay: Duration::ZERO },
                Duration::from_millis(plan.per_try_timeout_ms.into()),
            ),
            // A fallback chosen up front gets the route's whole deadline per try.
            RouteDecision::Degrade(d) => (self.degrade(d, None), self.shared.routes[self.route].timeout),
        };
        loop {
            let (target, delay) = match step {
                Step::Answer(response) => return response,
                Step::Attempt { target, delay } => (target, delay),
            };
            if self.meta.attempts >= MAX_ATTEMPTS {
                return self.give_up(format!("gave up after {MAX_ATTEMPTS} attempts"));
            }
            if delay >= self.remaining() {
                return self.give_up("the route's deadline would pass before the next attempt".into());
            }
            if !delay.is_zero() {
                // (A zero sleep would still wait for the timer's next 1 ms tick.)
                tokio::time::sleep(delay).await;
            }
            step = self.attempt(target, per_try).await;
        }
    }

    async fn attempt(&mut self, target: u32, per_try: Duration) -> Step {
        let remaining = self.remaining();
        if remaining.is_zero() {
            return Step::Answer(self.give_up("the route's deadline passed".into()));
        }
        let provider = self.shared.target_provider[target as usize].clone();
        let model = &self.shared.topology.targets[target as usize].model;
        let body = switchyard_wire::request::with_model(&self.body, &self.peek.model, model);
        self.meta.attempts += 1;
        self.tried.push(target);
        let inflight = self.shared.health.start(target);
        let attempt = upstream::attempt(&provider, body, self.peek.stream, per_try.min(remaining)).await;
        // A request the provider refused as invalid says nothing about the provider's health.
        let healthy = !attempt.kind.is_provider_failure();
        self.shared.health.record(target, healthy, attempt.elapsed, attempt.retry_after);
        if attempt.kind == OutcomeKind::Success {
            self.meta.provider = Some(provider.name.clone());
            return Step::Answer(self.relay(attempt, target, per_try, inflight));
        }
        drop(inflight);
        tracing::debug!(provider = %provider.name, attempt = self.meta.attempts, kind = ?attempt.kind, "attempt failed: {}", attempt.detail);
        let outcome = AttemptOutcome {
            target,
            attempt: self.meta.attempts,
            tried: self.tried.clone(),
            kind: attempt.kind,
            http_status: attempt.status.map(|s| s.as_u16()),
            retry_after_ms: attempt.retry_after.map(|d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX)),
            elapsed_ms: u32::try_from(attempt.elapsed.as_millis()).unwrap_or(u32::MAX),
        };
        let next = self.policy.on_attempt(&self.request_info(), &outcome).await;
        match next.value {
            NextStep::Accept => {
                self.meta.provider = Some(provider.name.clone());
                Step::Answer(self.pass_on_failure(attempt))
            }
            NextStep::Retry(r) => Step::Attempt { target: r.target, delay: Duration::from_millis(r.delay_ms.into()) },
            NextStep::Degrade(d) => self.degrade(d, Some(&attempt)),
        }
    }

    fn degrade(&mut self, degrade: Degrade, last: Option<&Attempt>) -> Step {
        match degrade {
            Degrade::Fallback(target) => {
                self.meta.degraded = Some("fallback");
                Step::Attempt { target, delay: Duration::ZERO }
            }
            Degrade::Unavailable(ms) => {
                let reason =
                    last.map_or_else(|| "the policy sent this request nowhere".to_owned(), |a| a.detail.clone());
                Step::Answer(respond::unavailable(
                    ms.into(),
                    format!("No provider could answer: {reason}."),
                    &self.meta,
                ))
            }
        }
    }

    /// 503 with the soonest Retry-After any of the route's targets asked for.
    fn give_up(&self, why: String) -> Response<ResponseBody> {
        let targets = &self.shared.topology.routes[self.route].targets;
        let wait = self.shared.health.soonest_retry_after(targets).unwrap_or(Duration::from_secs(1));
        respond::unavailable(wait.as_millis() as u64, format!("No provider could answer: {why}."), &self.meta)
    }

    /// The policy accepted a failed attempt: pass on the provider's answer as
    /// it is, or say what went wrong when there was no answer.
    fn pass_on_failure(&self, attempt: Attempt) -> Response<ResponseBody> {
        match attempt.answer {
            Some(answer) => self.respond_with(
                answer.head,
                match answer.body {
                    AnswerBody::Full(bytes) => respond::full(bytes),
                    AnswerBody::Stream { first, .. } => respond::full(first),
                },
            ),
            None => {
                let status = if attempt.kind == OutcomeKind::Timeout {
                    StatusCode::GATEWAY_TIMEOUT
                } else {
                    StatusCode::BAD_GATEWAY
                };
                respond::upstream_failed(status, format!("The provider failed: {}.", attempt.detail), &self.meta)
            }
        }
    }

    fn relay(
        &self,
        attempt: Attempt,
        target: u32,
        idle: Duration,
        inflight: Option<switchyard_policy_host::health::InflightGuard>,
    ) -> Response<ResponseBody> {
        let Some(answer) = attempt.answer else {
            return respond::upstream_failed(StatusCode::BAD_GATEWAY, "The provider's answer was lost.", &self.meta);
        };
        let body = match answer.body {
            AnswerBody::Full(bytes) => respond::full(bytes),
            AnswerBody::Stream { first, rest } => {
                let source = StreamSource {
                    health: self.shared.health.clone(),
                    target,
                    provider: self.meta.provider.clone().unwrap_or_else(|| "none".into()),
                    inflight,
                };
                Relay::new(first, rest, idle, source).boxed_unsync()
            }
        };
        self.respond_with(answer.head, body)
    }

    fn respond_with(&self, head: http::response::Parts, body: ResponseBody) -> Response<ResponseBody> {
        let mut response = Response::new(body);
        *response.status_mut() = head.status;
        for name in [header::CONTENT_TYPE, header::CACHE_CONTROL] {
            if let Some(v) = head.headers.get(&name) {
                response.headers_mut().insert(name, v.clone());
            }
        }
        if let Some(v) = head.headers.get("x-request-id") {
            response.headers_mut().insert("x-upstream-request-id", v.clone());
        }
        if !response.headers().contains_key(header::CONTENT_TYPE) {
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        respond::stamp(&mut response, &self.meta);
        response
    }
}
