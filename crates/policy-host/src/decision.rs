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

/// What a policy learns about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}

/// Where to send a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Target indices in preference order; the first is tried now.
    pub targets: Vec<u32>,
    /// Per-attempt timeout to response headers (and between stream chunks), ms.
    pub per_try_timeout_ms: u32,
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
                if plan.per_try_timeout_ms == 0 {
                    return Err(PolicyError::InvalidDecision("per-try timeout of 0 ms".into()));
                }
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
