//! A policy's log allowance: a token bucket per policy name, so a policy
//! that logs on every decision cannot flood the gateway's log. Lines over the
//! allowance are dropped and counted; the next line that gets through says
//! how many were dropped before it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::Instant;

/// Lines per second a policy may write, on average.
pub const LINES_PER_SECOND: f64 = 50.0;
/// Lines a policy may write at once after a quiet spell.
pub const BURST: f64 = 100.0;

struct Bucket {
    tokens: f64,
    refilled: Instant,
    /// Dropped since the last line that got through.
    dropped_since: u64,
}

/// One policy's allowance.
pub struct LogLimit {
    bucket: Mutex<Bucket>,
    dropped: AtomicU64,
}

impl Default for LogLimit {
    fn default() -> Self {
        LogLimit {
            bucket: Mutex::new(Bucket { tokens: BURST, refilled: Instant::now(), dropped_since: 0 }),
            dropped: AtomicU64::new(0),
        }
    }
}

impl LogLimit {
    /// May a line be written now? `Some(n)`: yes, and `n` lines were dropped
    /// since the last one written; `None`: no (it is counted as dropped).
    pub fn admit(&self) -> Option<u64> {
        let now = Instant::now();
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = now.saturating_duration_since(b.refilled).as_secs_f64();
        b.tokens = (b.tokens + elapsed * LINES_PER_SECOND).min(BURST);
        b.refilled = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Some(std::mem::take(&mut b.dropped_since))
        } else {
            b.dropped_since += 1;
            self.dropped.fetch_add(1, Ordering::Relaxed);
            None
        }
    }

    /// Lines dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_flood_is_cut_to_the_burst_then_the_rate_and_the_drops_are_counted() {
        let limit = LogLimit::default();
        let written = (0..10_000).filter(|_| limit.admit().is_some()).count();
        assert_eq!(written, BURST as usize);
        assert_eq!(limit.dropped(), 10_000 - BURST as u64);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(limit.admit(), Some(10_000 - BURST as u64), "the next line says how many were dropped");
        let written = (0..10_000).filter(|_| limit.admit().is_some()).count();
        assert_eq!(written, LINES_PER_SECOND as usize - 1);
    }
}
