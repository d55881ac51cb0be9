//! Switchyard's config file: the serde schema, loading, and validation that
//! names the line of every mistake.
//!
//! The field names are a contract (see `docs/config.md`): extend, never rename.
//!
//! # Layout
//! - [`schema`]: the TOML schema with every default.
//! - [`load`]: reading a file, parsing, validation, policy settings as JSON.
//! - [`error`]: [`ConfigError`], with file and line.
//! - [`demo`]: the embedded config `switchyard demo` runs.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod demo;
mod error;
mod load;
mod schema;

pub use error::ConfigError;
pub use load::{from_str, load_file};
pub use schema::{
    AccessLogTarget, AdminSection, Api, BreakerSection, CacheSection, Config, EVENT_KINDS, GatewayKey, INCIDENT_KINDS,
    MetricsSection, ModelSettings, PolicySection, Priority, ProbeKind, Provider, QueueSection, Quota,
    RetryBudgetSection, Route, StateBackend, StateSection, TargetRef, TimeoutsSection, TlsSection, TracesSection,
    Webhook,
};
