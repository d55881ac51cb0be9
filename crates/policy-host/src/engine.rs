//! The one wasmtime `Engine` of a policy host, its linker, and the epoch
//! ticker that bounds every decision's wall time. The ticker runs while
//! policy calls do, and for [`STAY_AWAKE`] after the last one; then its
//! thread parks, so an idle gateway's ticker costs nothing, and only a call
//! that finds it parked wakes it ([`Ticker::running`]): a busy gateway does
//! not pay a thread wake-up per decision.
//!
//! Every call is first bounded by fuel (a count of the guest's own wasm
//! instructions: the same work is cut at the same point on an idle or a
//! saturated machine); the wall clock is the backstop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine};

use crate::PolicyError;
use crate::bindings;
use crate::state::PolicyState;

/// One epoch tick; decision deadlines are checked at this granularity.
pub(crate) const TICK: Duration = Duration::from_millis(1);

/// Ticks without a call before the ticker parks.
const STAY_AWAKE: u64 = 1_000;

/// Engine + linker + ticker. Dropping it stops the ticker thread.
pub(crate) struct PolicyEngine {
    pub engine: Engine,
    pub linker: Linker<PolicyState>,
    pub ticker: Arc<Ticker>,
}

/// The epoch ticker's switch: it ticks while calls run or ran lately.
#[derive(Debug, Default)]
pub(crate) struct Ticker {
    /// Calls in progress.
    running: AtomicUsize,
    /// Calls ever started: the ticker sees whether any came since its last look.
    started: AtomicUsize,
    /// The ticker thread is parked (or about to be) and a call must wake it.
    asleep: AtomicBool,
    stop: AtomicBool,
    thread: std::sync::OnceLock<std::thread::Thread>,
}

/// A call in progress: the ticker runs until the last one ends.
pub(crate) struct Running<'a>(&'a Ticker);

impl Ticker {
    /// Marks a call running, waking the ticker only if it is asleep.
    pub fn running(&self) -> Running<'_> {
        self.running.fetch_add(1, Ordering::SeqCst);
        self.started.fetch_add(1, Ordering::Relaxed);
        if self.asleep.load(Ordering::SeqCst)
            && self.asleep.swap(false, Ordering::SeqCst)
            && let Some(thread) = self.thread.get()
        {
            thread.unpark();
        }
        Running(self)
    }

    /// The ticker thread's loop: tick while calls run or ran within
    /// [`STAY_AWAKE`] ticks, else park until a call wakes it.
    fn run(&self, engine: &Engine) {
        let (mut seen, mut quiet) = (self.started.load(Ordering::Relaxed), 0u64);
        while !self.stop.load(Ordering::Relaxed) {
            let started = self.started.load(Ordering::Relaxed);
            if started != seen || self.running.load(Ordering::SeqCst) > 0 {
                (seen, quiet) = (started, 0);
            } else {
                quiet += 1;
            }
            if quiet >= STAY_AWAKE {
                self.asleep.store(true, Ordering::SeqCst);
                // A call that started before `asleep` was set saw it clear
                // and will not wake us: look again before sleeping.
                if self.running.load(Ordering::SeqCst) == 0 {
                    // Idle: sleep until a call starts, or the engine is
                    // dropped (either unparks; an unpark that came first
                    // makes this return at once).
                    std::thread::park();
                }
                self.asleep.store(false, Ordering::SeqCst);
                (seen, quiet) = (self.started.load(Ordering::Relaxed), 0);
                continue;
            }
            std::thread::sleep(TICK);
            engine.increment_epoch();
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
    }
}

impl PolicyEngine {
    pub fn new() -> Result<Self, PolicyError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.consume_fuel(true);
        config.wasm_component_model(true);
        // Deep recursion in a guest traps instead of exhausting the host's stack.
        config.max_wasm_stack(512 * 1024);
        let engine = Engine::new(&config).map_err(|e| PolicyError::Instantiate(format!("engine: {e}")))?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .and_then(|()| bindings::add_to_linker(&mut linker))
            .map_err(|e| PolicyError::Instantiate(format!("linker: {e}")))?;

        let ticker = Arc::new(Ticker::default());
        let (ticking, switch) = (engine.clone(), ticker.clone());
        let thread = std::thread::Builder::new()
            .name("policy-epoch".into())
            .spawn(move || switch.run(&ticking))
            .map_err(|e| PolicyError::Instantiate(format!("epoch ticker: {e}")))?;
        let _ = ticker.thread.set(thread.thread().clone());
        Ok(PolicyEngine { engine, linker, ticker })
    }
}

impl Drop for PolicyEngine {
    fn drop(&mut self) {
        self.ticker.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.ticker.thread.get() {
            thread.unpark();
        }
    }
}
