//! Per-minute rates (`requests_per_minute`, `tokens_per_minute`, a
//! provider's `rpm` / `tpm`): a token bucket holding a minute's worth,
//! refilled continuously — a burst up to the limit, then `limit / 60` a
//! second. Token rates are charged an estimate when a request is let in and
//! corrected ([`Rate::settle`]) from the provider's usage when it ends; a
//! correction may leave the bucket in debt, which the refill pays back
//! before anything more is let in.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One rate's bucket.
#[derive(Debug)]
pub struct Rate {
    per_minute: u32,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// What may be taken now (negative: debt from a correction).
    level: f64,
    at: Instant,
}

/// Over the rate: when the request would be let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// The limit per minute.
    pub per_minute: u32,
    /// Until enough has come back for this request.
    pub retry_after: Duration,
    /// Until the bucket is full again.
    pub reset: Duration,
}

/// Let in: what is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    /// The limit per minute.
    pub per_minute: u32,
    /// What may still be taken right now.
    pub remaining: u32,
}

impl Rate {
    /// A full bucket of `per_minute` (at least 1).
    pub fn new(per_minute: u32) -> Self {
        let per_minute = per_minute.max(1);
        Rate { per_minute, bucket: Mutex::new(Bucket { level: f64::from(per_minute), at: Instant::now() }) }
    }

    /// The limit per minute.
    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    fn per_second(&self) -> f64 {
        f64::from(self.per_minute) / 60.0
    }

    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        // A clock read out of order refills nothing (never a negative wait).
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.level = (bucket.level + elapsed * self.per_second()).min(f64::from(self.per_minute));
        bucket.at = now.max(bucket.at);
    }

    fn wait(&self, missing: f64) -> Duration {
        Duration::from_secs_f64((missing / self.per_second()).max(0.0))
    }

    /// Whether `n` could be taken at `now`, or when it could (no change).
    pub fn check(&self, n: u32, now: Instant) -> Result<(), Limited> {
        let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        self.refill(&mut bucket, now);
        self.verdict(&bucket, n)
    }

    fn verdict(&self, bucket: &Bucket, n: u32) -> Result<(), Limited> {
        // More than a whole minute's worth is let in once the bucket is full
        // (else a single large request could never pass).
        let need = f64::from(n.min(self.per_minute));
        if bucket.level >= need {
            return Ok(());
        }
        Err(Limited {
            per_minute: self.per_minute,
            retry_after: self.wait(need - bucket.level),
            reset: self.wait(f64::from(self.per_minute) - bucket.level),
        })
    }

    /// Takes `n` at `now`, or says when they will be there.
    pub fn take(&self, n: u32, now: Instant) -> Result<Admitted, Limited> {
        let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        self.refill(&mut bucket, now);
        self.verdict(&bucket, n)?;
        bucket.level -= f64::from(n);
        Ok(Admitted { per_minute: self.per_minute, remaining: bucket.level.max(0.0).floor() as u32 })
    }

    /// What may be taken right now.
    pub fn remaining(&self, now: Instant) -> u32 {
        let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        self.refill(&mut bucket, now);
        bucket.level.max(0.0).floor() as u32
    }

    /// Corrects an earlier take by `delta` (the real count minus the
    /// estimate): more used is owed, less is given back.
    pub fn settle(&self, delta: i64) {
        let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        // Debt is bounded by a minute's worth, so one huge answer cannot
        // lock a key out for longer than a minute.
        let full = f64::from(self.per_minute);
        bucket.level = (bucket.level - delta as f64).clamp(-full, full);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_bursts_to_its_limit_then_lets_one_in_per_share_of_a_minute() {
        let rate = Rate::new(30);
        let t0 = Instant::now();
        for left in (0..30).rev() {
            assert_eq!(rate.take(1, t0).unwrap().remaining, left);
        }
        let limited = rate.take(1, t0).unwrap_err();
        assert_eq!(limited.retry_after, Duration::from_secs(2), "60 s / 30");
        assert_eq!(limited.reset, Duration::from_secs(60));
        assert!(rate.take(1, t0 + Duration::from_millis(1999)).is_err());
        assert!(rate.take(1, t0 + Duration::from_secs(2)).is_ok());
        assert!(rate.take(1, t0 + Duration::from_secs(2)).is_err());
        // An earlier instant (a clock read out of order) refills nothing.
        assert!(rate.take(1, t0).is_err());
        // A long pause refills to the limit, no more.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(rate.take(1, later).unwrap().remaining, 29);
    }

    #[test]
    fn a_token_rate_is_charged_the_estimate_and_corrected_by_the_real_usage() {
        let rate = Rate::new(6000);
        let t0 = Instant::now();
        assert_eq!(rate.take(1000, t0).unwrap().remaining, 5000);
        // The answer used 3000 tokens in all: 2000 more than estimated.
        rate.settle(2000);
        assert_eq!(rate.remaining(t0), 3000);
        // A smaller real count gives back.
        rate.take(1000, t0).unwrap();
        rate.settle(-500);
        assert_eq!(rate.remaining(t0), 2500);
        // Debt: nothing is let in until the refill paid it back.
        rate.settle(4000);
        let limited = rate.take(1, t0).unwrap_err();
        assert_eq!(limited.retry_after, Duration::from_secs_f64(1501.0 / 100.0));
        assert_eq!(rate.remaining(t0), 0, "never reported negative");
        // A request larger than the whole minute passes once the bucket is full.
        assert!(rate.take(10_000, t0 + Duration::from_secs(120)).is_ok());
    }
}
