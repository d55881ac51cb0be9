//! What instances sharing state (`[state] backend = "redis"`) tell each
//! other about a target's health, and how a book takes in what another
//! instance saw. Nothing here waits for the network: the book hands its own
//! moves to a publisher (a queue the state crate drains) and applies the
//! others' moves to local memory, which is all a decision ever reads.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{BreakerState, HealthBook};

/// A move of one target's health worth telling the other instances.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SharedMove {
    /// The breaker opened (or its probe failed): no traffic for this long.
    Opened(Duration),
    /// The breaker closed: the target answered again.
    Closed,
    /// The provider asked (Retry-After) for no requests for this long.
    Cooling(Duration),
    /// An operator forced the breaker (`None`: given back to traffic).
    Forced(Option<BreakerState>),
    /// An attempt failed while the breaker was closed: counted across the
    /// instances, so that together they trip it as one would.
    Failed,
    /// An attempt succeeded after failures: the count starts again.
    Succeeded,
}

/// Told of each [`SharedMove`] this instance's traffic or operator makes:
/// `(target, move)`. It must not block (it runs under the request path).
pub type HealthPublisher = Arc<dyn Fn(u32, SharedMove) + Send + Sync>;

impl HealthBook {
    /// Tells `publisher` of every move the other instances should know.
    pub fn with_publisher(mut self, publisher: HealthPublisher) -> Self {
        self.publisher = Some(publisher);
        self
    }

    pub(super) fn publish(&self, target: u32, shared: SharedMove) {
        if let Some(publisher) = &self.publisher {
            publisher(target, shared);
        }
    }

    /// Applies what another instance saw of `target`, without telling it on.
    ///
    /// A breaker another instance opened stays open here one cool-down
    /// longer than there: the instance that opened it sends the probe, and
    /// its outcome ([`SharedMove::Closed`] or a longer
    /// [`SharedMove::Opened`]) reaches this one first, so N instances send
    /// one probe, not N. Should that instance go quiet, this one probes on
    /// its own once the longer cool-down ends.
    pub fn apply_shared(&self, target: u32, shared: SharedMove) {
        let Some(cell) = self.cells.get(target as usize) else { return };
        let now = Instant::now();
        let mut s = cell.stats.lock().unwrap_or_else(|p| p.into_inner());
        let before = s.breaker(now);
        match shared {
            SharedMove::Opened(open_for) => {
                // Open here on this instance's own count: it probes when its
                // own cool-down ends, or the other's, whichever is later.
                let until =
                    if before == BreakerState::Open { now + open_for } else { now + open_for + self.breaker.cool_down };
                if s.open_until.is_none_or(|mine| mine < until) {
                    s.open_until = Some(until);
                }
            }
            SharedMove::Closed => {
                if s.open_until.take().is_some() {
                    s.failed_probes = 0;
                    s.consecutive_failures = 0;
                }
            }
            SharedMove::Cooling(wait) => {
                let until = now + wait;
                if s.retry_after_until.is_none_or(|mine| mine < until) {
                    s.retry_after_until = Some(until);
                }
            }
            SharedMove::Forced(state) => s.forced = state.filter(|st| *st != BreakerState::HalfOpen),
            SharedMove::Failed | SharedMove::Succeeded => {}
        }
        let after = s.breaker(now);
        drop(s);
        self.tell(target, before, after);
    }
}

impl HealthBook {
    /// Opens `target`'s breaker because the instances together counted
    /// enough failures, as this instance's own count would have: this
    /// instance then sends the probe, and tells the others it opened.
    pub fn trip_shared(&self, target: u32) {
        let Some(cell) = self.cells.get(target as usize) else { return };
        let now = Instant::now();
        let mut s = cell.stats.lock().unwrap_or_else(|p| p.into_inner());
        let before = s.breaker(now);
        if before != BreakerState::Closed || s.open_until.is_some() {
            return;
        }
        let retry_after = s.retry_after_until.map_or(Duration::ZERO, |t| t.saturating_duration_since(now));
        let open_for = self.breaker.cool_down.max(retry_after);
        s.open_until = Some(now + open_for);
        let after = s.breaker(now);
        drop(s);
        self.tell(target, before, after);
        self.publish(target, SharedMove::Opened(open_for));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::health::BreakerConfig;

    type Told = Arc<Mutex<Vec<(u32, SharedMove)>>>;

    fn recording_book() -> (Arc<HealthBook>, Told) {
        let told = Arc::new(Mutex::new(Vec::new()));
        let sink = told.clone();
        let book = HealthBook::with_breaker(2, BreakerConfig { failures: 2, ..BreakerConfig::default() })
            .with_publisher(Arc::new(move |t, m| sink.lock().unwrap().push((t, m))));
        (Arc::new(book), told)
    }

    #[tokio::test(start_paused = true)]
    async fn a_book_tells_its_breaker_moves_and_cool_downs_once_each() {
        let (book, told) = recording_book();
        book.record(0, false, Duration::from_millis(5), None);
        book.record(0, true, Duration::from_millis(5), None);
        book.record(0, true, Duration::from_millis(5), None);
        book.record(0, false, Duration::from_millis(5), None);
        book.record(0, false, Duration::from_millis(5), None);
        book.record(0, false, Duration::from_millis(5), None);
        book.record(1, false, Duration::from_millis(5), Some(Duration::from_secs(3)));
        tokio::time::advance(Duration::from_secs(6)).await;
        book.record(0, true, Duration::from_millis(5), None);
        book.force(1, Some(BreakerState::Open));
        assert_eq!(
            *told.lock().unwrap(),
            [
                (0, SharedMove::Failed),
                (0, SharedMove::Succeeded),
                (0, SharedMove::Failed),
                (0, SharedMove::Opened(Duration::from_secs(5))),
                (1, SharedMove::Cooling(Duration::from_secs(3))),
                (1, SharedMove::Failed),
                (0, SharedMove::Closed),
                (1, SharedMove::Forced(Some(BreakerState::Open))),
            ],
            "the failure that trips tells the opening; one while open is not counted; a success after a success is not told"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_breaker_opened_elsewhere_holds_here_a_cool_down_longer_and_is_not_told_back() {
        let (book, told) = recording_book();
        book.apply_shared(0, SharedMove::Opened(Duration::from_secs(5)));
        assert!(book.admit(0).is_none(), "open here too");
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(book.admit(0).is_none(), "the instance that opened it probes first");
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(book.admit(0).is_some_and(|g| g.is_probe()), "that instance went quiet: probe here");
        assert!(told.lock().unwrap().is_empty(), "what came from elsewhere is not told back");
    }

    #[tokio::test(start_paused = true)]
    async fn failures_counted_across_instances_open_the_breaker_here_as_the_prober() {
        let (book, told) = recording_book();
        book.trip_shared(0);
        assert!(book.admit(0).is_none(), "open");
        assert_eq!(*told.lock().unwrap(), [(0, SharedMove::Opened(Duration::from_secs(5)))]);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(book.admit(0).is_some_and(|g| g.is_probe()), "this instance probes when its cool-down ends");
        book.trip_shared(0);
        assert_eq!(told.lock().unwrap().len(), 1, "not closed: nothing to trip");
    }

    #[tokio::test(start_paused = true)]
    async fn a_close_or_cool_down_from_elsewhere_applies_here() {
        let (book, _) = recording_book();
        book.apply_shared(0, SharedMove::Opened(Duration::from_secs(5)));
        book.apply_shared(0, SharedMove::Closed);
        assert!(book.admit(0).is_some(), "closed by the other instance's probe");
        book.apply_shared(1, SharedMove::Cooling(Duration::from_secs(2)));
        assert_eq!(book.get(1).unwrap().retry_after_ms, Some(2000));
        book.apply_shared(1, SharedMove::Forced(Some(BreakerState::Closed)));
        assert_eq!(book.forced(1), Some(BreakerState::Closed));
    }
}
