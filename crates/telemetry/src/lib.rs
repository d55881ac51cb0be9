//! What the gateway tells its operators, for its whole life (across config
//! reloads): Prometheus metrics ([`metrics`]), one JSON line per request
//! ([`access_log`]), incidents and operations as events ([`events`]) posted
//! to incident webhooks ([`webhooks`]), each target's last hour for the
//! status page ([`history`]), OpenTelemetry traces ([`traces`]), and
//! [`Telemetry`], which holds them and turns the policy host's and the health
//! book's news into events and metrics ([`observe`]).
//!
//! Nothing here is on the request path but an atomic add, a hash of a label
//! set, an append to a buffer: writing, posting and exporting run on threads
//! and tasks of their own.

#![forbid(unsafe_code)]

pub mod access_log;
mod cells;
pub mod events;
pub mod history;
pub mod metrics;
pub mod observe;
mod shadow_metrics;
pub mod state_metrics;
pub mod traces;
pub mod webhooks;

pub use observe::{BreakerWatch, DecisionTimes, Telemetry};

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The access log file cannot be opened.
    #[error("[log] access: {0}")]
    AccessLog(std::io::Error),
    /// A webhook's URL variable is not set.
    #[error("webhook: environment variable {0} (url_env) is not set")]
    WebhookUrl(String),
    /// A webhook's URL does not parse.
    #[error("{0}: the URL does not parse")]
    WebhookBadUrl(String),
    /// The trace exporter cannot start.
    #[error("[traces]: {0}")]
    Traces(String),
}

/// The current time, RFC 3339, UTC.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}
