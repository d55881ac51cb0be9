//! The last hour of each target, minute by minute (attempts, failures,
//! latency of the successful ones): what the status page draws. Kept by
//! target name, so a config reload keeps an unchanged target's hour.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Minutes kept.
pub const MINUTES: usize = 60;

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Minute {
    /// Minutes since the Unix epoch (0: nothing recorded in this slot).
    pub minute: u64,
    pub attempts: u32,
    pub failures: u32,
    /// Sum of the successful attempts' latency, ms.
    pub latency_ms_sum: u64,
}

/// One target's hour.
pub struct TargetHistory {
    slots: Mutex<[Minute; MINUTES]>,
}

impl Default for TargetHistory {
    fn default() -> Self {
        TargetHistory { slots: Mutex::new([Minute::default(); MINUTES]) }
    }
}

fn minute_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() / 60
}

impl TargetHistory {
    pub fn record(&self, ok: bool, took: Duration) {
        let now = minute_now();
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let slot = &mut slots[(now % MINUTES as u64) as usize];
        if slot.minute != now {
            *slot = Minute { minute: now, ..Minute::default() };
        }
        slot.attempts += 1;
        if ok {
            slot.latency_ms_sum += took.as_millis() as u64;
        } else {
            slot.failures += 1;
        }
    }

    /// The last hour, oldest minute first; minutes without attempts are zero.
    pub fn hour(&self) -> Vec<Minute> {
        let now = minute_now();
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        (0..MINUTES as u64)
            .rev()
            .map(|ago| {
                let minute = now.saturating_sub(ago);
                let slot = slots[(minute % MINUTES as u64) as usize];
                if slot.minute == minute { slot } else { Minute { minute, ..Minute::default() } }
            })
            .collect()
    }
}

/// Every target's hour, by target name.
#[derive(Default)]
pub struct History {
    targets: Mutex<HashMap<String, Arc<TargetHistory>>>,
}

impl History {
    /// The hour of target `name` (made on first use).
    pub fn of(&self, name: &str) -> Arc<TargetHistory> {
        self.targets.lock().unwrap_or_else(|p| p.into_inner()).entry(name.to_owned()).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_minute_counts_attempts_failures_and_latency() {
        let history = TargetHistory::default();
        history.record(true, Duration::from_millis(30));
        history.record(true, Duration::from_millis(50));
        history.record(false, Duration::from_millis(900));
        let hour = history.hour();
        assert_eq!(hour.len(), MINUTES);
        let now = hour[MINUTES - 1];
        assert_eq!((now.attempts, now.failures, now.latency_ms_sum), (3, 1, 80));
        assert!(hour[..MINUTES - 1].iter().all(|m| m.attempts == 0));
        assert_eq!(hour[0].minute + MINUTES as u64 - 1, now.minute);
    }
}
