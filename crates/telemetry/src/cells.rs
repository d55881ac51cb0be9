//! Metric handles for the label sets every request touches, made on first
//! use and kept per target and per route of a config generation: the
//! request path then adds to an atomic instead of hashing a label set
//! (SipHash) under the family's lock each time. What `/metrics` shows does
//! not change: a series appears when it is first counted, as before.

use std::sync::OnceLock;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

/// A metric handle made on first use (a clone of the family's own: both count).
pub(crate) struct Cell<M>(OnceLock<M>);

impl<M> Default for Cell<M> {
    fn default() -> Self {
        Cell(OnceLock::new())
    }
}

impl<M> Cell<M> {
    pub fn get(&self, make: impl FnOnce() -> M) -> &M {
        self.0.get_or_init(make)
    }
}

/// One target's series on the request path.
#[derive(Default)]
pub(crate) struct TargetCells {
    /// `attempts_total{outcome="success"}`
    pub success: Cell<Counter>,
    /// `upstream_latency_seconds`
    pub latency: Cell<Histogram>,
    /// `tokens_total{direction="in"}`, `{direction="out"}`
    pub tokens: [Cell<Counter>; 2],
}

/// One route's series on the request path, per client API (OpenAI, Anthropic).
#[derive(Default)]
pub(crate) struct RouteCells {
    /// `requests_total{status="200",degraded="no"}`
    pub answered: [Cell<Counter>; 2],
    /// `request_duration_seconds`
    pub duration: [Cell<Histogram>; 2],
    /// `first_token_seconds`
    pub first_token: [Cell<Histogram>; 2],
}
