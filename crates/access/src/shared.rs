//! A key's request and token rates counted across every gateway instance
//! (`[state] backend = "redis"`): [`SharedRates`] is where they are kept;
//! [`Tenant::admit_shared`](crate::Tenant::admit_shared) asks it once per
//! request (both rates in one answer) and falls back to this instance's own
//! buckets when it does not answer in time.

use std::future::Future;
use std::pin::Pin;

use crate::rate::{Admitted, Limited};

/// What one request takes of its key's rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateAsk {
    /// The key's `requests_per_minute` (one is taken), if it has one.
    pub requests_per_minute: Option<u32>,
    /// The key's `tokens_per_minute`, if it has one...
    pub tokens_per_minute: Option<u32>,
    /// ...and the request's estimated tokens, taken of it.
    pub tokens: u32,
}

/// The shared store's verdict: both taken, or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateAnswer {
    /// Let in; what is left of each rate the key has.
    Admitted {
        /// Of the request rate.
        requests: Option<Admitted>,
        /// Of the token rate.
        tokens: Option<Admitted>,
    },
    /// Over the request rate.
    Requests(Limited),
    /// Over the token rate.
    Tokens(Limited),
}

/// An answer of the shared store; `None` when it did not answer in time.
pub type RateFuture<'a> = Pin<Box<dyn Future<Output = Option<RateAnswer>> + Send + 'a>>;

/// Rates shared by the instances of one cluster, by name: a gateway key's
/// (`key:NAME`), a provider's quota (`provider:NAME`), a model's
/// (`model:PROVIDER/MODEL`).
pub trait SharedRates: Send + Sync + std::fmt::Debug {
    /// Takes `ask` of `key`'s rates, atomically across instances.
    fn take<'a>(&'a self, key: &'a str, ask: RateAsk) -> RateFuture<'a>;
    /// Corrects the token rate by `delta` (real minus estimated), off the
    /// request path; a correction that cannot be made is dropped.
    fn settle_tokens(&self, key: &str, tokens_per_minute: u32, delta: i64);
    /// Instances sharing the limits now (the last count known while the
    /// store is away): each keeps its share of a `max_concurrency`.
    fn members(&self) -> u32 {
        1
    }
}
