//! Per-key request rates (`[[keys]] requests_per_minute`): a token bucket
//! per key holding a minute's worth of requests, refilled continuously —
//! a key may burst to its limit, then gets one request per `60 s / limit`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One key's bucket.
#[derive(Debug)]
pub struct RequestRate {
    per_minute: u32,
    bucket: Mutex<(f64, Instant)>,
}

/// A request over the key's rate: when one more would be let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// The key's limit per minute.
    pub per_minute: u32,
    /// Until the next request is let in.
    pub retry_after: Duration,
    /// Until the bucket is full again.
    pub reset: Duration,
}

/// A request let in: what is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    /// The key's limit per minute.
    pub per_minute: u32,
    /// Requests the key may still send right now.
    pub remaining: u32,
}

impl RequestRate {
    /// A full bucket of `per_minute` (at least 1).
    pub fn new(per_minute: u32) -> Self {
        let per_minute = per_minute.max(1);
        RequestRate { per_minute, bucket: Mutex::new((f64::from(per_minute), Instant::now())) }
    }

    /// Takes one request from the bucket at `now`, or says when one will be there.
    pub fn take(&self, now: Instant) -> Result<Admitted, Limited> {
        let per_second = f64::from(self.per_minute) / 60.0;
        let full = f64::from(self.per_minute);
        let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        // A clock that went backwards refills nothing (never a negative count).
        let elapsed = now.saturating_duration_since(bucket.1).as_secs_f64();
        bucket.0 = (bucket.0 + elapsed * per_second).min(full);
        bucket.1 = now.max(bucket.1);
        if bucket.0 >= 1.0 {
            bucket.0 -= 1.0;
            return Ok(Admitted { per_minute: self.per_minute, remaining: bucket.0.floor() as u32 });
        }
        let wait = |tokens: f64| Duration::from_secs_f64((tokens / per_second).max(0.0));
        Err(Limited { per_minute: self.per_minute, retry_after: wait(1.0 - bucket.0), reset: wait(full - bucket.0) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_bursts_to_its_limit_then_gets_one_request_per_share_of_a_minute() {
        let rate = RequestRate::new(30);
        let t0 = Instant::now();
        for left in (0..30).rev() {
            assert_eq!(rate.take(t0).unwrap().remaining, left);
        }
        let limited = rate.take(t0).unwrap_err();
        assert_eq!(limited.retry_after, Duration::from_secs(2), "60 s / 30");
        assert_eq!(limited.reset, Duration::from_secs(60));
        assert!(rate.take(t0 + Duration::from_millis(1999)).is_err());
        assert!(rate.take(t0 + Duration::from_secs(2)).is_ok());
        assert!(rate.take(t0 + Duration::from_secs(2)).is_err());
        // An earlier instant (a clock read out of order) refills nothing.
        assert!(rate.take(t0).is_err());
        // A long pause refills to the limit, no more.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(rate.take(later).unwrap().remaining, 29);
    }
}
