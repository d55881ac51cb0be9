//! The one `bindgen!` site of the policy world, the host side of its imports,
//! and conversions between the generated types and [`crate::decision`]'s.

use switchyard_wire::text::truncate;
use wasmtime::component::HasSelf;

use crate::decision::{self as d, OutcomeKind};
use crate::shared_kv::KvWrite;
use crate::state::PolicyState;

mod generated {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "policy",
        exports: { default: async },
        // Policy state may live in a shared store (Redis): its imports
        // wait for it, up to the store's timeout.
        imports: {
            "switchyard:policy/host.state-get": async,
            "switchyard:policy/host.state-set": async,
            "switchyard:policy/host.state-compare-and-swap": async,
            "switchyard:policy/host.state-delete": async,
        },
    });
}

use generated::switchyard::policy::{host, types as t};
pub(crate) use generated::{Policy, PolicyPre};

/// Adds the policy world's `host` interface to `linker`.
pub(crate) fn add_to_linker(linker: &mut wasmtime::component::Linker<PolicyState>) -> wasmtime::Result<()> {
    Policy::add_to_linker::<PolicyState, HasSelf<PolicyState>>(linker, |s| s)
}

/// The fully qualified names of the interfaces the policy world imports.
pub(crate) const POLICY_IMPORTS: &[&str] = &["switchyard:policy/host@0.3.0", "switchyard:policy/types@0.3.0"];

impl t::Host for PolicyState {}

impl host::Host for PolicyState {
    fn health(&mut self, target: u32) -> Option<t::TargetHealth> {
        self.shared.health.get(target).map(|h| t::TargetHealth {
            inflight: h.inflight,
            ewma_latency_ms: h.ewma_latency_ms,
            latency_p95_ms: h.latency_p95_ms,
            error_rate: h.error_rate,
            consecutive_failures: h.consecutive_failures,
            retry_after_ms: h.retry_after_ms,
            breaker: match h.breaker {
                crate::health::BreakerState::Closed => t::BreakerState::Closed,
                crate::health::BreakerState::Open => t::BreakerState::Open,
                crate::health::BreakerState::HalfOpen => t::BreakerState::HalfOpen,
            },
        })
    }

    fn available(&mut self, target: u32) -> bool {
        self.shared.health.available(target)
    }

    fn header(&mut self, name: String) -> Option<String> {
        self.call.as_ref()?.header(&name).map(str::to_owned)
    }

    fn now_ms(&mut self) -> u64 {
        u64::try_from(self.shared.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn random(&mut self) -> f64 {
        use rand::RngExt;
        self.rng.random::<f64>()
    }

    fn log(&mut self, level: t::LogLevel, message: String) {
        let policy = &*self.policy_label;
        let Some(dropped) = self.log_limit.admit() else { return };
        if dropped > 0 {
            tracing::warn!(
                policy,
                dropped,
                "policy log lines dropped: over its allowance of {} lines/s",
                crate::log_limit::LINES_PER_SECOND
            );
        }
        let message = truncate(&message, 1024);
        match level {
            t::LogLevel::Trace => tracing::trace!(policy, "{message}"),
            t::LogLevel::Debug => tracing::debug!(policy, "{message}"),
            t::LogLevel::Info => tracing::info!(policy, "{message}"),
            t::LogLevel::Warn => tracing::warn!(policy, "{message}"),
            t::LogLevel::Error => tracing::error!(policy, "{message}"),
        }
    }

    async fn state_get(&mut self, key: String) -> Option<String> {
        self.clock.waiting();
        self.kv.get(&key).await
    }

    async fn state_set(&mut self, key: String, value: String, ttl_ms: Option<u32>) -> Result<(), String> {
        self.clock.waiting();
        let write = KvWrite { expected: None, value: &value, ttl: ttl(ttl_ms) };
        self.kv.write(&key, write).await.map(drop).map_err(|e| e.to_string())
    }

    async fn state_compare_and_swap(
        &mut self,
        key: String,
        expected: Option<String>,
        value: String,
        ttl_ms: Option<u32>,
    ) -> Result<bool, String> {
        self.clock.waiting();
        let write = KvWrite { expected: Some(expected.as_deref()), value: &value, ttl: ttl(ttl_ms) };
        self.kv.write(&key, write).await.map_err(|e| e.to_string())
    }

    async fn state_delete(&mut self, key: String) {
        self.clock.waiting();
        self.kv.delete(&key).await;
    }
}

fn ttl(ms: Option<u32>) -> Option<std::time::Duration> {
    ms.map(|ms| std::time::Duration::from_millis(ms.into()))
}

pub(crate) fn topology(topo: &d::Topology) -> t::Topology {
    t::Topology {
        targets: topo
            .targets
            .iter()
            .map(|x| t::Target { provider: x.provider.clone(), model: x.model.clone() })
            .collect(),
        routes: topo.routes.iter().map(|r| t::Route { model: r.model.clone(), targets: r.targets.clone() }).collect(),
    }
}

pub(crate) fn request(r: &d::RequestInfo) -> t::RequestInfo {
    t::RequestInfo {
        api: match r.api {
            d::Api::OpenaiChat => t::Api::OpenaiChat,
            d::Api::AnthropicMessages => t::Api::AnthropicMessages,
        },
        route: r.route,
        streaming: r.streaming,
        estimated_input_tokens: r.estimated_input_tokens,
        deadline_ms: r.deadline_ms,
        caller: t::Caller {
            tenant: r.caller.tenant.as_deref().map(str::to_owned),
            priority: match r.caller.priority {
                d::Priority::Low => t::Priority::Low,
                d::Priority::Normal => t::Priority::Normal,
                d::Priority::High => t::Priority::High,
            },
            requests_left: r.caller.requests_left,
            tokens_left: r.caller.tokens_left,
        },
    }
}

fn kind(k: OutcomeKind) -> t::OutcomeKind {
    match k {
        OutcomeKind::Success => t::OutcomeKind::Success,
        OutcomeKind::ConnectError => t::OutcomeKind::ConnectError,
        OutcomeKind::Timeout => t::OutcomeKind::Timeout,
        OutcomeKind::Reset => t::OutcomeKind::Reset,
        OutcomeKind::RateLimited => t::OutcomeKind::RateLimited,
        OutcomeKind::Overloaded => t::OutcomeKind::Overloaded,
        OutcomeKind::ServerError => t::OutcomeKind::ServerError,
        OutcomeKind::Auth => t::OutcomeKind::Auth,
        OutcomeKind::ContextTooLong => t::OutcomeKind::ContextTooLong,
        OutcomeKind::ContentFiltered => t::OutcomeKind::ContentFiltered,
        OutcomeKind::InvalidRequest => t::OutcomeKind::InvalidRequest,
        OutcomeKind::InvalidResponse => t::OutcomeKind::InvalidResponse,
    }
}

pub(crate) fn outcome(o: &d::AttemptOutcome) -> t::AttemptOutcome {
    t::AttemptOutcome {
        target: o.target,
        attempt: o.attempt,
        tried: o.tried.clone(),
        kind: kind(o.kind),
        http_status: o.http_status,
        retry_after_ms: o.retry_after_ms,
        elapsed_ms: o.elapsed_ms,
    }
}

fn degrade(g: t::Degrade) -> d::Degrade {
    match g {
        t::Degrade::Fallback(x) => d::Degrade::Fallback(x),
        t::Degrade::Cached(ms) => d::Degrade::Cached(ms),
        t::Degrade::Unavailable(ms) => d::Degrade::Unavailable(ms),
    }
}

pub(crate) fn route_decision(r: t::RouteDecision) -> d::RouteDecision {
    match r {
        t::RouteDecision::Send(p) => d::RouteDecision::Send(d::Plan {
            targets: p.targets,
            limits: d::AttemptLimits {
                connect_ms: p.limits.connect_ms,
                first_token_ms: p.limits.first_token_ms,
                idle_ms: p.limits.idle_ms,
                answer_ms: p.limits.answer_ms,
            },
            hedge_after_ms: p.hedge_after_ms,
        }),
        t::RouteDecision::Degrade(g) => d::RouteDecision::Degrade(degrade(g)),
    }
}

pub(crate) fn next_step(s: t::NextStep) -> d::NextStep {
    match s {
        t::NextStep::Accept => d::NextStep::Accept,
        t::NextStep::Retry(r) => d::NextStep::Retry(d::Retry { target: r.target, delay_ms: r.delay_ms }),
        t::NextStep::Degrade(g) => d::NextStep::Degrade(degrade(g)),
    }
}

pub(crate) fn stream_break(b: &d::StreamBreak) -> t::StreamBreak {
    t::StreamBreak {
        target: b.target,
        kind: match b.kind {
            d::BreakKind::Cut => t::BreakKind::Cut,
            d::BreakKind::Stall => t::BreakKind::Stall,
            d::BreakKind::ProviderError => t::BreakKind::ProviderError,
            d::BreakKind::Malformed => t::BreakKind::Malformed,
        },
        delivered_chars: b.delivered_chars,
        delivered_tokens: b.delivered_tokens,
        in_tool_call: b.in_tool_call,
        elapsed_ms: b.elapsed_ms,
        recoveries: b.recoveries,
        tried: b.tried.clone(),
        failed_recovery: b.failed_recovery.as_ref().map(outcome),
    }
}

pub(crate) fn recovery(r: t::Recovery) -> d::Recovery {
    let retry = |r: t::Retry| d::Retry { target: r.target, delay_ms: r.delay_ms };
    match r {
        t::Recovery::Continue(r) => d::Recovery::Continue(retry(r)),
        t::Recovery::Restart(r) => d::Recovery::Restart(retry(r)),
        t::Recovery::End => d::Recovery::End,
    }
}
