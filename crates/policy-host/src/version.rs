//! One loaded version of one policy: a pre-linked component, its settings,
//! and a pool of warm, interchangeable instances. Every call runs under the
//! decision deadline and the memory limit; an instance that fails a call is
//! dropped, never reused.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::{Store, Trap};

use crate::PolicyError;
use crate::bindings::{self, Policy, PolicyPre};
use crate::call::CallContext;
use crate::clock::CallClock;
use crate::decision::{
    AttemptOutcome, BreakKind, NextStep, Recovery, RequestInfo, RouteDecision, StreamBreak, Topology,
};
use crate::pool::{Live, Pool};
use crate::state::{HostShared, PolicyState};

/// How long instantiation plus `init` may run.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(1);
/// The load-time sample decisions check what a policy answers, not how fast
/// (each request's decision has its own deadline): a first call into a fresh
/// Python or JavaScript instance on a busy machine can take more than 5 ms.
pub const CHECK_DEADLINE: Duration = Duration::from_millis(250);

/// Where a version came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyOrigin {
    /// Built from `plugins/` and embedded in the binary.
    Embedded,
    /// A file in the policy folder.
    File(std::path::PathBuf),
}

/// Fuel (wasm instructions, as wasmtime counts them) a policy's own work
/// burns per millisecond on the bench machine: a decision's default budget
/// is `decision_timeout` worth of it. Measured there: the chaos fixture's
/// tight loop burns 7–13 million a millisecond
/// (`cargo run --release -p switchyard-bench -- --fuel`), the Python and
/// JavaScript templates' decisions 5.5–6 million (`switchyard policy check`
/// prints a policy's fuel per decision).
pub const FUEL_PER_MS: u64 = 6_000_000;

/// The wall-clock backstop of a decision: this many times its nominal time
/// (`decision_timeout`) of the guest's own running time. Fuel stops a loop
/// first; the backstop is for what fuel does not count (a host call that
/// hangs) and cannot mistake a busy machine for a slow policy.
pub const WALL_BACKSTOP: u32 = 20;

/// Limits every call of every instance runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A decision's nominal time: its wall-clock backstop is
    /// [`WALL_BACKSTOP`] times this, and its default fuel this much work.
    pub decision_timeout: Duration,
    /// Fuel one decision may burn (its deterministic budget).
    pub decision_fuel: u64,
    /// Largest linear memory of one instance.
    pub memory_limit_bytes: usize,
}

impl Limits {
    /// `decision_timeout` worth of fuel per decision ([`FUEL_PER_MS`]).
    pub fn new(decision_timeout: Duration, memory_limit_bytes: usize) -> Limits {
        let decision_fuel = fuel_for(decision_timeout);
        Limits { decision_timeout, decision_fuel, memory_limit_bytes }
    }
}

/// The fuel `time` of a policy's own work burns on the bench machine.
pub fn fuel_for(time: Duration) -> u64 {
    (time.as_micros() as u64).saturating_mul(FUEL_PER_MS) / 1000
}

/// Fuel a version's finished decisions burned: count, sum, largest.
#[derive(Debug, Default)]
struct FuelUse {
    calls: std::sync::atomic::AtomicU64,
    sum: std::sync::atomic::AtomicU64,
    max: std::sync::atomic::AtomicU64,
}

impl FuelUse {
    fn record(&self, used: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.calls.fetch_add(1, Relaxed);
        self.sum.fetch_add(used, Relaxed);
        self.max.fetch_max(used, Relaxed);
    }
}

/// `init` and instantiation are bounded by wall time ([`INIT_TIMEOUT`]), not fuel.
const INIT_FUEL: u64 = u64::MAX / 4;

struct Instance {
    store: Store<PolicyState>,
    policy: Policy,
    clock: Arc<CallClock>,
}

/// An instance whose linear memory grew this much past where `init` left
/// it is dropped after its call rather than kept: the next call gets a
/// fresh one from the (shared, copy-on-write) memory image. A garbage-
/// collected guest (JavaScript's engine) grows its heap with use and never
/// gives memory back; this bounds what each warm instance holds
/// (`switchyard_policy_instances_retired_total` counts them). 2 MiB, not 8:
/// the JavaScript template under 10 s of `wrk` cost +40.2 / +41.3 MiB
/// instead of +46.6, for 6 retirements in ~70,000 decisions (~1.7 ms of
/// instantiation each); the Python template never grows that far
/// (`switchyard-bench --policy-memory`).
const RECYCLE_AFTER_GROWTH: usize = 2 << 20;

/// Runs `call`, telling `clock` each time it is polled, so time the call
/// spends yielded to the executor is not counted against its deadline.
/// The epoch ticker runs while the call does.
async fn timed<F: std::future::Future>(ticker: &crate::engine::Ticker, clock: &CallClock, call: F) -> F::Output {
    let _running = ticker.running();
    let mut call = std::pin::pin!(call);
    std::future::poll_fn(|cx| {
        clock.resume();
        call.as_mut().poll(cx)
    })
    .await
}

/// A validated, servable version of a policy.
pub struct PolicyVersion {
    name: String,
    label: Arc<str>,
    sha256: String,
    origin: PolicyOrigin,
    pre: PolicyPre<PolicyState>,
    settings: String,
    topology: Arc<Topology>,
    shared: Arc<HostShared>,
    kv: crate::shared_kv::PolicyStore,
    limits: Limits,
    ticker: Arc<crate::engine::Ticker>,
    /// Fuel its decisions burned.
    fuel: FuelUse,
    /// Warm instances, sized by demand (see `pool`).
    pool: Pool<Instance>,
    /// Instances dropped because their memory grew past [`RECYCLE_AFTER_GROWTH`].
    retired: std::sync::atomic::AtomicU64,
    /// Of those, how many the observer has been told of.
    retired_told: std::sync::atomic::AtomicU64,
    standing: crate::standing::Standing,
    loaded_at: std::time::SystemTime,
}

impl std::fmt::Debug for PolicyVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyVersion").field("label", &self.label).field("origin", &self.origin).finish()
    }
}

pub(crate) struct VersionParts {
    pub name: String,
    pub sha256: String,
    pub origin: PolicyOrigin,
    pub pre: PolicyPre<PolicyState>,
    pub settings: String,
    pub topology: Arc<Topology>,
    pub shared: Arc<HostShared>,
    pub limits: Limits,
    pub ticker: Arc<crate::engine::Ticker>,
}

impl PolicyVersion {
    pub(crate) fn new(p: VersionParts) -> Self {
        let label: Arc<str> = format!("{}@{}", p.name, &p.sha256[..12]).into();
        // One instance per thread that can run a call at once (a call that
        // yielded, past a tick, holds its instance; the next call waits for
        // one rather than paying ~10 MB for another).
        let max_live = std::thread::available_parallelism().map_or(4, |n| n.get());
        let kv = p.shared.store_of(&p.name);
        PolicyVersion {
            kv,
            name: p.name,
            label,
            sha256: p.sha256,
            origin: p.origin,
            pre: p.pre,
            settings: p.settings,
            topology: p.topology,
            shared: p.shared,
            limits: p.limits,
            ticker: p.ticker,
            fuel: FuelUse::default(),
            pool: Pool::new(max_live),
            retired: std::sync::atomic::AtomicU64::new(0),
            retired_told: std::sync::atomic::AtomicU64::new(0),
            standing: Default::default(),
            loaded_at: std::time::SystemTime::now(),
        }
    }

    /// A twin of this version with state of its own (a fresh health book
    /// and key-value store): what the conformance kit runs against, so its
    /// scripted outages and sample decisions touch nothing that serves.
    pub fn isolated(&self) -> PolicyVersion {
        let health = Arc::new(crate::HealthBook::new(self.topology.targets.len()));
        PolicyVersion::new(VersionParts {
            name: self.name.clone(),
            sha256: self.sha256.clone(),
            origin: self.origin.clone(),
            pre: self.pre.clone(),
            settings: self.settings.clone(),
            topology: self.topology.clone(),
            shared: Arc::new(HostShared::new(health, None)),
            limits: self.limits,
            ticker: self.ticker.clone(),
        })
    }

    /// How this version has served so far.
    pub fn standing(&self) -> &crate::standing::Standing {
        &self.standing
    }

    /// The health book this version's decisions read.
    pub fn health(&self) -> &Arc<crate::HealthBook> {
        &self.shared.health
    }

    /// The topology this version was given.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The policy's name (the file stem).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `name@` + the first 12 hex digits of the file's sha256.
    pub fn label(&self) -> &Arc<str> {
        &self.label
    }

    /// The full hex sha256 of the component.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Fuel per finished decision so far: (decisions, mean, largest); the
    /// budget each had is [`Limits::decision_fuel`].
    pub fn fuel_per_decision(&self) -> (u64, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let calls = self.fuel.calls.load(Relaxed);
        (calls, self.fuel.sum.load(Relaxed).checked_div(calls).unwrap_or(0), self.fuel.max.load(Relaxed))
    }

    /// The limits its calls run under.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// When this version was compiled and checked.
    pub fn loaded_at(&self) -> std::time::SystemTime {
        self.loaded_at
    }

    /// Embedded or a file.
    pub fn origin(&self) -> &PolicyOrigin {
        &self.origin
    }

    /// The names of the interfaces the component imports.
    pub fn imports(&self) -> Vec<String> {
        let component = self.pre.instance_pre().component();
        component.component_type().imports(self.pre.engine()).map(|(name, _)| name.to_owned()).collect()
    }

    /// Starts a call that may burn `fuel` and run for `timeout` of the
    /// guest's own time.
    fn arm(store: &mut Store<PolicyState>, timeout: Duration, fuel: u64) {
        store.data().clock.arm(timeout);
        store.set_epoch_deadline(1);
        // (Fails only when fuel is off, and it is always on.)
        let _ = store.set_fuel(fuel);
    }

    /// A decision: its fuel budget, and the wall-clock backstop. A check
    /// with its own `deadline` (the load-time sample decisions) gets that
    /// deadline's worth of fuel.
    fn arm_decision(&self, store: &mut Store<PolicyState>, deadline: Option<Duration>) {
        let (nominal, fuel) = match deadline {
            Some(d) => (d, fuel_for(d).max(self.limits.decision_fuel)),
            None => (self.limits.decision_timeout, self.limits.decision_fuel),
        };
        Self::arm(store, nominal.saturating_mul(WALL_BACKSTOP), fuel);
        store.data().clock.set_fuel_armed(fuel);
    }

    fn classify(&self, err: wasmtime::Error, state: &PolicyState) -> PolicyError {
        if state.limiter.hit_limit {
            return PolicyError::OutOfMemory((self.limits.memory_limit_bytes / (1024 * 1024)) as u64);
        }
        match err.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => PolicyError::BudgetExceeded(state.clock.fuel_armed()),
            Some(Trap::Interrupt) => {
                let ms = state.clock.timeout().as_millis() as u64;
                if state.clock.overran_by_itself() {
                    PolicyError::DeadlineExceeded(ms)
                } else {
                    PolicyError::Preempted(ms)
                }
            }
            Some(trap) => PolicyError::Trap(crate::guest_output::trap_account(&trap.to_string(), &err, &state.output)),
            None => PolicyError::Trap(crate::guest_output::trap_account(&format!("{err:#}"), &err, &state.output)),
        }
    }

    /// A fresh instance: instantiate from the pre-linked component, then `init`.
    async fn instantiate(&self) -> Result<Instance, PolicyError> {
        let state = PolicyState::new(
            self.shared.clone(),
            self.limits.memory_limit_bytes,
            self.label.clone(),
            self.kv.clone(),
            self.shared.logs.of(&self.name),
        );
        let clock = state.clock.clone();
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|s| &mut s.limiter);
        // Past the deadline the guest traps; before it, a long call yields to
        // the executor every tick instead of holding a worker thread. The
        // deadline counts the guest's running time (see `clock`).
        store.epoch_deadline_callback(move |ctx| Ok(ctx.data().clock.tick()));
        // Instantiation and `init` may build tables from the settings and the
        // topology: they get a start-up allowance, not the decision deadline.
        Self::arm(&mut store, INIT_TIMEOUT.max(self.limits.decision_timeout), INIT_FUEL);
        let policy = match timed(&self.ticker, &clock, self.pre.instantiate_async(&mut store)).await {
            Ok(p) => p,
            Err(e) => return Err(PolicyError::Instantiate(self.classify(e, store.data()).to_string())),
        };
        Self::arm(&mut store, INIT_TIMEOUT.max(self.limits.decision_timeout), INIT_FUEL);
        let topology = bindings::topology(&self.topology);
        match timed(&self.ticker, &clock, policy.call_init(&mut store, &self.settings, &topology)).await {
            Ok(Ok(())) => {
                clock.set_fuel_armed(0);
                // Growth is counted from here: what `init` built is the instance's own.
                store.data_mut().limiter.grown = 0;
                Ok(Instance { store, policy, clock })
            }
            Ok(Err(refusal)) => Err(PolicyError::ConfigRejected(refusal)),
            Err(e) => Err(self.classify(e, store.data())),
        }
    }

    async fn take(&self) -> Result<Live<Instance>, PolicyError> {
        self.pool.take(|| self.instantiate()).await
    }

    fn give_back(&self, mut instance: Live<Instance>) {
        instance.store.data_mut().call = None;
        // A trap tells only what its own call (or `init`) wrote.
        instance.store.data().output.clear();
        let armed = instance.clock.fuel_armed();
        if armed > 0 {
            let used = armed.saturating_sub(instance.store.get_fuel().unwrap_or(armed));
            self.fuel.record(used);
            instance.clock.set_fuel_armed(0);
        }
        let grown = instance.store.data().limiter.grown;
        if grown > RECYCLE_AFTER_GROWTH {
            tracing::debug!(policy = %self.label, grown_mib = grown >> 20, "instance retired: its memory grew");
            self.retired.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return drop(instance);
        }
        self.pool.give_back(instance);
    }

    /// Asks the policy where `request` should go.
    pub async fn route(&self, request: &RequestInfo, call: Arc<CallContext>) -> Result<RouteDecision, PolicyError> {
        self.route_within(request, call, None).await
    }

    /// [`Self::route`] under `deadline` instead of the decision deadline: for
    /// checks of what a policy answers, where a busy machine must not turn a
    /// slow first call into a rejection (a loop is still interrupted).
    pub async fn route_within(
        &self,
        request: &RequestInfo,
        call: Arc<CallContext>,
        deadline: Option<Duration>,
    ) -> Result<RouteDecision, PolicyError> {
        let mut inst = self.take().await?;
        inst.store.data_mut().call = Some(call);
        self.arm_decision(&mut inst.store, deadline);
        let clock = inst.clock.clone();
        let Instance { store, policy, .. } = &mut *inst;
        match timed(&self.ticker, &clock, policy.call_route(store, &bindings::request(request))).await {
            Ok(decision) => {
                self.give_back(inst);
                let decision = bindings::route_decision(decision);
                self.topology.check_route_decision(request, &decision)?;
                Ok(decision)
            }
            Err(e) => Err(self.classify(e, inst.store.data())),
        }
    }

    /// Asks the policy what to do after an attempt ended.
    pub async fn on_attempt(
        &self,
        request: &RequestInfo,
        outcome: &AttemptOutcome,
        call: Arc<CallContext>,
    ) -> Result<NextStep, PolicyError> {
        self.on_attempt_within(request, outcome, call, None).await
    }

    /// [`Self::on_attempt`] under `deadline` (see [`Self::route_within`]).
    pub async fn on_attempt_within(
        &self,
        request: &RequestInfo,
        outcome: &AttemptOutcome,
        call: Arc<CallContext>,
        deadline: Option<Duration>,
    ) -> Result<NextStep, PolicyError> {
        let mut inst = self.take().await?;
        inst.store.data_mut().call = Some(call);
        self.arm_decision(&mut inst.store, deadline);
        let clock = inst.clock.clone();
        let outcome = bindings::outcome(outcome);
        let wit_request = bindings::request(request);
        let Instance { store, policy, .. } = &mut *inst;
        let call = policy.call_on_attempt(store, &wit_request, &outcome);
        let result = timed(&self.ticker, &clock, call).await;
        match result {
            Ok(step) => {
                self.give_back(inst);
                let step = bindings::next_step(step);
                self.topology.check_next_step(request, &step)?;
                Ok(step)
            }
            Err(e) => Err(self.classify(e, inst.store.data())),
        }
    }

    /// Asks the policy how to recover a stream that broke after reaching the client.
    pub async fn on_stream_break(
        &self,
        request: &RequestInfo,
        broken: &StreamBreak,
        call: Arc<CallContext>,
    ) -> Result<Recovery, PolicyError> {
        self.on_stream_break_within(request, broken, call, None).await
    }

    /// [`Self::on_stream_break`] under `deadline` (see [`Self::route_within`]).
    pub async fn on_stream_break_within(
        &self,
        request: &RequestInfo,
        broken: &StreamBreak,
        call: Arc<CallContext>,
        deadline: Option<Duration>,
    ) -> Result<Recovery, PolicyError> {
        let mut inst = self.take().await?;
        inst.store.data_mut().call = Some(call);
        self.arm_decision(&mut inst.store, deadline);
        let clock = inst.clock.clone();
        let broken = bindings::stream_break(broken);
        let wit_request = bindings::request(request);
        let Instance { store, policy, .. } = &mut *inst;
        let call = policy.call_on_stream_break(store, &wit_request, &broken);
        match timed(&self.ticker, &clock, call).await {
            Ok(recovery) => {
                self.give_back(inst);
                let recovery = bindings::recovery(recovery);
                self.topology.check_recovery(&recovery)?;
                Ok(recovery)
            }
            Err(e) => Err(self.classify(e, inst.store.data())),
        }
    }

    /// Instantiates and `init`s a fresh instance into the pool; returns how long it took.
    pub async fn warm_instance(&self) -> Result<Duration, PolicyError> {
        let started = Instant::now();
        let instance = self.pool.fresh(|| self.instantiate()).await?;
        let took = started.elapsed();
        self.give_back(instance);
        Ok(took)
    }

    /// Instances of this version alive now (in use or idle).
    pub fn instances(&self) -> usize {
        self.pool.live()
    }

    /// Instances dropped after a call because their memory had grown more
    /// than 2 MiB (a fresh one serves the next call).
    pub fn instances_retired(&self) -> u64 {
        self.retired.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Retirements not yet told (each is returned once, however many callers ask).
    pub(crate) fn retirements_to_tell(&self) -> u64 {
        let retired = self.retired.load(std::sync::atomic::Ordering::Relaxed);
        let told = self.retired_told.fetch_max(retired, std::sync::atomic::Ordering::Relaxed);
        retired.saturating_sub(told)
    }

    /// Largest linear memory any pooled instance has asked for, bytes.
    pub fn memory_high_water(&self) -> usize {
        self.pool.each_idle(|idle| idle.map(|i| i.store.data().limiter.high_water).max().unwrap_or(0))
    }

    /// Load-time self-check: a fresh instance, `init`, then a `route`, an
    /// `on-attempt` and an `on-stream-break` for every route of the topology, all under the deadline.
    pub(crate) async fn self_check(&self) -> Result<(), PolicyError> {
        let instance = self.pool.fresh(|| self.instantiate()).await?;
        self.give_back(instance);
        // The sample decisions run on a twin with state of its own: a
        // counter or a health record the policy keeps is where it was, and
        // the first real request sees it untouched.
        let twin = self.isolated();
        let call = Arc::new(CallContext::default());
        for (index, route) in self.topology.routes.iter().enumerate() {
            let request = RequestInfo {
                api: crate::Api::OpenaiChat,
                route: index as u32,
                streaming: false,
                estimated_input_tokens: 100,
                deadline_ms: 30_000,
                // A tenant with limits, so code that reads the caller runs too.
                caller: crate::Caller {
                    tenant: Some("switchyard-self-check".into()),
                    priority: crate::Priority::Low,
                    requests_left: Some(9),
                    tokens_left: Some(4_000),
                },
            };
            twin.route_within(&request, call.clone(), Some(CHECK_DEADLINE)).await?;
            let first = route.targets.first().copied().unwrap_or(0);
            let outcome = AttemptOutcome {
                target: first,
                attempt: 1,
                tried: vec![first],
                kind: crate::OutcomeKind::Overloaded,
                http_status: Some(503),
                retry_after_ms: None,
                elapsed_ms: 10,
            };
            twin.on_attempt_within(&request, &outcome, call.clone(), Some(CHECK_DEADLINE)).await?;
            let broken = StreamBreak {
                target: first,
                kind: BreakKind::Cut,
                delivered_chars: 160,
                delivered_tokens: 40,
                in_tool_call: false,
                elapsed_ms: 2_000,
                recoveries: 0,
                tried: vec![first],
                failed_recovery: None,
            };
            let streaming = RequestInfo { streaming: true, ..request.clone() };
            twin.on_stream_break_within(&streaming, &broken, call.clone(), Some(CHECK_DEADLINE)).await?;
        }
        Ok(())
    }
}
