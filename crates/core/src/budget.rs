//! The gateway-wide retry budget (Envoy-style): over a sliding window,
//! retries (and hedges) may be at most `ratio` of client requests, or
//! `min_retries`, whichever is more — so an outage cannot multiply the load
//! on a struggling provider.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The window is kept as this many buckets.
const BUCKETS: u32 = 10;

#[derive(Clone, Copy)]
struct Bucket {
    start: Instant,
    requests: u32,
    retries: u32,
}

/// Counts requests and retries; says whether one more retry fits.
pub struct RetryBudget {
    ratio: f64,
    min_retries: u32,
    bucket_len: Duration,
    buckets: Mutex<Vec<Bucket>>,
}

impl RetryBudget {
    /// Retries ≤ max(`min_retries`, `ratio` × requests) over `window`.
    pub fn new(ratio: f64, min_retries: u32, window: Duration) -> Self {
        RetryBudget {
            ratio,
            min_retries,
            bucket_len: (window / BUCKETS).max(Duration::from_millis(1)),
            buckets: Mutex::new(Vec::new()),
        }
    }

    fn with_current<T>(&self, f: impl FnOnce(&mut Bucket, (u32, u32)) -> T) -> T {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let window = self.bucket_len * BUCKETS;
        buckets.retain(|b| now.duration_since(b.start) < window);
        if buckets.last().is_none_or(|b| now.duration_since(b.start) >= self.bucket_len) {
            buckets.push(Bucket { start: now, requests: 0, retries: 0 });
        }
        let totals = buckets.iter().fold((0, 0), |(q, r), b| (q + b.requests, r + b.retries));
        let current = buckets.last_mut().expect("a current bucket");
        f(current, totals)
    }

    /// A client request arrived.
    pub fn record_request(&self) {
        self.with_current(|b, _| b.requests += 1);
    }

    /// Retries the budget would still allow now.
    pub fn remaining(&self) -> u32 {
        self.with_current(|_, (requests, retries)| {
            let allowed = (self.ratio * f64::from(requests)).floor().max(f64::from(self.min_retries));
            (allowed as u32).saturating_sub(retries)
        })
    }

    /// Takes one retry from the budget; false when it is spent.
    pub fn try_retry(&self) -> bool {
        self.with_current(|b, (requests, retries)| {
            let allowed = (self.ratio * f64::from(requests)).floor().max(f64::from(self.min_retries));
            if f64::from(retries) < allowed {
                b.retries += 1;
                true
            } else {
                false
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retries_are_held_to_the_ratio_of_recent_requests() {
        let budget = RetryBudget::new(0.5, 2, Duration::from_secs(10));
        for _ in 0..10 {
            budget.record_request();
        }
        let granted = (0..20).filter(|_| budget.try_retry()).count();
        assert_eq!(granted, 5, "half of 10 requests");
        tokio::time::advance(Duration::from_secs(11)).await;
        let granted = (0..20).filter(|_| budget.try_retry()).count();
        assert_eq!(granted, 2, "an idle window still allows min_retries");
    }
}
