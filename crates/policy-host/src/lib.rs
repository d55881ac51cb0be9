//! The policy host: runs policy components (the `switchyard:policy` world in
//! `wit/`) under hard limits, and swaps new versions in while the gateway runs.
//!
//! Every routing, retry and degradation decision goes through
//! [`PinnedPolicy::route`] and [`PinnedPolicy::on_attempt`]. A decision that
//! traps, runs past its deadline, grows memory past its limit or answers
//! nonsense never fails the request: the last good version answers, or the
//! built-in [`native`] policy when there is none.
//!
//! # Layout
//! - [`decision`]: the decisions as plain Rust types, and their checks.
//! - `bindings`: the one `bindgen!` site and the host side of the imports.
//! - `engine`: engine, linker (WASI with an empty context), epoch ticker.
//! - `compile`: compile or load from the disk cache, refuse foreign imports.
//! - [`version`]: one loaded version and its pool of warm instances.
//! - [`host`]: versions by name, load → check → swap, fallback chain.
//! - `watcher`: hot reload of the policy folder.
//! - [`health`]: passive per-target health that policies read.
//! - [`native`]: the last-resort policy compiled into the gateway.
//! - `observer`: what the gateway is told of each decision (timing, fallbacks).
//! - [`embedded`]: the components built from `plugins/` into the binary.
//! - [`conformance`]: the scenarios `switchyard policy check` runs.

#![deny(missing_docs)]

mod bindings;
mod call;
mod canary;
mod clock;
mod compile;
pub mod conformance;
pub mod decision;
pub mod embedded;
mod engine;
mod error;
mod guest_output;
pub mod health;
pub mod host;
pub mod kv;
pub mod log_limit;
pub mod native;
mod observer;
mod pinned;
mod pool;
mod samples;
pub mod shadow;
pub mod shared_kv;
pub mod signature;
pub mod standing;
mod state;
pub mod version;
mod watcher;

pub use call::{CallContext, is_allowed_header};
pub use compile::{sha256_hex, world_version};
pub use decision::{
    Api, AttemptLimits, AttemptOutcome, BreakKind, Caller, Degrade, NextStep, OutcomeKind, Plan, Priority, Recovery,
    RequestInfo, Retry, RouteDecision, RouteInfo, StreamBreak, Target, Topology,
};
pub use error::PolicyError;
pub use health::{BreakerConfig, BreakerObserver, BreakerState, HealthBook, HealthPublisher, SharedMove, TargetHealth};
pub use host::{Canary, Decided, HostOptions, PinnedPolicy, PolicyEvent, PolicyHost, SlotView};
pub use observer::{DecisionObserver, FallbackTo, Hook};
pub use shared_kv::{KvFuture, KvWrite, SharedKv};
pub use standing::RollbackRule;
pub use version::{FUEL_PER_MS, Limits, PolicyOrigin, PolicyVersion, WALL_BACKSTOP, fuel_for};
pub use watcher::PolicyWatcher;
