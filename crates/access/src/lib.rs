//! Who may use the gateway. A client authenticates with the header its SDK
//! already sends — `Authorization: Bearer KEY` from OpenAI clients,
//! `x-api-key: KEY` from Anthropic clients — and the gateway knows keys
//! only by their SHA-256 (`[[keys]] hash = "sha256:<hex>"`, printed by
//! `switchyard keys new NAME`). A key's name is what logs, metrics and
//! policies may see; the key itself goes nowhere.
//!
//! Each key is a [`Tenant`] with limits, checked by one [`Tenant::admit`]
//! before the exchange: the routes it may use, daily and monthly budgets
//! ([`budget`]), concurrency, request and token rates ([`rate`]). A
//! provider's quotas are [`gate::Gate`]s: an attempt waits at its
//! target's gates, in priority order, until the provider may take it.
//! Instances sharing state count a key's rates together ([`shared`]).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod budget;
pub mod gate;
mod keys;
pub mod rate;
pub mod shared;
mod tenant;

pub use keys::{KeyRing, MAX_KEY_BYTES, Refusal, hash_line, new_key};
pub use tenant::{Admission, Denied, Tenant};
