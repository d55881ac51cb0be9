//! `switchyard simulate`: rehearse an outage against a policy before it
//! happens. A scenario file gives providers with fault timelines (503
//! storms, 429 bursts with Retry-After, hangs, latency ramps, stream cuts,
//! slow first tokens) and the clients' traffic; the real gateway — the same
//! ingress, exchange, policy host, breaker, retry budget and cache as
//! `switchyard serve`, not a model of them — serves that traffic in virtual
//! time, so an hour of it takes seconds, and the same seed gives the same
//! report.
//!
//! # Layout
//! - [`scenario`]: the scenario file.
//! - `gateway_config`: the config under test, its providers pointed at their twins.
//! - `traffic`: the clients' requests, drawn from the seed.
//! - `run`: the virtual-time run over in-memory pipes.
//! - [`report`]: what a run comes to; `chart`: the HTML/SVG page.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod chart;
mod gateway_config;
pub mod report;
mod run;
pub mod scenario;
mod traffic;

use std::path::PathBuf;

pub use chart::html;
pub use report::{Report, compare_text};
pub use scenario::Scenario;

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// The scenario file is unreadable or wrong.
    #[error("scenario: {0}")]
    Scenario(String),
    /// The gateway config is unreadable or wrong.
    #[error("gateway config: {0}")]
    Config(String),
    /// The `--policy` file cannot be used.
    #[error("policy: {0}")]
    Policy(String),
    /// The gateway could not start.
    #[error("gateway: {0}")]
    Gateway(String),
}

/// What to run a scenario with.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The seed (default: the scenario's).
    pub seed: Option<u64>,
    /// A gateway config file instead of the scenario's own.
    pub config: Option<PathBuf>,
    /// A policy component that decides for every route.
    pub policy: Option<PathBuf>,
}

/// Runs `scenario` (virtual time, one thread) and sums it up.
pub fn simulate(scenario: &Scenario, options: &Options) -> Result<Report, SimulateError> {
    let prepared = gateway_config::prepare(scenario, options.config.as_deref(), options.policy.as_deref())?;
    let seed = options.seed.unwrap_or(scenario.seed);
    let played = run::run(scenario, &prepared, seed)?;
    Ok(report::summarize(scenario, seed, &played))
}
