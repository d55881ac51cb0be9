//! The shared state's figures (`[state] backend = "redis"`), read when
//! `/metrics` is scraped. A gateway on the in-memory backend shows none of
//! these series.

use std::sync::{Arc, OnceLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// What the shared state has seen so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateFigures {
    /// Redis answers now.
    pub up: bool,
    /// Redis commands given up (no answer within `timeout_ms`, or an error).
    pub failures: u64,
    /// Times the connection came back after it was lost.
    pub reconnects: u64,
    /// Health moves this instance published.
    pub news_sent: u64,
    /// Health moves of other instances applied here.
    pub news_applied: u64,
    /// Health moves not published (the queue was full).
    pub news_dropped: u64,
}

/// Reads the figures at scrape time.
pub type StateSource = Arc<dyn Fn() -> StateFigures + Send + Sync>;

/// Encodes the figures of the source set with [`crate::metrics::Registry::follow_state`].
#[derive(Default)]
pub(crate) struct StateCollector(pub Arc<OnceLock<StateSource>>);

impl std::fmt::Debug for StateCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateCollector").field("following", &self.0.get().is_some()).finish()
    }
}

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(source) = self.0.get() else { return Ok(()) };
        let f = source();
        let up = ConstGauge::new(i64::from(f.up));
        up.encode(encoder.encode_descriptor(
            "state_up",
            "The shared state's Redis answers (1) or not (0; the instance serves on its own state)",
            None,
            up.metric_type(),
        )?)?;
        let counters = [
            ("state_failures", "Redis commands given up: no answer within [state] timeout_ms, or an error", f.failures),
            ("state_reconnects", "Times the connection to Redis came back after it was lost", f.reconnects),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)?;
        }
        let mut news = encoder.encode_descriptor(
            "state_health_news",
            "Health moves (breaker, cool-down, forced) shared: sent, applied from other instances, dropped",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (direction, value) in [("sent", f.news_sent), ("applied", f.news_applied), ("dropped", f.news_dropped)] {
            let labels = [("direction", direction)];
            ConstCounter::new(value).encode(news.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
