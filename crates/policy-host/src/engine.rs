//! The one wasmtime `Engine` of a policy host, its linker, and the epoch
//! ticker that bounds every decision's wall time. The ticker only runs while
//! a policy call does: an idle gateway's ticker thread sleeps, parked, until
//! the next call starts ([`Ticker::running`]).
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

/// Engine + linker + ticker. Dropping it stops the ticker thread.
pub(crate) struct PolicyEngine {
    pub engine: Engine,
    pub linker: Linker<PolicyState>,
    pub ticker: Arc<Ticker>,
}

/// The epoch ticker's switch: it ticks while at least one call runs.
#[derive(Debug)]
pub(crate) struct Ticker {
    running: AtomicUsize,
    stop: AtomicBool,
    thread: std::sync::OnceLock<std::thread::Thread>,
}

/// A call in progress: the ticker runs until the last one ends.
pub(crate) struct Running<'a>(&'a Ticker);

impl Ticker {
    /// Marks a call running (waking the ticker if it slept).
    pub fn running(&self) -> Running<'_> {
        if self.running.fetch_add(1, Ordering::AcqRel) == 0
            && let Some(thread) = self.thread.get()
        {
            thread.unpark();
        }
        Running(self)
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

        let ticker =
            Arc::new(Ticker { running: AtomicUsize::new(0), stop: AtomicBool::new(false), thread: Default::default() });
        let (ticking, switch) = (engine.clone(), ticker.clone());
        let thread = std::thread::Builder::new()
            .name("policy-epoch".into())
            .spawn(move || {
                while !switch.stop.load(Ordering::Relaxed) {
                    if switch.running.load(Ordering::Acquire) == 0 {
                        // Idle: sleep until a call starts, or the engine is
                        // dropped (either unparks; an unpark that came first
                        // makes this return at once).
                        std::thread::park();
                        continue;
                    }
                    std::thread::sleep(TICK);
                    ticking.increment_epoch();
                }
            })
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
