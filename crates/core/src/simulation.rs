//! A gateway built for `switchyard simulate`: the real request path, with
//! providers reached over in-memory pipes (see [`crate::dial`]) and the
//! policies' `random` drawn from a seed, so that one scenario and one seed
//! give one run, in virtual time.

use std::sync::Arc;

pub use crate::dial::Dial;

/// What makes a gateway a simulated one.
#[derive(Clone)]
pub struct Simulation {
    /// Reaches the simulated providers.
    pub dial: Arc<dyn Dial>,
    /// Seeds the policies' `random` import.
    pub seed: u64,
}

impl std::fmt::Debug for Simulation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulation").field("seed", &self.seed).finish_non_exhaustive()
    }
}

/// The parts of `config` a simulation leaves out: nothing reaches outside
/// the process (no webhooks, no trace exporter, no shared state, no access
/// log on stdout), and every provider key variable reads as set.
pub(crate) fn confine(config: &switchyard_config::Config) -> switchyard_config::Config {
    let mut config = config.clone();
    config.webhooks.clear();
    config.traces = Default::default();
    config.state = Default::default();
    config.log.access = "off".into();
    config.admin_listen = None;
    config.tls = None;
    config
}
