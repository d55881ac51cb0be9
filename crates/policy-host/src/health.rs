//! Passive health per target, gathered from real traffic by the gateway and
//! read by policies through the `health` host import, with a circuit breaker
//! per target driven by the same outcomes.

use std::collections::VecDeque;

use crate::samples::Samples;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

mod shared;
pub use shared::{HealthPublisher, SharedMove};

/// How far back `error-rate` looks.
const WINDOW: Duration = Duration::from_secs(30);
/// At most this many outcomes are kept per target for `error-rate`.
const WINDOW_CAP: usize = 512;
/// Weight of the newest sample in the latency average.
const EWMA_ALPHA: f32 = 0.2;
/// Times to first token kept per target.
const FIRST_TOKEN_SAMPLES: usize = 64;
/// The latency p95 is taken over this many latest successful attempts.
const LATENCY_SAMPLES: usize = 128;

/// When a target's circuit breaker opens and how it recovers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    /// Open after this many failures in a row...
    pub failures: u32,
    /// ...or when this share of the window's outcomes failed...
    pub error_rate: f32,
    /// ...once the window holds at least this many.
    pub min_requests: usize,
    /// Open this long before a probe may go (or the Retry-After, when longer).
    pub cool_down: Duration,
    /// Each failed probe doubles the cool-down, up to this.
    pub max_cool_down: Duration,
    /// Probes in flight at once while half-open.
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: 5,
            error_rate: 0.5,
            min_requests: 20,
            cool_down: Duration::from_secs(5),
            // A recovered provider gets traffic back within 10 s, while one
            // still down gets at most one probe per 10 s.
            max_cool_down: Duration::from_secs(10),
            half_open_probes: 1,
        }
    }
}

/// Where a target's circuit breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Traffic flows.
    Closed,
    /// The target failed too often: send it nothing until the cool-down ends.
    Open,
    /// The cool-down ended: the next attempt is a probe; its success closes
    /// the breaker, its failure opens it again.
    HalfOpen,
}

/// A snapshot of one target's health, as policies see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TargetHealth {
    /// Attempts in flight now.
    pub inflight: u32,
    /// Moving average of time to response headers, ms.
    pub ewma_latency_ms: f32,
    /// 95th percentile of the latest successful attempts' latency, ms.
    pub latency_p95_ms: f32,
    /// Failed share of the last 30 s of attempts, 0..1.
    pub error_rate: f32,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// The provider asked us to wait this many more ms.
    pub retry_after_ms: Option<u32>,
    /// The target's circuit breaker.
    pub breaker: BreakerState,
}

struct Stats {
    ewma_latency_ms: Option<f32>,
    /// Latencies of the latest successful attempts, ms.
    latencies: Samples,
    /// Times to the first content-bearing event of the latest streams, ms.
    first_tokens: Samples,
    /// Outcomes of the window, oldest first; `failed` counts the failures
    /// among them, so reading the error rate is O(1).
    recent: VecDeque<(Instant, bool)>,
    failed: u32,
    consecutive_failures: u32,
    retry_after_until: Option<Instant>,
    /// `Some` while the breaker is open (or half-open once this has passed).
    open_until: Option<Instant>,
    /// Probes that failed in a row (each doubles the cool-down).
    failed_probes: u32,
    /// Probes in flight while half-open.
    probes_inflight: u32,
    /// Set by an operator (maintenance): the breaker stays so, whatever traffic says.
    forced: Option<BreakerState>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            ewma_latency_ms: None,
            latencies: Samples::new(LATENCY_SAMPLES),
            first_tokens: Samples::new(FIRST_TOKEN_SAMPLES),
            recent: VecDeque::new(),
            failed: 0,
            consecutive_failures: 0,
            retry_after_until: None,
            open_until: None,
            failed_probes: 0,
            probes_inflight: 0,
            forced: None,
        }
    }
}

impl Stats {
    /// Drops outcomes older than the window (and past the cap).
    fn prune(&mut self, now: Instant) {
        while self.recent.len() > WINDOW_CAP
            || self.recent.front().is_some_and(|(t, _)| now.duration_since(*t) > WINDOW)
        {
            if let Some((_, false)) = self.recent.pop_front() {
                self.failed -= 1;
            }
        }
    }

    fn latency_p95(&mut self) -> f32 {
        self.latencies.p95().unwrap_or(0.0)
    }

    fn breaker(&self, now: Instant) -> BreakerState {
        if let Some(forced) = self.forced {
            return forced;
        }
        match self.open_until {
            None => BreakerState::Closed,
            Some(until) if now < until => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// Moves the breaker after an outcome has been counted.
    fn trip_or_reset(&mut self, config: &BreakerConfig, now: Instant, ok: bool) {
        let cool_down = |failed_probes: u32| {
            let doubled = config.cool_down.saturating_mul(1 << failed_probes.min(16)).min(config.max_cool_down);
            let retry_after = self.retry_after_until.map_or(Duration::ZERO, |t| t.saturating_duration_since(now));
            now + doubled.max(retry_after)
        };
        match (self.breaker(now), ok) {
            (_, true) => {
                self.open_until = None;
                self.failed_probes = 0;
            }
            (BreakerState::Closed, false) => {
                let tripped = self.consecutive_failures >= config.failures
                    || (self.recent.len() >= config.min_requests
                        && self.failed as f32 >= config.error_rate * self.recent.len() as f32);
                if tripped {
                    self.open_until = Some(cool_down(0));
                }
            }
            // A failed probe opens it again, for twice as long.
            (BreakerState::HalfOpen, false) => {
                self.failed_probes += 1;
                self.open_until = Some(cool_down(self.failed_probes));
            }
            // An attempt that started before it opened: the cool-down stands.
            (BreakerState::Open, false) => {}
        }
    }

    /// Half-open with every probe slot taken counts as open for admission.
    fn admits(&self, config: &BreakerConfig, now: Instant) -> Option<bool> {
        match self.breaker(now) {
            BreakerState::Closed => Some(false),
            BreakerState::HalfOpen if self.probes_inflight < config.half_open_probes => Some(true),
            _ => None,
        }
    }
}

#[derive(Default)]
struct Cell {
    inflight: AtomicU32,
    stats: Mutex<Stats>,
}

/// Told when a target's breaker moves: `(target, from, to)`. Time-driven
/// moves (open → half-open when the cool-down ends) are not told; the move
/// an outcome or an operator makes is.
pub type BreakerObserver = Arc<dyn Fn(u32, BreakerState, BreakerState) + Send + Sync>;

/// Health of every target of the topology, indexed like `Topology::targets`.
///
/// A target's record is shared (`Arc`) so that a book built for a reloaded
/// config can carry an unchanged target's health, breaker and in-flight count
/// over ([`HealthBook::carrying`]) while requests that started on the old
/// book keep recording into the same record.
pub struct HealthBook {
    cells: Vec<Arc<Cell>>,
    breaker: BreakerConfig,
    observer: Option<BreakerObserver>,
    publisher: Option<HealthPublisher>,
}

/// Counts an attempt as in flight (and, half-open, as the probe) until dropped.
#[must_use = "the attempt is in flight only while the guard lives"]
pub struct InflightGuard {
    book: Arc<HealthBook>,
    target: usize,
    probe: bool,
}

impl InflightGuard {
    /// This attempt is a half-open breaker's probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        let cell = &self.book.cells[self.target];
        cell.inflight.fetch_sub(1, Ordering::Relaxed);
        if self.probe {
            let mut s = cell.stats.lock().unwrap_or_else(|p| p.into_inner());
            s.probes_inflight = s.probes_inflight.saturating_sub(1);
        }
    }
}

impl HealthBook {
    /// A book for `targets` targets, all healthy, with the default breaker.
    pub fn new(targets: usize) -> Self {
        Self::with_breaker(targets, BreakerConfig::default())
    }

    /// A book whose breakers follow `breaker`.
    pub fn with_breaker(targets: usize, breaker: BreakerConfig) -> Self {
        HealthBook {
            cells: (0..targets).map(|_| Arc::new(Cell::default())).collect(),
            breaker,
            observer: None,
            publisher: None,
        }
    }

    /// A book whose target `i` carries `from`'s target `carried[i]` over
    /// (health, breaker, in flight: the same record), or starts healthy when
    /// that is `None`.
    pub fn carrying(from: &HealthBook, carried: &[Option<u32>], breaker: BreakerConfig) -> Self {
        let cells = carried
            .iter()
            .map(|old| old.and_then(|o| from.cells.get(o as usize).cloned()).unwrap_or_default())
            .collect();
        HealthBook { cells, breaker, observer: None, publisher: None }
    }

    /// Tells `observer` of every breaker move an outcome or an operator makes.
    pub fn with_observer(mut self, observer: BreakerObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    fn tell(&self, target: u32, from: BreakerState, to: BreakerState) {
        if from != to
            && let Some(observer) = &self.observer
        {
            observer(target, from, to);
        }
    }

    /// Marks an attempt to `target` in flight, whatever its breaker says;
    /// `None` for an unknown target.
    pub fn start(self: &Arc<Self>, target: u32) -> Option<InflightGuard> {
        let cell = self.cells.get(target as usize)?;
        cell.inflight.fetch_add(1, Ordering::Relaxed);
        Some(InflightGuard { book: self.clone(), target: target as usize, probe: false })
    }

    /// Marks an attempt to `target` in flight if its breaker admits one: closed,
    /// or half-open with a probe slot free (the attempt is then the probe).
    /// `None` when the breaker is open (or its probe slots are taken), or
    /// while the provider's `Retry-After` runs: what a provider asked for is
    /// a cool-down for every request, not advice to one policy (a breaker
    /// forced closed by an operator overrides it).
    pub fn admit(self: &Arc<Self>, target: u32) -> Option<InflightGuard> {
        let cell = self.cells.get(target as usize)?;
        let probe = {
            let mut s = cell.stats.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let cooling = s.retry_after_until.is_some_and(|until| until > now);
            if cooling && s.forced != Some(BreakerState::Closed) {
                return None;
            }
            let probe = s.admits(&self.breaker, now)?;
            s.probes_inflight += u32::from(probe);
            probe
        };
        cell.inflight.fetch_add(1, Ordering::Relaxed);
        Some(InflightGuard { book: self.clone(), target: target as usize, probe })
    }

    /// Records how an attempt ended. `latency` is time to response headers
    /// (or to the failure); `retry_after` is what the provider asked for.
    pub fn record(&self, target: u32, ok: bool, latency: Duration, retry_after: Option<Duration>) {
        let Some(cell) = self.cells.get(target as usize) else { return };
        let now = Instant::now();
        let mut s = cell.stats.lock().unwrap_or_else(|p| p.into_inner());
        let before = s.breaker(now);
        let ms = latency.as_secs_f32() * 1000.0;
        s.ewma_latency_ms = Some(match s.ewma_latency_ms {
            Some(avg) => avg + EWMA_ALPHA * (ms - avg),
            None => ms,
        });
        if ok {
            s.latencies.push(ms);
        }
        s.recent.push_back((now, ok));
        s.failed += u32::from(!ok);
        s.prune(now);
        let failures_before = s.consecutive_failures;
        s.consecutive_failures = if ok { 0 } else { s.consecutive_failures.saturating_add(1) };
        if let Some(wait) = retry_after {
            s.retry_after_until = Some(now + wait);
        } else if ok {
            s.retry_after_until = None;
        }
        s.trip_or_reset(&self.breaker, now, ok);
        let after = s.breaker(now);
        let opened_for = s.open_until.map(|until| until.saturating_duration_since(now));
        let forced = s.forced.is_some();
        let after_failures = ok && failures_before > 0;
        drop(s);
        self.tell(target, before, after);
        if let Some(wait) = retry_after {
            self.publish(target, SharedMove::Cooling(wait));
        }
        match (before, after, opened_for) {
            _ if forced => {}
            (BreakerState::Closed | BreakerState::HalfOpen, BreakerState::Open, Some(open_for)) => {
                self.publish(target, SharedMove::Opened(open_for));
            }
            (BreakerState::Open | BreakerState::HalfOpen, BreakerState::Closed, _) => {
                self.publish(target, SharedMove::Closed);
            }
            (BreakerState::Closed, BreakerState::Closed, _) if !ok => self.publish(target, SharedMove::Failed),
            (BreakerState::Closed, BreakerState::Closed, _) if after_failures => {
                self.publish(target, SharedMove::Succeeded);
            }
            _ => {}
        }
    }

    /// Records a stream's time to its first content-bearing event (the
    /// history [`HealthBook::first_token_p95`] reads).
    pub fn record_first_token(&self, target: u32, latency: Duration) {
        let Some(cell) = self.cells.get(target as usize) else { return };
        let mut s = cell.stats.lock().unwrap_or_else(|p| p.into_inner());
        s.first_tokens.push(latency.as_secs_f32() * 1000.0);
    }

    /// The p95 of `target`'s latest times to first token, once at least
    /// `min_samples` streams were recorded.
    pub fn first_token_p95(&self, target: u32, min_samples: usize) -> Option<Duration> {
        let cell = self.cells.get(target as usize)?;
        let mut s = cell.stats.lock().unwrap_or_else(|p| p.into_inner());
        if s.first_tokens.len() < min_samples.max(1) {
            return None;
        }
        Some(Duration::from_secs_f32(s.first_tokens.p95()? / 1000.0))
    }

    /// The health of `target` now; `None` for an unknown target.
    pub fn get(&self, target: u32) -> Option<TargetHealth> {
        let cell = self.cells.get(target as usize)?;
        let now = Instant::now();
        let mut s = cell.stats.lock().unwrap_or_else(|p| p.into_inner());
        s.prune(now);
        let (total, failed) = (s.recent.len() as u32, s.failed);
        Some(TargetHealth {
            inflight: cell.inflight.load(Ordering::Relaxed),
            ewma_latency_ms: s.ewma_latency_ms.unwrap_or(0.0),
            latency_p95_ms: s.latency_p95(),
            error_rate: if total == 0 { 0.0 } else { failed as f32 / total as f32 },
            consecutive_failures: s.consecutive_failures,
            retry_after_ms: s
                .retry_after_until
                .and_then(|until| until.checked_duration_since(now))
                .map(|d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX))
                .filter(|&ms| ms > 0),
            breaker: s.breaker(now),
        })
    }

    /// Forces `target`'s breaker `open` or `closed` (for maintenance) until
    /// forced otherwise; `None` gives it back to traffic. False for an unknown
    /// target. A forced-open target gets no attempts, not even probes.
    pub fn force(&self, target: u32, state: Option<BreakerState>) -> bool {
        let Some(cell) = self.cells.get(target as usize) else { return false };
        let now = Instant::now();
        let mut s = cell.stats.lock().unwrap_or_else(|p| p.into_inner());
        let before = s.breaker(now);
        let was = s.forced;
        s.forced = state.filter(|st| *st != BreakerState::HalfOpen);
        let (after, now_forced) = (s.breaker(now), s.forced);
        drop(s);
        self.tell(target, before, after);
        if was != now_forced {
            self.publish(target, SharedMove::Forced(now_forced));
        }
        true
    }

    /// Whether `target`'s breaker is forced, and how.
    pub fn forced(&self, target: u32) -> Option<BreakerState> {
        self.cells.get(target as usize)?.stats.lock().unwrap_or_else(|p| p.into_inner()).forced
    }

    /// No Retry-After running and the breaker admits an attempt (closed, or
    /// half-open with a probe slot free); false for an unknown target.
    pub fn available(&self, target: u32) -> bool {
        let Some(cell) = self.cells.get(target as usize) else { return false };
        let now = Instant::now();
        let s = cell.stats.lock().unwrap_or_else(|p| p.into_inner());
        s.retry_after_until.is_none_or(|until| until <= now) && s.admits(&self.breaker, now).is_some()
    }

    /// The longest wait before every one of `targets` may be tried again
    /// (its breaker's cool-down or its Retry-After, whichever ends later);
    /// `None` when each may be tried now.
    pub fn longest_wait(&self, targets: &[u32]) -> Option<Duration> {
        let now = Instant::now();
        targets
            .iter()
            .filter_map(|&t| {
                let s = self.cells.get(t as usize)?.stats.lock().unwrap_or_else(|p| p.into_inner());
                let until = s.open_until.into_iter().chain(s.retry_after_until).max()?;
                Some(until.saturating_duration_since(now))
            })
            .filter(|wait| !wait.is_zero())
            .max()
    }

    /// The soonest moment any of `targets` may be tried again, as a wait from now.
    pub fn soonest_retry_after(&self, targets: &[u32]) -> Option<Duration> {
        targets
            .iter()
            .map(|&t| self.get(t).and_then(|h| h.retry_after_ms).map(|ms| Duration::from_millis(ms.into())))
            .collect::<Option<Vec<_>>>()
            .and_then(|waits| waits.into_iter().min())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn failures_accrue_and_a_success_resets_them() {
        let book = HealthBook::new(1);
        book.record(0, false, Duration::from_millis(10), None);
        book.record(0, false, Duration::from_millis(10), None);
        let h = book.get(0).unwrap();
        assert_eq!((h.consecutive_failures, h.error_rate), (2, 1.0));
        book.record(0, true, Duration::from_millis(10), None);
        let h = book.get(0).unwrap();
        assert_eq!(h.consecutive_failures, 0);
        assert!((h.error_rate - 2.0 / 3.0).abs() < 1e-6);
    }

    #[tokio::test(start_paused = true)]
    async fn no_attempt_is_admitted_while_a_providers_retry_after_runs_unless_an_operator_forced_the_breaker_closed() {
        let book = Arc::new(HealthBook::new(2));
        book.record(0, false, Duration::from_millis(5), Some(Duration::from_secs(2)));
        assert!(book.admit(0).is_none(), "cooling down");
        assert!(book.admit(1).is_some(), "another target is not");
        book.force(0, Some(BreakerState::Closed));
        assert!(book.admit(0).is_some(), "forced closed overrides it");
        book.force(0, None);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(book.admit(0).is_some(), "over");
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_counts_down_and_old_outcomes_leave_the_window() {
        let book = HealthBook::new(1);
        book.record(0, false, Duration::from_millis(5), Some(Duration::from_secs(2)));
        assert_eq!(book.get(0).unwrap().retry_after_ms, Some(2000));
        assert!(!book.available(0) && !book.available(9));
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(book.get(0).unwrap().retry_after_ms, Some(500));
        tokio::time::advance(Duration::from_secs(40)).await;
        let h = book.get(0).unwrap();
        assert_eq!((h.retry_after_ms, h.error_rate), (None, 0.0));
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_keeps_its_cap_and_its_count() {
        let book = HealthBook::new(1);
        for i in 0..(WINDOW_CAP + 100) {
            book.record(0, i % 4 == 0, Duration::from_millis(1), None);
        }
        let h = book.get(0).unwrap();
        assert!((h.error_rate - 0.75).abs() < 0.01, "{}", h.error_rate);
        assert_eq!(book.cells[0].stats.lock().unwrap().recent.len(), WINDOW_CAP);
    }

    #[tokio::test(start_paused = true)]
    async fn the_breaker_opens_after_five_failures_in_a_row_and_a_probe_closes_it() {
        let book = HealthBook::new(1);
        for _ in 0..4 {
            book.record(0, false, Duration::from_millis(5), None);
        }
        assert_eq!(book.get(0).unwrap().breaker, BreakerState::Closed);
        book.record(0, false, Duration::from_millis(5), None);
        assert_eq!(book.get(0).unwrap().breaker, BreakerState::Open);
        assert!(!book.available(0));
        tokio::time::advance(BreakerConfig::default().cool_down).await;
        assert!(book.available(0), "half-open lets a probe through");
        assert_eq!(book.get(0).unwrap().breaker, BreakerState::HalfOpen);
        book.record(0, false, Duration::from_millis(5), None);
        assert_eq!(book.get(0).unwrap().breaker, BreakerState::Open, "a failed probe opens it again");
        tokio::time::advance(BreakerConfig::default().cool_down).await;
        book.record(0, true, Duration::from_millis(5), None);
        assert_eq!(book.get(0).unwrap().breaker, BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_admits_one_probe_and_each_failed_probe_doubles_the_cool_down() {
        let book = Arc::new(HealthBook::new(1));
        let cool_down = BreakerConfig::default().cool_down;
        for _ in 0..5 {
            book.record(0, false, Duration::from_millis(5), None);
        }
        assert!(book.admit(0).is_none(), "open: nothing goes");
        tokio::time::advance(cool_down).await;
        let probe = book.admit(0).expect("half-open: one probe");
        assert!(probe.is_probe());
        assert!(book.admit(0).is_none() && !book.available(0), "one probe at a time");
        book.record(0, false, Duration::from_millis(5), None);
        drop(probe);
        tokio::time::advance(cool_down).await;
        assert!(book.admit(0).is_none(), "the second cool-down is twice as long");
        tokio::time::advance(cool_down).await;
        let probe = book.admit(0).expect("half-open again");
        book.record(0, true, Duration::from_millis(5), None);
        drop(probe);
        let attempt = book.admit(0).expect("closed");
        assert!(!attempt.is_probe());
        assert!(book.admit(0).is_some(), "closed: no limit");
    }

    #[tokio::test(start_paused = true)]
    async fn the_breaker_stays_open_through_a_longer_retry_after() {
        let book = HealthBook::new(1);
        for _ in 0..5 {
            book.record(0, false, Duration::from_millis(5), Some(Duration::from_secs(20)));
        }
        tokio::time::advance(BreakerConfig::default().cool_down * 2).await;
        assert_eq!(book.get(0).unwrap().breaker, BreakerState::Open);
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(book.get(0).unwrap().breaker, BreakerState::HalfOpen);
    }

    #[tokio::test(start_paused = true)]
    async fn the_breaker_opens_on_a_high_error_rate_without_a_streak() {
        let book = HealthBook::new(1);
        for i in 0..(BreakerConfig::default().min_requests - 1) {
            book.record(0, i % 3 == 0, Duration::from_millis(5), None);
        }
        assert_eq!(book.get(0).unwrap().breaker, BreakerState::Closed, "too few samples yet");
        book.record(0, false, Duration::from_millis(5), None);
        assert_eq!(book.get(0).unwrap().breaker, BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_long_outage_a_recovered_target_is_probed_within_ten_seconds() {
        let book = Arc::new(HealthBook::new(1));
        for _ in 0..5 {
            book.record(0, false, Duration::from_millis(5), None);
        }
        // An hour down: every probe fails, and probes stay one per cool-down.
        let mut probes = 0;
        for _ in 0..3600 {
            tokio::time::advance(Duration::from_secs(1)).await;
            if let Some(probe) = book.admit(0) {
                probes += 1;
                book.record(0, false, Duration::from_millis(5), None);
                drop(probe);
            }
        }
        assert!((360..=400).contains(&probes), "{probes} probes in an hour");
        // It recovers now: within 10 s a probe goes, succeeds, and traffic flows.
        let mut waited = Duration::ZERO;
        let probe = loop {
            if let Some(probe) = book.admit(0) {
                break probe;
            }
            tokio::time::advance(Duration::from_millis(100)).await;
            waited += Duration::from_millis(100);
        };
        assert!(waited <= Duration::from_secs(10), "waited {waited:?}");
        book.record(0, true, Duration::from_millis(5), None);
        drop(probe);
        assert_eq!(book.get(0).unwrap().breaker, BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn the_longest_wait_is_the_later_of_cool_downs_and_retry_afters() {
        let book = HealthBook::new(3);
        assert_eq!(book.longest_wait(&[0, 1, 2]), None);
        for _ in 0..5 {
            book.record(0, false, Duration::from_millis(5), None);
        }
        book.record(1, false, Duration::from_millis(5), Some(Duration::from_secs(30)));
        assert_eq!(book.longest_wait(&[0]), Some(BreakerConfig::default().cool_down));
        assert_eq!(book.longest_wait(&[0, 1, 2]), Some(Duration::from_secs(30)));
    }

    #[test]
    fn latency_p95_is_over_the_latest_successes() {
        let book = HealthBook::new(1);
        assert_eq!(book.get(0).unwrap().latency_p95_ms, 0.0);
        for ms in 1..=100 {
            book.record(0, true, Duration::from_millis(ms), None);
        }
        book.record(0, false, Duration::from_secs(9), None);
        assert_eq!(book.get(0).unwrap().latency_p95_ms, 95.0);
        for _ in 0..LATENCY_SAMPLES {
            book.record(0, true, Duration::from_millis(7), None);
        }
        assert_eq!(book.get(0).unwrap().latency_p95_ms, 7.0);
    }

    #[test]
    fn inflight_is_counted_while_the_guard_lives() {
        let book = Arc::new(HealthBook::new(2));
        let g = book.start(1).unwrap();
        assert_eq!(book.get(1).unwrap().inflight, 1);
        drop(g);
        assert_eq!(book.get(1).unwrap().inflight, 0);
        assert!(book.start(7).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_carried_target_shares_its_record_and_the_observer_hears_breaker_moves() {
        let moves = Arc::new(Mutex::new(Vec::new()));
        let heard = moves.clone();
        let old = Arc::new(HealthBook::new(2).with_observer(Arc::new(move |t, from, to| {
            heard.lock().unwrap().push((t, from, to));
        })));
        for _ in 0..5 {
            old.record(1, false, Duration::from_millis(5), None);
        }
        assert_eq!(*moves.lock().unwrap(), vec![(1, BreakerState::Closed, BreakerState::Open)]);
        // The new book's target 0 is the old target 1; its target 1 is new.
        let new = Arc::new(HealthBook::carrying(&old, &[Some(1), None], BreakerConfig::default()));
        assert_eq!(new.get(0).unwrap().breaker, BreakerState::Open, "the open breaker is carried over");
        assert_eq!(new.get(1).unwrap().breaker, BreakerState::Closed);
        let guard = old.start(1).unwrap();
        assert_eq!(new.get(0).unwrap().inflight, 1, "one record: an attempt on the old book counts on the new");
        drop(guard);
        tokio::time::advance(Duration::from_secs(6)).await;
        old.record(1, true, Duration::from_millis(5), None);
        assert_eq!(new.get(0).unwrap().breaker, BreakerState::Closed);
        assert_eq!(moves.lock().unwrap().last(), Some(&(1, BreakerState::HalfOpen, BreakerState::Closed)));
        assert!(old.force(0, Some(BreakerState::Open)));
        assert_eq!(moves.lock().unwrap().last(), Some(&(0, BreakerState::Closed, BreakerState::Open)));
    }
}
