//! Write Switchyard policies in Rust.
//!
//! This crate holds the one `wit_bindgen::generate!` of the `switchyard:policy`
//! world and re-exports what a policy needs. A policy implements [`Guest`]
//! and exports it with [`export_policy!`]:
//!
//! ```ignore
//! use switchyard_policy_sdk::*;
//! struct MyPolicy;
//! impl Guest for MyPolicy { /* init, route, on_attempt */ }
//! export_policy!(MyPolicy);
//! ```
//!
//! Instances are interchangeable and may be discarded at any time: keep only
//! what `init` derives from its arguments in guest memory, never per-request state.

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "policy",
        pub_export_macro: true,
        export_macro_name: "export_policy_inner",
        default_bindings_module: "switchyard_policy_sdk::bindings",
    });
}

pub use bindings::Guest;
pub use bindings::switchyard::policy::host;
pub use bindings::switchyard::policy::types::*;

/// Exports a type implementing [`Guest`] as the component's policy.
#[macro_export]
macro_rules! export_policy {
    ($ty:ident) => {
        $crate::bindings::export_policy_inner!($ty with_types_in $crate::bindings);
    };
}

/// Deterministic full-jitter exponential backoff: a delay in
/// `[0, min(cap, base * 2^(attempt-1))]`, drawn from the host's generator.
pub fn full_jitter_backoff_ms(attempt: u32, base_ms: u32, cap_ms: u32) -> u32 {
    let exp = attempt.saturating_sub(1).min(20);
    let ceiling = (base_ms as u64).saturating_mul(1u64 << exp).min(cap_ms as u64);
    (host::random() * (ceiling as f64 + 1.0)) as u32
}

/// Log through the gateway's log, tagged with the policy's name.
pub fn log(level: LogLevel, message: &str) {
    host::log(level, message);
}

/// The targets of `route` that have not been tried yet, in route order.
pub fn untried<'a>(route: &'a Route, tried: &'a [u32]) -> impl Iterator<Item = u32> + 'a {
    route.targets.iter().copied().filter(move |t| !tried.contains(t))
}

/// Milliseconds the provider asked us to wait before sending to `target` again
/// (0 when it asked nothing or the wait is over).
pub fn wait_requested_ms(target: u32) -> u32 {
    host::health(target).and_then(|h| h.retry_after_ms).unwrap_or(0)
}

/// The target's circuit breaker is open: it failed too often and its
/// cool-down is running.
pub fn breaker_open(target: u32) -> bool {
    host::health(target).is_some_and(|h| h.breaker == BreakerState::Open)
}

/// Whether sending to `target` now is reasonable: no Retry-After running and
/// the breaker not open.
pub fn is_available(target: u32) -> bool {
    host::available(target)
}

impl OutcomeKind {
    /// A failure that another attempt may fix (the same or another target).
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            OutcomeKind::ConnectError
                | OutcomeKind::Timeout
                | OutcomeKind::Reset
                | OutcomeKind::RateLimited
                | OutcomeKind::Overloaded
                | OutcomeKind::ServerError
        )
    }

    /// A failure that another *target* may fix but the same one will not.
    pub fn needs_other_target(self) -> bool {
        matches!(self, OutcomeKind::Auth | OutcomeKind::ContextTooLong)
    }
}
