//! The gateway: accepts chat requests in OpenAI's or Anthropic's API, asks the request's policy
//! where to send them, makes the upstream attempts, relays the answer
//! (streams chunk by chunk), and turns every failure into a clean answer in
//! the client's API format.
//!
//! # Layout (in request order)
//! - [`gateway`]: [`Gateway`]: the serving config generation (swapped on a
//!   reload), telemetry, the shutdown signal; `generation`: everything built
//!   from one config file, carrying over what did not change; [`reload`]:
//!   SIGHUP / file change / admin reloads.
//! - `server`: accept loop, TCP_NODELAY, graceful drain (`shutdown_grace_ms`).
//! - `ingress`: method/path (which say the client's API), body limit, peek
//!   `model`/`stream`, find the route; `models`: `GET /v1/models`;
//!   `count_tokens`: Anthropic's token counter, passed to an Anthropic target.
//! - `exchange`: one client request from policy `route` to final answer;
//!   every retry and failover decision is asked of the policy here.
//! - `hedge`: the first attempt, raced against a second one after the plan's
//!   hedge delay.
//! - `translation`: a request and its answer carried between the two APIs
//!   when client and provider differ.
//! - `upstream`: one attempt at one target, classified.
//! - `probe`: active health checks of open breakers (off unless configured).
//! - `budget`: the gateway-wide retry budget; [`cache`]: the response cache
//!   `degrade: cached` answers from.
//! - `limits`: an attempt's limits (connect, first token, idle, whole answer)
//!   from the plan, the route and `[timeouts]`.
//! - `relay`: the SSE relay: events cut whole, a break handed to `recovery`,
//!   which asks the policy and splices a continuation or a restart onto the
//!   client's stream (or ends it with an error event).
//! - `respond`: the only place errors become client responses.
//! - `admin`: the admin listener (metrics, the JSON admin API, reloads);
//!   `status`: the status page and what it draws. Metrics, the access log,
//!   events, webhooks, history and traces are `switchyard_telemetry`'s; the
//!   request path hands them what happened (`Exchange::log_attempt`,
//!   `Exchange::log_end`, the relay's end).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod admin;
mod budget;
pub mod cache;
mod count_tokens;
mod dial;
mod exchange;
pub mod gateway;
mod generation;
mod hedge;
mod ingress;
mod limits;
mod models;
mod probe;
mod provider_headers;
mod quota;
mod recovery;
mod relay;
pub mod reload;
mod respond;
mod secrets;
mod server;
mod shared_cache;
mod sharing;
pub mod simulation;
mod status;
mod tenancy;
mod tls;
mod translation;
mod upstream;
mod usage;

pub use gateway::{Gateway, GatewayError, Reloader};
pub use server::listen;

/// The body of every response the gateway sends.
pub type ResponseBody = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, std::convert::Infallible>;

/// Response headers every answer carries (names built once, at compile time:
/// a `&str` name would be parsed again on every insert).
pub mod headers {
    use http::HeaderName;
    /// The provider that answered (`none` when none did).
    pub const PROVIDER: HeaderName = HeaderName::from_static("x-switchyard-provider");
    /// How many upstream attempts the request took.
    pub const ATTEMPTS: HeaderName = HeaderName::from_static("x-switchyard-attempts");
    /// `name@sha12` of the policy version that decided.
    pub const POLICY: HeaderName = HeaderName::from_static("x-switchyard-policy");
    /// Set when the answer is degraded (`fallback` or `cached`).
    pub const DEGRADED: HeaderName = HeaderName::from_static("x-switchyard-degraded");
    /// The request's id: the client's (when valid) or a new one; on every answer.
    pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
    /// The provider's own `x-request-id`, passed on under this name.
    pub const UPSTREAM_REQUEST_ID: HeaderName = HeaderName::from_static("x-upstream-request-id");
    /// Anthropic's API version header (its clients send it on every request).
    pub const ANTHROPIC_VERSION: HeaderName = HeaderName::from_static("anthropic-version");
}
