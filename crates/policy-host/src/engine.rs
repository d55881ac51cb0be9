//! The one wasmtime `Engine` of a policy host, its linker, and the epoch
//! ticker that bounds every decision in time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
    stop: Arc<AtomicBool>,
}

impl PolicyEngine {
    pub fn new() -> Result<Self, PolicyError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        // Deep recursion in a guest traps instead of exhausting the host's stack.
        config.max_wasm_stack(512 * 1024);
        let engine = Engine::new(&config).map_err(|e| PolicyError::Instantiate(format!("engine: {e}")))?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .and_then(|()| bindings::add_to_linker(&mut linker))
            .map_err(|e| PolicyError::Instantiate(format!("linker: {e}")))?;

        let stop = Arc::new(AtomicBool::new(false));
        let (ticking, flag) = (engine.clone(), stop.clone());
        std::thread::Builder::new()
            .name("policy-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    ticking.increment_epoch();
                }
            })
            .map_err(|e| PolicyError::Instantiate(format!("epoch ticker: {e}")))?;
        Ok(PolicyEngine { engine, linker, stop })
    }
}

impl Drop for PolicyEngine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
