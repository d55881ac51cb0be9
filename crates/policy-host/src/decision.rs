//! The decisions a policy makes, as plain Rust types (the generated WIT types
//! stay private to [`crate::bindings`]), and the checks every decision passes
//! before the gateway acts on it.

pub use switchyard_wire::OutcomeKind;

use crate::PolicyError;

/// Which client-facing API a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `POST /v1/chat/completions`.
    OpenaiChat,
    /// `POST /v1/messages`.
    AnthropicMessages,
}

/// One place a request can go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Provider name from config.
    pub provider: String,
    /// Model name the provider expects.
    pub model: String,
}

/// A client-facing model and its targets (indices into [`Topology::targets`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// What clients ask for (`*` matches any).
    pub model: String,
    /// Indices into [`Topology::targets`], in config order.
    pub targets: Vec<u32>,
}

/// The gateway's routes and targets, handed to every policy at `init`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    /// Every distinct provider+model pair.
    pub targets: Vec<Target>,
    /// Every route, in config order.
    pub routes: Vec<RouteInfo>,
}

/// A gateway key's priority class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Batch work.
    Low,
    /// The default (and an open gateway's).
    #[default]
    Normal,
    /// Interactive or premium traffic.
    High,
}

/// Who is asking: the gateway key's tenant (never the key) and what it may
/// still send right now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// The key's name; `None` on an open gateway.
    pub tenant: Option<std::sync::Arc<str>>,
    /// Its priority class.
    pub priority: Priority,
    /// Requests left under its `requests_per_minute` (`None`: no limit).
    pub requests_left: Option<u32>,
    /// Tokens left under its `tokens_per_minute` (`None`: no limit).
    pub tokens_left: Option<u32>,
}

/// What a policy learns about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    /// The API the client spoke.
    pub api: Api,
    /// Index into [`Topology::routes`].
    pub route: u32,
    /// The client asked for SSE.
    pub streaming: bool,
    /// Body bytes / 4.
    pub estimated_input_tokens: u32,
    /// Time left for the whole request, ms.
    pub deadline_ms: u32,
    /// Who is asking.
    pub caller: Caller,
}

/// Limits of each attempt of a plan, ms; `None` leaves one to the route's
/// config, else the gateway's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttemptLimits {
    /// Connecting (TCP, TLS); only shortens the provider's connect timeout.
    pub connect_ms: Option<u32>,
    /// Streams: first content-bearing event; non-streamed: response headers.
    pub first_token_ms: Option<u32>,
    /// Streams: longest silence between content-bearing events.
    pub idle_ms: Option<u32>,
    /// Non-streamed: the whole answer.
    pub answer_ms: Option<u32>,
}

impl AttemptLimits {
    /// No limit set: the route's and the gateway's apply.
    pub const DEFAULT: AttemptLimits =
        AttemptLimits { connect_ms: None, first_token_ms: None, idle_ms: None, answer_ms: None };

    fn check(&self) -> Result<(), PolicyError> {
        let named = [
            ("connect-ms", self.connect_ms),
            ("first-token-ms", self.first_token_ms),
            ("idle-ms", self.idle_ms),
            ("answer-ms", self.answer_ms),
        ];
        for (name, ms) in named {
            if ms == Some(0) {
                return Err(PolicyError::InvalidDecision(format!("plan limit {name} of 0 ms")));
            }
        }
        Ok(())
    }
}

/// Where to send a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Target indices in preference order; the first is tried now.
    pub targets: Vec<u32>,
    /// Limits of each attempt.
    pub limits: AttemptLimits,
    /// Start the plan's next target in parallel when the first has not
    /// answered after this many ms.
    pub hedge_after_ms: Option<u32>,
}

/// What to answer when the policy stops sending to the route's providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Degrade {
    /// Send to this target (any route's), e.g. a local or cheaper model.
    Fallback(u32),
    /// Answer from the response cache; on a miss, 503 with `Retry-After` of this many ms.
    Cached(u32),
    /// Answer 503 with `Retry-After` of this many ms.
    Unavailable(u32),
}

/// The answer to `route`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteDecision {
    /// Send the request.
    Send(Plan),
    /// Do not send to the route's targets.
    Degrade(Degrade),
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptOutcome {
    /// The target just tried.
    pub target: u32,
    /// 1-based attempt count for the request.
    pub attempt: u32,
    /// Every target tried so far, this one last.
    pub tried: Vec<u32>,
    /// The gateway's classification.
    pub kind: OutcomeKind,
    /// HTTP status, when the provider answered.
    pub http_status: Option<u16>,
    /// The provider's Retry-After, ms.
    pub retry_after_ms: Option<u32>,
    /// How long the attempt took, ms.
    pub elapsed_ms: u32,
}

/// A delayed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Target index; must belong to the request's route.
    pub target: u32,
    /// Wait before the attempt, ms.
    pub delay_ms: u32,
}

/// The answer to `on-attempt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Hand this attempt's answer to the client.
    Accept,
    /// Another attempt.
    Retry(Retry),
    /// Stop and degrade.
    Degrade(Degrade),
}

/// How a stream that already reached the client broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakKind {
    /// The connection failed or closed before the answer was complete.
    Cut,
    /// No content-bearing event for longer than the idle limit.
    Stall,
    /// The provider's own error event.
    ProviderError,
    /// An event the gateway could not understand.
    Malformed,
}

impl BreakKind {
    /// Its name in the policy world (`cut`, `stall`, `provider-error`, `malformed`).
    pub fn label(self) -> &'static str {
        match self {
            BreakKind::Cut => "cut",
            BreakKind::Stall => "stall",
            BreakKind::ProviderError => "provider-error",
            BreakKind::Malformed => "malformed",
        }
    }

    /// How logs and error messages name it.
    pub fn describe(self) -> &'static str {
        match self {
            BreakKind::Cut => "cut",
            BreakKind::Stall => "stall",
            BreakKind::ProviderError => "provider error event",
            BreakKind::Malformed => "malformed event",
        }
    }
}

/// A committed stream broke: what the client already has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamBreak {
    /// The target whose stream broke.
    pub target: u32,
    /// How it broke.
    pub kind: BreakKind,
    /// Characters of content delivered to the client.
    pub delivered_chars: u32,
    /// Tokens of that content (provider's count, else chars / 4).
    pub delivered_tokens: u32,
    /// The break fell inside a tool call's arguments.
    pub in_tool_call: bool,
    /// ms since the request reached the gateway.
    pub elapsed_ms: u32,
    /// Recoveries already attempted for this request.
    pub recoveries: u32,
    /// Every target tried, recoveries included.
    pub tried: Vec<u32>,
    /// How the previous recovery attempt failed before producing content.
    pub failed_recovery: Option<AttemptOutcome>,
}

/// The answer to `on-stream-break`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Ask the target to continue from the delivered text.
    Continue(Retry),
    /// Ask the target again; forward only what follows the delivered text.
    Restart(Retry),
    /// End the client's stream with an error event.
    End,
}

/// Longest wait a policy may ask for (before an attempt, or as Retry-After).
pub const MAX_DELAY_MS: u32 = 3_600_000;

impl Topology {
    fn route(&self, request: &RequestInfo) -> Result<&RouteInfo, PolicyError> {
        self.routes.get(request.route as usize).ok_or_else(|| {
            PolicyError::InvalidDecision(format!("request names route {} of {}", request.route, self.routes.len()))
        })
    }

    fn check_route_target(&self, request: &RequestInfo, target: u32) -> Result<(), PolicyError> {
        let route = self.route(request)?;
        if route.targets.contains(&target) {
            Ok(())
        } else {
            Err(PolicyError::InvalidDecision(format!(
                "target {target} is not one of route {:?}'s targets {:?}",
                route.model, route.targets
            )))
        }
    }

    fn check_degrade(&self, degrade: &Degrade) -> Result<(), PolicyError> {
        match *degrade {
            Degrade::Fallback(t) if t as usize >= self.targets.len() => {
                Err(PolicyError::InvalidDecision(format!("fallback target {t} does not exist")))
            }
            Degrade::Unavailable(ms) | Degrade::Cached(ms) if ms > MAX_DELAY_MS => {
                Err(PolicyError::InvalidDecision(format!("Retry-After of {ms} ms is over an hour")))
            }
            _ => Ok(()),
        }
    }

    /// Checks a `route` answer: known targets of this route, sane timeout.
    pub fn check_route_decision(&self, request: &RequestInfo, decision: &RouteDecision) -> Result<(), PolicyError> {
        match decision {
            RouteDecision::Send(plan) => {
                if plan.targets.is_empty() {
                    return Err(PolicyError::InvalidDecision("plan has no targets".into()));
                }
                for &t in &plan.targets {
                    self.check_route_target(request, t)?;
                }
                plan.limits.check()?;
                if let Some(ms) = plan.hedge_after_ms
                    && (ms == 0 || ms > MAX_DELAY_MS)
                {
                    return Err(PolicyError::InvalidDecision(format!("hedge after {ms} ms (must be 1 ms to an hour)")));
                }
                Ok(())
            }
            RouteDecision::Degrade(d) => self.check_degrade(d),
        }
    }

    /// Checks an `on-stream-break` answer: a known target (of any route,
    /// like a fallback), a sane delay.
    pub fn check_recovery(&self, recovery: &Recovery) -> Result<(), PolicyError> {
        let (Recovery::Continue(r) | Recovery::Restart(r)) = recovery else { return Ok(()) };
        if r.target as usize >= self.targets.len() {
            return Err(PolicyError::InvalidDecision(format!("recovery target {} does not exist", r.target)));
        }
        if r.delay_ms > MAX_DELAY_MS {
            return Err(PolicyError::InvalidDecision(format!("recovery delay of {} ms is over an hour", r.delay_ms)));
        }
        Ok(())
    }

    /// Checks an `on-attempt` answer.
    pub fn check_next_step(&self, request: &RequestInfo, step: &NextStep) -> Result<(), PolicyError> {
        match step {
            NextStep::Accept => Ok(()),
            NextStep::Retry(r) => {
                self.check_route_target(request, r.target)?;
                if r.delay_ms > MAX_DELAY_MS {
                    return Err(PolicyError::InvalidDecision(format!(
                        "retry delay of {} ms is over an hour",
                        r.delay_ms
                    )));
                }
                Ok(())
            }
            NextStep::Degrade(d) => self.check_degrade(d),
        }
    }
}
