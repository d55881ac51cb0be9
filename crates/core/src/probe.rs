//! Active health checks, off unless a provider sets `probe`: while one of its
//! targets' breaker is open, the target is probed every `probe_interval_ms`
//! (`GET /v1/models`, or a chat completion with `max_tokens: 1`), and a
//! success closes the breaker, so traffic returns without a client request
//! paying for the test. Nothing is probed while breakers are closed.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use switchyard_config::ProbeKind;
use switchyard_policy_host::{BreakerState, HealthBook};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::upstream::{self, Provider};

/// One probe per target of a provider.
pub(crate) struct Probe {
    pub provider: Arc<Provider>,
    pub kind: ProbeKind,
    pub interval: Duration,
    /// `(target index, model)` of every target on this provider.
    pub targets: Vec<(u32, String)>,
}

/// Aborts the probe tasks when the gateway goes.
pub(crate) struct Probes(Vec<JoinHandle<()>>);

impl Drop for Probes {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Starts a task per probe. With `leases` (instances sharing state), an
/// instance probes a target only in the turns it takes the target's lease.
pub(crate) fn start(
    probes: Vec<Probe>,
    health: &Arc<HealthBook>,
    leases: Option<Arc<switchyard_state::ProbeLeases>>,
) -> Probes {
    Probes(probes.into_iter().map(|probe| tokio::spawn(run(probe, health.clone(), leases.clone()))).collect())
}

async fn run(probe: Probe, health: Arc<HealthBook>, leases: Option<Arc<switchyard_state::ProbeLeases>>) {
    let mut tick = tokio::time::interval(probe.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for (target, model) in &probe.targets {
            if health.get(*target).is_none_or(|h| h.breaker != BreakerState::Open) {
                continue;
            }
            // Another instance's turn: it probes, and tells the rest if it closes.
            let term = probe.interval.mul_f32(0.9);
            if let Some(leases) = &leases
                && !leases.take(&format!("{}/{model}", probe.provider.name), term).await
            {
                continue;
            }
            let started = Instant::now();
            let timeout = probe.interval.min(Duration::from_secs(10));
            let ok = match probe.kind {
                ProbeKind::Models => upstream::list_models(&probe.provider, timeout).await,
                ProbeKind::Chat => {
                    let body = serde_json::json!({
                        "model": model,
                        "max_tokens": 1,
                        "messages": [{"role": "user", "content": "ping"}],
                    });
                    let limits =
                        crate::limits::Limits { connect: None, first_token: timeout, idle: timeout, answer: timeout };
                    let body = Bytes::from(body.to_string());
                    let attempt = upstream::attempt(&probe.provider, body, false, &limits, &[]).await;
                    attempt.kind == switchyard_wire::OutcomeKind::Success
                }
            };
            tracing::info!(provider = %probe.provider.name, model, ok, "active probe of an open breaker");
            // Only a success counts: a failed probe must not lengthen the
            // outage the breaker already knows about.
            if ok {
                health.record(*target, true, started.elapsed(), None);
            }
        }
    }
}
