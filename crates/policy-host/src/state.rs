//! What a policy's `Store` holds: an empty WASI context, the memory limiter,
//! and the gateway state its host imports read.

use std::sync::Arc;

use rand::SeedableRng;

use crate::clock::CallClock;
use rand::rngs::SmallRng;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::HealthBook;
use crate::call::CallContext;

/// One `T` per policy name, made on first use and shared by all the
/// policy's instances and versions (its key-value state, its log allowance).
pub(crate) struct ByPolicy<T> {
    items: std::sync::Mutex<std::collections::HashMap<String, Arc<T>>>,
}

impl<T> Default for ByPolicy<T> {
    fn default() -> Self {
        ByPolicy { items: Default::default() }
    }
}

impl<T: Default> ByPolicy<T> {
    /// The `T` of policy `name`.
    pub fn of(&self, name: &str) -> Arc<T> {
        let mut items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        items.entry(name.to_owned()).or_default().clone()
    }
}

/// Shared by every store of one policy host.
pub(crate) struct HostShared {
    pub health: Arc<HealthBook>,
    /// Every policy's key-value state, by policy name.
    pub kv: ByPolicy<crate::kv::PolicyKv>,
    /// Every policy's log allowance, by policy name.
    pub logs: ByPolicy<crate::log_limit::LogLimit>,
    pub started: tokio::time::Instant,
    /// The state store gateways share, when there is one (set once, before
    /// any policy loads).
    pub shared_kv: std::sync::OnceLock<Arc<dyn crate::shared_kv::SharedKv>>,
    /// Seeds each new instance's `random` (a simulation's seed); `None`:
    /// every instance draws from the OS.
    pub seed: Option<u64>,
    /// Instances made so far, per policy version (`name@sha`): with the
    /// seed, what an instance's generator starts from, whatever order
    /// policies loading side by side make theirs in.
    pub instances_made: ByPolicy<std::sync::atomic::AtomicU64>,
}

impl HostShared {
    pub fn new(health: Arc<HealthBook>, seed: Option<u64>) -> Self {
        HostShared {
            health,
            kv: Default::default(),
            logs: Default::default(),
            started: tokio::time::Instant::now(),
            shared_kv: Default::default(),
            seed,
            instances_made: Default::default(),
        }
    }

    /// The generator of a new instance of `version`'s `random`: from the
    /// seed, the version and how many instances it made before, when there
    /// is a seed.
    fn rng(&self, version: &str) -> SmallRng {
        let Some(seed) = self.seed else { return SmallRng::from_rng(&mut rand::rng()) };
        let nth = self.instances_made.of(version).fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // FNV-1a of the version, then the seed and the ordinal folded in.
        let name =
            version.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        SmallRng::seed_from_u64(seed ^ name.rotate_left(17) ^ nth.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    /// Policy `name`'s state as its imports see it.
    pub fn store_of(&self, name: &str) -> crate::shared_kv::PolicyStore {
        crate::shared_kv::PolicyStore {
            local: self.kv.of(name),
            shared: self.shared_kv.get().cloned(),
            name: name.into(),
        }
    }
}

/// Refuses memory growth past the limit, and remembers that it did, so the
/// resulting trap can be reported as out-of-memory.
pub(crate) struct MemoryLimiter {
    pub limit_bytes: usize,
    pub hit_limit: bool,
    /// Largest linear memory the instance asked for, bytes.
    pub high_water: usize,
    /// How far its memories grew after they were made (since `init`
    /// returned, once it has), bytes.
    pub grown: usize,
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.high_water = self.high_water.max(desired);
        if current > 0 {
            self.grown += desired.saturating_sub(current);
        }
        if desired > self.limit_bytes {
            self.hit_limit = true;
            return Err(wasmtime::format_err!("memory limit of {} bytes reached", self.limit_bytes));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// The data of one policy instance's `Store`.
pub(crate) struct PolicyState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limiter: MemoryLimiter,
    pub shared: Arc<HostShared>,
    /// The request being decided, while a call runs.
    pub call: Option<Arc<CallContext>>,
    pub rng: SmallRng,
    pub policy_label: Arc<str>,
    /// The policy's key-value state (shared by its instances and versions,
    /// and by the gateways sharing state).
    pub kv: crate::shared_kv::PolicyStore,
    /// The policy's log allowance (shared by its instances and versions).
    pub log_limit: Arc<crate::log_limit::LogLimit>,
    /// How long the current call has run, and may run.
    pub clock: Arc<crate::clock::CallClock>,
    /// The latest of what the guest wrote to stdout and stderr, told with a trap.
    pub output: crate::guest_output::GuestOutput,
}

impl PolicyState {
    pub fn new(
        shared: Arc<HostShared>,
        limit_bytes: usize,
        policy_label: Arc<str>,
        kv: crate::shared_kv::PolicyStore,
        log_limit: Arc<crate::log_limit::LogLimit>,
    ) -> Self {
        // No preopened directories, no environment, no arguments, no network
        // (sockets and name lookup denied), no stdin: a policy reaches
        // nothing outside the gateway. Its stdout and stderr are kept (the
        // latest 8 KiB) only to be told when a call traps.
        let rng = shared.rng(&policy_label);
        // A seeded (simulated) host never lets a call yield mid-way.
        let clock = Arc::new(if shared.seed.is_some() { CallClock::steady() } else { CallClock::default() });
        let output = crate::guest_output::GuestOutput::default();
        let wasi = WasiCtx::builder()
            .allow_ip_name_lookup(false)
            .allow_tcp(false)
            .allow_udp(false)
            .stdout(output.clone())
            .stderr(output.clone())
            .build();
        PolicyState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter { limit_bytes, hit_limit: false, high_water: 0, grown: 0 },
            shared,
            call: None,
            rng,
            policy_label,
            kv,
            log_limit,
            clock,
            output,
        }
    }
}

impl WasiView for PolicyState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}
