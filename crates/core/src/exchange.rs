//! One client request from the policy's `route` decision to the final
//! answer. Every choice — which target, whether to retry, how long to wait,
//! when to hedge, give up or degrade — is asked of the request's policy; this
//! file carries the choices out, within the route's deadline, and holds the
//! gateway's own guard rails: a target whose circuit breaker is open gets no
//! traffic while another target of the route would take it, and retries
//! come out of the gateway-wide retry budget.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::BodyExt;
use switchyard_policy_host::{
    Api, AttemptLimits, AttemptOutcome, CallContext, Degrade, NextStep, OutcomeKind, PinnedPolicy, RequestInfo,
    RouteDecision,
};
use switchyard_wire::{Api as WireApi, RequestPeek};
use tokio::time::Instant;

use crate::ResponseBody;
use crate::cache::CacheKey;
use crate::gateway::Shared;
use crate::hedge::{Raced, race};
use crate::limits::Limits;
use crate::quota::Hold;
use crate::relay::{Relay, StreamSource};
use crate::respond::{self, Meta};
use crate::upstream::{self, AnswerBody, Attempt, Provider};
use switchyard_policy_host::health::InflightGuard;

/// Whatever a policy says, a request makes at most this many attempts.
pub(crate) const MAX_ATTEMPTS: u32 = 10;

pub(crate) struct Exchange {
    pub(crate) shared: Arc<Shared>,
    pub(crate) route: usize,
    /// The API the client speaks: answers and errors reach it in this one.
    pub(crate) client: WireApi,
    /// Client headers for providers of the client's API (`anthropic-version`, ...).
    pub(crate) forward: Vec<(http::HeaderName, HeaderValue)>,
    /// The client's Messages request, parsed at the door (Anthropic clients).
    pub(crate) parsed: Option<switchyard_wire::anthropic::MessagesRequest>,
    pub(crate) peek: RequestPeek,
    pub(crate) body: Bytes,
    pub(crate) policy: PinnedPolicy,
    /// When the request reached the gateway.
    pub(crate) started: Instant,
    deadline: Instant,
    /// The limits the policy's plan set (the rest come from the route and the gateway).
    plan_limits: AttemptLimits,
    /// The access log line being filled in (`None` when the log is off).
    pub(crate) record: Option<switchyard_telemetry::access_log::Record>,
    pub(crate) meta: Meta,
    pub(crate) tried: Vec<u32>,
    /// The request's trace (`None` when traces are off).
    pub(crate) trace: Option<switchyard_telemetry::traces::RequestTrace>,
    /// The gateway key's admission (`None` on an open gateway): its
    /// concurrency slot, priority and token estimate, settled at the end.
    pub(crate) admission: Option<switchyard_access::Admission>,
}

/// What to do next after a decision.
enum Step {
    Attempt {
        target: u32,
        delay: Duration,
        /// A retry (spends the retry budget), not the first attempt or a fallback.
        retry: bool,
        /// Hedge after this long with the first of these targets the breaker admits.
        hedge: Option<(Duration, Vec<u32>)>,
    },
    Answer(Response<ResponseBody>),
    /// A stream committed: relay it (with the exchange, to recover it if it breaks).
    Relay(Box<Finished>),
}

/// One attempt that ran to its end.
pub(crate) struct Finished {
    pub target: u32,
    pub provider: Arc<Provider>,
    pub attempt: Attempt,
    pub inflight: Option<Hold>,
    /// The attempt's trace span (when the request is traced).
    pub span: Option<switchyard_telemetry::traces::AttemptSpan>,
}

impl Exchange {
    pub fn new(
        shared: Arc<Shared>,
        route: usize,
        client: WireApi,
        peek: RequestPeek,
        body: Bytes,
        call: CallContext,
        started: Instant,
    ) -> Self {
        let entry = &shared.routes[route];
        let deadline = started + entry.timeout;
        let policy = shared.policies.pin(&entry.policy, call);
        let meta = Meta { provider: None, attempts: 0, policy: Some(policy.label()), degraded: None };
        Exchange {
            shared,
            route,
            client,
            forward: Vec::new(),
            parsed: None,
            peek,
            body,
            policy,
            started,
            deadline,
            plan_limits: AttemptLimits::DEFAULT,
            record: None,
            meta,
            tried: Vec::new(),
            trace: None,
            admission: None,
        }
    }

    /// Records the request's trace spans under `trace`.
    pub fn traced(mut self, trace: Option<switchyard_telemetry::traces::RequestTrace>) -> Self {
        self.trace = trace;
        self
    }

    /// Keeps the client's request as parsed at the door, for translations.
    pub fn parsed(mut self, request: Option<switchyard_wire::anthropic::MessagesRequest>) -> Self {
        self.parsed = request;
        self
    }

    /// Logs the request under `request_id`, asked with the gateway key named
    /// `key` (when the access log is on).
    pub fn logged_as(mut self, request_id: Arc<str>, key: Option<Arc<str>>) -> Self {
        if self.shared.access_log.enabled() {
            let route = self.shared.topology.routes[self.route].model.clone();
            self.record = Some(switchyard_telemetry::access_log::Record::new(
                self.shared.access_log.clone(),
                request_id,
                self.client,
                &route,
                &self.peek.model,
                self.peek.stream,
                key,
            ));
        }
        self
    }

    /// Records a finished attempt in the metrics and the access log line.
    pub(crate) fn log_attempt(
        &mut self,
        target: u32,
        attempt: &Attempt,
        span: Option<switchyard_telemetry::traces::AttemptSpan>,
    ) {
        self.shared.metrics.attempt(target, attempt.kind, attempt.elapsed);
        let t = &self.shared.topology.targets[target as usize];
        if let (Some(trace), Some(span)) = (&self.trace, span) {
            let name = format!("{}/{}", t.provider, t.model);
            let outcome = switchyard_telemetry::access_log::outcome_name(attempt.kind);
            trace.attempt_ended(span, &name, outcome, attempt.status.map(|s| s.as_u16()));
        }
        let Some(record) = self.record.as_mut() else { return };
        record.attempt(
            format!("{}/{}", t.provider, t.model),
            attempt.kind,
            attempt.status.map(|s| s.as_u16()),
            attempt.elapsed,
        );
    }

    /// Sends these client headers along to providers of the client's API.
    pub fn forwarding(mut self, headers: Vec<(http::HeaderName, HeaderValue)>) -> Self {
        self.forward = headers;
        self
    }

    pub(crate) fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    pub(crate) fn request_info(&self) -> RequestInfo {
        RequestInfo {
            api: match self.client {
                WireApi::OpenAi => Api::OpenaiChat,
                WireApi::Anthropic => Api::AnthropicMessages,
            },
            route: self.shared.routes[self.route].index,
            streaming: self.peek.stream,
            estimated_input_tokens: self.peek.estimated_input_tokens,
            deadline_ms: u32::try_from(self.remaining().as_millis()).unwrap_or(u32::MAX),
            caller: self.caller(),
        }
    }

    /// Runs the exchange to its answer; logs it (a stream: when it ends).
    pub async fn run(mut self) -> Response<ResponseBody> {
        match self.steps().await {
            Step::Relay(finished) => self.relay(*finished),
            Step::Answer(response) => {
                self.log_answer(response.status().as_u16(), switchyard_wire::usage::Usage::default());
                response
            }
            Step::Attempt { .. } => unreachable!("steps() ends with an answer or a stream"),
        }
    }

    /// The metrics and access log line of an answer that is not a stream.
    fn log_answer(&mut self, status: u16, usage: switchyard_wire::usage::Usage) {
        self.log_end(status, usage, None);
    }

    /// The metrics and access log line of a request's end (`stream_end`: how a stream ended).
    pub(crate) fn log_end(
        &mut self,
        status: u16,
        usage: switchyard_wire::usage::Usage,
        stream_end: Option<&'static str>,
    ) {
        let latency = self.started.elapsed();
        // Whether the client got an answer, for a canary's rollback verdict
        // (a client that left says nothing about the policy).
        if stream_end != Some("client-gone") {
            self.policy.finished(status >= 500 || status == 429 || stream_end == Some("error"));
        }
        if let Some(trace) = &self.trace {
            let mut attributes = vec![
                opentelemetry::KeyValue::new("switchyard.attempts", i64::from(self.meta.attempts)),
                opentelemetry::KeyValue::new("switchyard.degraded", self.meta.degraded.unwrap_or("no")),
            ];
            if let Some(policy) = &self.meta.policy {
                attributes.push(opentelemetry::KeyValue::new("switchyard.policy", policy.to_string()));
            }
            if let Some(provider) = &self.meta.provider {
                attributes.push(opentelemetry::KeyValue::new("switchyard.provider", provider.to_string()));
            }
            if let Some(end) = stream_end {
                attributes.push(opentelemetry::KeyValue::new("switchyard.stream_end", end));
            }
            for (key, n) in [("gen_ai.usage.input_tokens", usage.input), ("gen_ai.usage.output_tokens", usage.output)] {
                if let Some(n) = n {
                    attributes.push(opentelemetry::KeyValue::new(key, n as i64));
                }
            }
            trace.end(status, attributes);
        }
        let metrics = &self.shared.metrics;
        let route = &self.shared.routes[self.route].name;
        metrics.request(self.route, self.client, status, self.meta.degraded, latency);
        let target = self.tried.last().copied();
        if let Some(target) = target {
            metrics.tokens(target, usage);
            self.shared.quotas.settle(target, self.peek.estimated_input_tokens, usage);
        }
        if let Some(admission) = &self.admission {
            let spend = target.map_or(0.0, |t| self.shared.quotas.price(t, usage));
            let (input, output) = (usage.input.unwrap_or(0), usage.output.unwrap_or(0));
            admission.settle(input, output, spend, time::OffsetDateTime::now_utc());
            let key = admission.tenant().label();
            if let Some(target) = target {
                metrics.key_usage(&key, route, target, usage, spend);
            }
        }
        let Some(record) = self.record.as_mut() else { return };
        record.finish(switchyard_telemetry::access_log::Ending {
            status,
            policy: self.meta.policy.as_deref(),
            provider: self.meta.provider.as_deref(),
            degraded: self.meta.degraded,
            latency,
            usage,
            stream_end,
        });
    }

    /// The decisions and attempts, up to an answer or a committed stream.
    async fn steps(&mut self) -> Step {
        let asked = std::time::SystemTime::now();
        let decided = self.policy.route(&self.request_info()).await;
        if let Some(trace) = &self.trace {
            trace.decision("route", &decided.answered_by, asked, format!("{:?}", decided.value));
        }
        self.meta.policy = Some(decided.answered_by);
        self.shared.budget.record_request();
        let mut step = match decided.value {
            RouteDecision::Send(plan) => {
                self.plan_limits = plan.limits;
                Step::Attempt {
                    target: plan.targets[0],
                    delay: Duration::ZERO,
                    retry: false,
                    hedge: plan
                        .hedge_after_ms
                        .map(|ms| (Duration::from_millis(ms.into()), plan.targets[1..].to_vec()))
                        .filter(|(_, rest)| !rest.is_empty()),
                }
            }
            RouteDecision::Degrade(d) => self.degrade(d, None).await,
        };
        loop {
            let (target, delay, retry, hedge) = match step {
                Step::Attempt { target, delay, retry, hedge } => (target, delay, retry, hedge),
                done => return done,
            };
            if self.meta.attempts >= MAX_ATTEMPTS {
                return Step::Answer(self.give_up(format!("gave up after {MAX_ATTEMPTS} attempts")));
            }
            if delay >= self.remaining() {
                return Step::Answer(self.give_up("the route's deadline would pass before the next attempt".into()));
            }
            if retry && !self.shared.budget.try_retry() {
                tracing::warn!(route = %self.peek.model, "retry budget spent: failing fast");
                let wait = self.longest_wait_ms();
                return Step::Answer(self.cached_or_unavailable(wait, "the gateway's retry budget is spent").await);
            }
            if !delay.is_zero() {
                // (A zero sleep would still wait for the timer's next 1 ms tick.)
                tokio::time::sleep(delay).await;
            }
            step = self.attempt(target, hedge).await;
        }
    }

    /// `wanted`, if its breaker admits an attempt; else the first of the
    /// route's other targets whose breaker does; `None` when no breaker of
    /// the route admits one (each open, or half-open with its probe out).
    pub(crate) fn admit(&self, wanted: u32) -> Option<(u32, InflightGuard)> {
        let health = &self.shared.health;
        if let Some(guard) = health.admit(wanted) {
            return Some((wanted, guard));
        }
        let route = &self.shared.topology.routes[self.route].targets;
        route.iter().filter(|&&t| t != wanted).find_map(|&other| {
            let guard = health.admit(other)?;
            tracing::debug!(wanted, instead = other, "breaker open: sending to another target of the route");
            Some((other, guard))
        })
    }

    /// The longest wait before the route's targets may all be tried again
    /// (cool-downs, Retry-Afters), for a 503's `Retry-After`; at least 1 s.
    fn longest_wait_ms(&self) -> u64 {
        let targets = &self.shared.topology.routes[self.route].targets;
        let wait = self.shared.health.longest_wait(targets).unwrap_or_default();
        (wait.as_millis() as u64).max(1000)
    }

    /// The limits of an attempt at `target` starting now: the plan's, the
    /// route's, the gateway's; a stream's first token must also come before
    /// the route's deadline.
    fn limits(&self, target: u32) -> Limits {
        let route = &self.shared.routes[self.route];
        let mut limits = crate::limits::resolve(
            &self.plan_limits,
            &route.limits,
            &self.shared.timeouts,
            &self.shared.health,
            target,
            self.peek.stream,
        );
        if self.peek.stream {
            limits.first_token = limits.first_token.min(self.remaining());
        }
        limits
    }

    /// Starts an attempt at `target`; the future owns all it needs, so a
    /// hedge can drop it (which closes its connection and records nothing).
    fn launch(&mut self, target: u32, hold: Hold) -> impl Future<Output = Finished> + use<> {
        self.meta.attempts += 1;
        self.tried.push(target);
        let limits = self.limits(target);
        let request = crate::translation::request(
            self.client,
            self.shared.target_provider[target as usize].api,
            &self.body,
            self.parsed.as_ref(),
            &self.peek.model,
            &self.shared.topology.targets[target as usize].model,
        );
        let traced = self.trace.as_ref().map(|t| t.attempt());
        launch(&self.shared, self.client, &self.forward, target, hold, request, self.peek.stream, limits, traced)
    }

    async fn attempt(&mut self, wanted: u32, hedge: Option<(Duration, Vec<u32>)>) -> Step {
        if self.remaining().is_zero() {
            return Step::Answer(self.give_up("the route's deadline passed".into()));
        }
        // Every breaker of the route open: only probes go upstream; this
        // request degrades at once instead of hammering a dead provider.
        let Some((target, inflight)) = self.admit(wanted) else {
            let wait = self.longest_wait_ms();
            return Step::Answer(self.cached_or_unavailable(wait, "every target's circuit breaker is open").await);
        };
        let permits = match self.enter_quota(target).await {
            Ok(permits) => permits,
            Err(shed) => return Step::Answer(respond::shed(self.client, shed, &self.meta)),
        };
        let first = self.launch(target, Hold::new(inflight, permits));
        let Raced { winner, earlier_failure } = match hedge {
            Some((after, candidates)) if after < self.remaining() => {
                let second = || {
                    let health = &self.shared.health;
                    let (target, guard) =
                        candidates.iter().filter(|&&t| t != target).find_map(|&t| health.admit(t).map(|g| (t, g)))?;
                    // A hedge never waits for a quota: no room, no hedge.
                    let tokens = self.peek.estimated_input_tokens;
                    let permits = self.shared.quotas.try_enter(target, self.priority(), tokens)?;
                    if !self.shared.budget.try_retry() {
                        return None;
                    }
                    tracing::debug!(first = wanted, hedge = target, "hedging");
                    Some(self.launch(target, Hold::new(guard, permits)))
                };
                race(first, after, second, |f: &Finished| f.attempt.kind == OutcomeKind::Success).await
            }
            _ => Raced { winner: first.await, earlier_failure: None },
        };
        if let Some(failed) = earlier_failure {
            tracing::debug!(provider = %failed.provider.name, kind = ?failed.attempt.kind, "hedged attempt failed: {}", failed.attempt.detail);
            self.log_attempt(failed.target, &failed.attempt, failed.span);
        }
        self.log_attempt(winner.target, &winner.attempt, winner.span);
        if winner.attempt.kind == OutcomeKind::Success {
            self.meta.provider = Some(winner.provider.name.clone());
            return Step::Relay(Box::new(winner));
        }
        let Finished { target, provider, attempt, inflight, .. } = winner;
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
        let asked = std::time::SystemTime::now();
        let next = self.policy.on_attempt(&self.request_info(), &outcome).await;
        if let Some(trace) = &self.trace {
            trace.decision("on-attempt", &next.answered_by, asked, format!("{:?}", next.value));
        }
        match next.value {
            NextStep::Accept => {
                self.meta.provider = Some(provider.name.clone());
                Step::Answer(self.pass_on_failure(attempt))
            }
            NextStep::Retry(r) => Step::Attempt {
                target: r.target,
                delay: Duration::from_millis(r.delay_ms.into()),
                retry: true,
                hedge: None,
            },
            NextStep::Degrade(d) => self.degrade(d, Some(&attempt)).await,
        }
    }

    async fn degrade(&mut self, degrade: Degrade, last: Option<&Attempt>) -> Step {
        match degrade {
            Degrade::Fallback(target) => {
                self.meta.degraded = Some("fallback");
                Step::Attempt { target, delay: Duration::ZERO, retry: false, hedge: None }
            }
            Degrade::Cached(ms) => {
                let reason = last.map_or("the policy sent this request nowhere", |a| a.detail.as_str()).to_owned();
                Step::Answer(self.cached_or_unavailable(ms.into(), &reason).await)
            }
            Degrade::Unavailable(ms) => {
                let reason =
                    last.map_or_else(|| "the policy sent this request nowhere".to_owned(), |a| a.detail.clone());
                Step::Answer(respond::unavailable(
                    self.client,
                    ms.into(),
                    format!("No provider could answer: {reason}."),
                    &self.meta,
                ))
            }
        }
    }

    fn cache_key(&self) -> Option<CacheKey> {
        if !self.shared.cache_enabled {
            return None;
        }
        CacheKey::of(self.client, &self.peek.model, &self.body)
    }

    /// The answer to an identical earlier request from the response cache
    /// (marked degraded), else 503 with `Retry-After` of `retry_after_ms`.
    async fn cached_or_unavailable(&mut self, retry_after_ms: u64, why: &str) -> Response<ResponseBody> {
        let hit = match self.cache_key() {
            Some(key) => self.shared.cache.get(&key).await,
            None => None,
        };
        if self.shared.cache_enabled {
            self.shared.metrics.cache_lookup(hit.is_some());
        }
        // A client that asked for a stream gets the cached answer replayed as one.
        let replayed = hit.and_then(|hit| match self.peek.stream {
            false => Some((hit.body.clone(), "application/json", hit)),
            true => match self.client {
                WireApi::OpenAi => switchyard_wire::replay::completion_as_sse(&hit.body),
                WireApi::Anthropic => switchyard_wire::replay::message_as_sse(&hit.body),
            }
            .map(|sse| (Bytes::from(sse), "text/event-stream", hit)),
        });
        if let Some((body, content_type, hit)) = replayed {
            self.meta.degraded = Some("cached");
            self.meta.provider = Some(hit.provider.clone());
            let mut response = Response::new(respond::full(body));
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            if let Ok(age) = HeaderValue::from_str(&hit.age.as_secs().to_string()) {
                response.headers_mut().insert(header::AGE, age);
            }
            respond::stamp(&mut response, &self.meta);
            return response;
        }
        respond::unavailable(self.client, retry_after_ms, format!("No provider could answer: {why}."), &self.meta)
    }

    /// 503 with the soonest Retry-After any of the route's targets asked for.
    fn give_up(&self, why: String) -> Response<ResponseBody> {
        let targets = &self.shared.topology.routes[self.route].targets;
        let wait = self.shared.health.soonest_retry_after(targets).unwrap_or(Duration::from_secs(1));
        respond::unavailable(
            self.client,
            wait.as_millis() as u64,
            format!("No provider could answer: {why}."),
            &self.meta,
        )
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
                respond::upstream_failed(
                    self.client,
                    status,
                    format!("The provider failed: {}.", attempt.detail),
                    &self.meta,
                )
            }
        }
    }

    /// The answer of a successful attempt, to the client: whole, or relayed
    /// as a stream that carries this exchange along to recover it.
    fn relay(mut self, finished: Finished) -> Response<ResponseBody> {
        let Finished { target, provider: _, attempt, inflight, .. } = finished;
        let Some(answer) = attempt.answer else {
            let response = respond::upstream_failed(
                self.client,
                StatusCode::BAD_GATEWAY,
                "The provider's answer was lost.",
                &self.meta,
            );
            self.log_answer(response.status().as_u16(), switchyard_wire::usage::Usage::default());
            return response;
        };
        let (first, rest, translate) = match answer.body {
            AnswerBody::Full(bytes) => {
                let usage = switchyard_wire::usage::scan(self.client, &bytes);
                self.log_answer(answer.head.status.as_u16(), usage);
                self.keep_in_cache(&answer.head, &bytes);
                return self.respond_with(answer.head, respond::full(bytes));
            }
            AnswerBody::Stream { first, rest, translate } => (first, rest, translate),
        };
        let source = StreamSource {
            health: self.shared.health.clone(),
            target,
            provider: self.meta.provider.clone().unwrap_or_else(|| "none".into()),
            inflight,
            latency: attempt.elapsed,
            recorded: false,
        };
        self.shared.health.record_first_token(target, attempt.elapsed);
        let since_start = self.started.elapsed();
        self.shared.metrics.first_token(self.route, self.client, since_start);
        if let Some(record) = self.record.as_mut() {
            record.first_token(since_start);
        }
        let idle = self.limits(target).idle;
        let mut response = self.respond_with(answer.head, respond::full(Bytes::new()));
        let client = self.client;
        let upstream = crate::relay::Upstream::new(rest, source, translate, None, idle);
        let closing = self.shared.closing.clone();
        let recovery = crate::recovery::StreamRecovery::new(self);
        *response.body_mut() = Relay::new(client, first, upstream, Some(Box::new(recovery)), closing).boxed_unsync();
        response
    }

    /// Keeps a successful whole answer for `degrade: cached`, off the response
    /// path (the key costs a JSON parse and a hash).
    fn keep_in_cache(&self, head: &http::response::Parts, bytes: &Bytes) {
        if head.status != StatusCode::OK || self.meta.degraded.is_some() || !self.shared.cache_enabled {
            return;
        }
        let (cache, request, answer) = (self.shared.cache.clone(), self.body.clone(), bytes.clone());
        let (model, provider) = (self.peek.model.clone(), self.meta.provider.clone());
        let client = self.client;
        tokio::spawn(async move {
            if let Some(key) = CacheKey::of(client, &model, &request) {
                cache.put(key, answer, &provider.unwrap_or_else(|| "none".into()));
            }
        });
    }

    fn respond_with(&self, head: http::response::Parts, body: ResponseBody) -> Response<ResponseBody> {
        let mut response = Response::new(body);
        *response.status_mut() = head.status;
        crate::provider_headers::pass_on(&head.headers, response.headers_mut());
        if !response.headers().contains_key(header::CONTENT_TYPE) {
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        respond::stamp(&mut response, &self.meta);
        response
    }
}

/// An attempt at `target` with `prepared` (the request translated for its
/// provider, or why it could not be), as a future that owns all it needs.
/// Records the attempt in the target's health unless it is a stream that
/// committed (the relay records how that ends).
#[allow(clippy::too_many_arguments)]
pub(crate) fn launch(
    shared: &Shared,
    client: WireApi,
    forward: &[(http::HeaderName, HeaderValue)],
    target: u32,
    hold: Hold,
    prepared: Result<crate::translation::Prepared, String>,
    streaming: bool,
    limits: Limits,
    traced: Option<(switchyard_telemetry::traces::AttemptSpan, Option<HeaderValue>)>,
) -> impl Future<Output = Finished> + use<> {
    let inflight = Some(hold);
    let provider = shared.target_provider[target as usize].clone();
    // (Cloning an OpenAI client's empty list allocates nothing.)
    let mut forward = if provider.api == client { forward.to_vec() } else { Vec::new() };
    let span = traced.as_ref().map(|(span, _)| *span);
    if let Some((_, Some(traceparent))) = traced {
        forward.push((http::HeaderName::from_static("traceparent"), traceparent));
    }
    let health = shared.health.clone();
    async move {
        let prepared = match prepared {
            Ok(prepared) => prepared,
            Err(why) => return Finished { target, attempt: upstream::refused(why, client), provider, inflight, span },
        };
        let attempt = upstream::attempt(&provider, prepared.body, streaming, &limits, &forward).await;
        let attempt = crate::translation::answer(client, provider.api, attempt, prepared.include_usage);
        // A request the provider refused as invalid says nothing about the
        // provider's health; a stream's outcome is how it ends (relay.rs).
        let streaming_on = matches!(&attempt.answer, Some(a) if matches!(a.body, AnswerBody::Stream { .. }))
            && attempt.kind == OutcomeKind::Success;
        if !streaming_on {
            health.record(target, !attempt.kind.is_provider_failure(), attempt.elapsed, attempt.retry_after);
        }
        Finished { target, provider, attempt, inflight, span }
    }
}
