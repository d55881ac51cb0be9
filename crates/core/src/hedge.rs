//! Hedging: the plan's first attempt, raced against a second one started
//! after the plan's `hedge-after-ms`. The first good answer wins; the other
//! attempt is dropped, which closes its connection, and — as it never
//! finished — is recorded as neither success nor failure.

use std::future::Future;
use std::time::Duration;

/// How a race ended.
pub(crate) struct Raced<T> {
    /// The success, or when every attempt failed, the one that failed last.
    pub winner: T,
    /// When both ran and both failed: the one that failed first.
    pub earlier_failure: Option<T>,
}

/// Runs `first`; when it has not finished after `after` and `start_second`
/// gives a second attempt, runs both and keeps the first one `is_good` says
/// is good.
pub(crate) async fn race<T, A, B>(
    first: A,
    after: Duration,
    start_second: impl FnOnce() -> Option<B>,
    is_good: impl Fn(&T) -> bool,
) -> Raced<T>
where
    A: Future<Output = T>,
    B: Future<Output = T>,
{
    tokio::pin!(first);
    // `biased` here and below: on a tie the first attempt wins, the same
    // way every time (a simulation's run is repeatable).
    tokio::select! {
        biased;
        done = &mut first => return Raced { winner: done, earlier_failure: None },
        () = tokio::time::sleep(after) => {}
    }
    let Some(second) = start_second() else {
        return Raced { winner: first.await, earlier_failure: None };
    };
    tokio::pin!(second);
    let (done, other_first) = tokio::select! {
        biased;
        a = &mut first => (a, false),
        b = &mut second => (b, true),
    };
    if is_good(&done) {
        return Raced { winner: done, earlier_failure: None };
    }
    let later = if other_first { first.await } else { second.await };
    Raced { winner: later, earlier_failure: Some(done) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::{Instant, sleep};

    async fn after(ms: u64, ok: bool, name: &'static str) -> (bool, &'static str) {
        sleep(Duration::from_millis(ms)).await;
        (ok, name)
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_first_attempt_loses_to_the_hedge() {
        let started = Instant::now();
        let raced =
            race(after(5000, true, "slow"), Duration::from_millis(100), || Some(after(50, true, "hedge")), |r| r.0)
                .await;
        assert_eq!(raced.winner.1, "hedge");
        assert_eq!(started.elapsed(), Duration::from_millis(150));
    }

    #[tokio::test(start_paused = true)]
    async fn a_fast_first_attempt_never_starts_the_hedge() {
        let mut started_second = false;
        let raced = race(
            after(20, true, "first"),
            Duration::from_millis(100),
            || {
                started_second = true;
                Some(after(1, true, "hedge"))
            },
            |r| r.0,
        )
        .await;
        assert_eq!(raced.winner.1, "first");
        assert!(!started_second);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_hedge_waits_for_the_first_and_both_failures_are_kept() {
        let raced =
            race(after(300, false, "first"), Duration::from_millis(100), || Some(after(10, false, "hedge")), |r| r.0)
                .await;
        assert_eq!((raced.winner.1, raced.earlier_failure.map(|f| f.1)), ("first", Some("hedge")));
        let raced =
            race(after(300, true, "first"), Duration::from_millis(100), || Some(after(10, false, "hedge")), |r| r.0)
                .await;
        assert_eq!((raced.winner.1, raced.earlier_failure.map(|f| f.1)), ("first", Some("hedge")));
    }
}
