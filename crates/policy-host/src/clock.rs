//! The clock a policy call's deadline is measured on: the time the guest
//! itself ran, not the time it spent waiting to be polled again after it
//! yielded, and a way to tell a policy that ran too long from a machine too
//! busy to run it.
//!
//! Every epoch tick the guest is running, wasmtime calls back; the callback
//! adds the time since the call was last resumed (polled) and either
//! interrupts the guest (its running time reached the deadline) or yields to
//! the executor. A call that was merely preempted by the OS (a saturated
//! machine) shows up as one callback carrying a long stretch of time; a
//! policy that really loops is seen running on every tick. Only the second
//! is the policy's fault ([`CallClock::overran_by_itself`]).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wasmtime::UpdateDeadline;

use crate::engine::TICK;

/// However the guest's own time is counted, a call is stopped once this many
/// deadlines of wall time have passed (a starved executor, a stopped clock).
const WALL_BACKSTOP_FACTOR: u32 = 20;

#[derive(Debug, Clone, Copy)]
struct Run {
    started: Instant,
    /// When the call was last polled (or last counted).
    resumed: Instant,
    /// Time the guest ran so far.
    ran: Duration,
    /// Epoch callbacks seen while it ran.
    ticks: u32,
    timeout: Duration,
}

/// One instance's call clock; the instance runs one call at a time.
#[derive(Debug)]
pub(crate) struct CallClock {
    run: Mutex<Run>,
    /// The call yielded at a tick: its next poll restarts the count. (A
    /// decision that never reaches a tick — nearly all — pays one load per
    /// poll, no clock read.)
    yielded: AtomicBool,
    /// The fuel the current decision started with (0: not a decision).
    fuel_armed: std::sync::atomic::AtomicU64,
    /// Never yield mid-call (a simulation: the order tasks run in, and so
    /// the run, must not depend on how the OS scheduled this thread).
    steady: bool,
}

impl Default for CallClock {
    fn default() -> Self {
        let now = Instant::now();
        CallClock {
            run: Mutex::new(Run { started: now, resumed: now, ran: Duration::ZERO, ticks: 0, timeout: Duration::ZERO }),
            yielded: AtomicBool::new(false),
            fuel_armed: Default::default(),
            steady: false,
        }
    }
}

impl CallClock {
    /// A clock whose calls run to their end or their deadline without
    /// yielding to the executor (see `steady`).
    pub fn steady() -> Self {
        CallClock { steady: true, ..CallClock::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Run> {
        self.run.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a call that may run for `timeout`.
    pub fn arm(&self, timeout: Duration) {
        let now = Instant::now();
        *self.lock() = Run { started: now, resumed: now, ran: Duration::ZERO, ticks: 0, timeout };
        self.yielded.store(false, Ordering::Relaxed);
    }

    /// The current decision started with `fuel` (0: what runs is not a decision).
    pub fn set_fuel_armed(&self, fuel: u64) {
        self.fuel_armed.store(fuel, Ordering::Relaxed);
    }

    /// The fuel the current decision started with.
    pub fn fuel_armed(&self) -> u64 {
        self.fuel_armed.load(Ordering::Relaxed)
    }

    /// The guest is about to wait for the host (a shared store): the time
    /// until its next poll is not its own.
    pub fn waiting(&self) {
        self.yielded.store(true, Ordering::Relaxed);
    }

    /// The call is polled (again): after a yield, time runs from now.
    pub fn resume(&self) {
        if self.yielded.load(Ordering::Relaxed) {
            self.yielded.store(false, Ordering::Relaxed);
            self.lock().resumed = Instant::now();
        }
    }

    /// The epoch callback: count the stretch since the last resume, then
    /// interrupt, yield, or (a stretch shorter than a tick: a short call
    /// the tick happened to land in) go on without yielding, so a short
    /// call never gives up its thread and another request does not need a
    /// second instance meanwhile.
    pub fn tick(&self) -> UpdateDeadline {
        let now = Instant::now();
        let mut guard = self.lock();
        let run = &mut *guard;
        let stretch = now.saturating_duration_since(run.resumed);
        run.ran += stretch;
        run.resumed = now;
        run.ticks += 1;
        let wall = now.saturating_duration_since(run.started);
        let verdict = match verdict(run.ran, wall, run.timeout) {
            UpdateDeadline::Yield(n) if self.steady => UpdateDeadline::Continue(n),
            other => other,
        };
        if matches!(verdict, UpdateDeadline::Yield(_)) {
            self.yielded.store(true, Ordering::Relaxed);
        }
        verdict
    }

    /// The deadline of the current call.
    pub fn timeout(&self) -> Duration {
        self.lock().timeout
    }

    /// After an interrupt: was the guest seen running through its whole run
    /// (a callback at least every two ticks), so the overrun is its own? A
    /// long stretch between callbacks is the OS or the executor not running
    /// it: the machine, not the policy.
    pub fn overran_by_itself(&self) -> bool {
        let run = self.lock();
        own_overrun(run.ran, run.ticks, run.timeout)
    }
}

/// A run of `ran` over `ticks` callbacks reached `timeout` by itself when it
/// was seen running on more than one tick, at least every 8 ticks on
/// average. A short decision the OS preempted shows up as a single
/// callback; a policy that loops is seen again and again, even on a loaded
/// machine whose ticker thread runs late.
fn own_overrun(ran: Duration, ticks: u32, timeout: Duration) -> bool {
    ran >= timeout && ticks >= 2 && ran <= (TICK * 8).saturating_mul(ticks)
}

/// What a tick means for a call that has run `ran` of its own time and
/// `wall` in all, under `timeout`.
fn verdict(ran: Duration, wall: Duration, timeout: Duration) -> UpdateDeadline {
    if ran >= timeout || wall >= timeout.saturating_mul(WALL_BACKSTOP_FACTOR) {
        UpdateDeadline::Interrupt
    } else if ran < TICK {
        UpdateDeadline::Continue(1)
    } else {
        UpdateDeadline::Yield(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_seen_every_tick_overran_by_itself_and_one_seen_once_did_not() {
        let ms = Duration::from_millis;
        assert!(own_overrun(ms(5), 5, ms(5)), "a loop, seen on every tick");
        assert!(own_overrun(ms(9), 2, ms(5)), "a loop on a loaded machine, its ticker late");
        assert!(!own_overrun(ms(8), 1, ms(5)), "one long stretch: preempted");
        assert!(!own_overrun(ms(40), 2, ms(5)), "two long stretches: preempted twice");
        assert!(!own_overrun(ms(4), 4, ms(5)), "under its deadline");
    }

    #[test]
    fn one_long_stretch_is_the_machine_not_the_policy() {
        let clock = CallClock::default();
        clock.arm(Duration::from_millis(5));
        std::thread::sleep(Duration::from_millis(8));
        assert!(matches!(clock.tick(), UpdateDeadline::Interrupt));
        assert!(!clock.overran_by_itself());
    }

    #[test]
    fn time_spent_yielded_to_the_executor_does_not_count() {
        let clock = CallClock::default();
        clock.arm(Duration::from_millis(50));
        for _ in 0..3 {
            std::thread::sleep(Duration::from_micros(1_200));
            assert!(matches!(clock.tick(), UpdateDeadline::Yield(1)));
            // Parked by the executor for 30 ms, then polled again: 90 ms
            // of wall time, well under 50 ms of running.
            std::thread::sleep(Duration::from_millis(30));
            clock.resume();
        }
    }

    #[test]
    fn a_call_shorter_than_a_tick_goes_on_without_yielding() {
        let (timeout, us) = (Duration::from_millis(5), Duration::from_micros);
        assert!(matches!(verdict(us(200), us(200), timeout), UpdateDeadline::Continue(1)), "a tick in a short call");
        assert!(
            matches!(verdict(us(1_000), us(9_000), timeout), UpdateDeadline::Yield(1)),
            "a tick of running: yields"
        );
        assert!(matches!(verdict(us(5_000), us(5_000), timeout), UpdateDeadline::Interrupt), "its own deadline");
        assert!(matches!(verdict(us(200), us(100_000), timeout), UpdateDeadline::Interrupt), "the wall backstop");
    }
}
