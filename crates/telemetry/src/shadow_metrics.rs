//! Shadow mode's comparisons (`[policy] shadows`), as counters read when
//! `/metrics` is scraped: per shadowed policy and candidate, the decisions
//! that agreed, disagreed or that the candidate failed, and those dropped
//! because the queue was full. A gateway with no shadows shows none.

use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use switchyard_policy_host::shadow::ShadowReport;

/// The reports of the scrape being encoded.
#[derive(Debug, Default)]
pub(crate) struct ShadowCollector(pub Arc<Mutex<Vec<ShadowReport>>>);

impl Collector for ShadowCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let reports = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if reports.is_empty() {
            return Ok(());
        }
        let mut family = encoder.encode_descriptor(
            "policy_shadow_decisions",
            "Decisions of a shadowed policy handed to its candidate, by result: agreed, disagreed, failed (the candidate trapped, overran or is not loaded), dropped (the queue was full)",
            None,
            MetricType::Counter,
        )?;
        for r in reports.iter() {
            let results =
                [("agreed", r.agreed), ("disagreed", r.disagreed), ("failed", r.failed), ("dropped", r.dropped)];
            for (result, value) in results {
                let labels = [("policy", r.policy.as_str()), ("candidate", r.candidate.as_str()), ("result", result)];
                ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
