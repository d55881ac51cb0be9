//! Who may use the gateway. A client authenticates with the header its SDK
//! already sends — `Authorization: Bearer KEY` from OpenAI clients,
//! `x-api-key: KEY` from Anthropic clients — and the gateway knows keys
//! only by their SHA-256 (`[[keys]] hash = "sha256:<hex>"`, printed by
//! `switchyard keys new NAME`). A key's name is what logs, metrics and
//! policies may see; the key itself goes nowhere.
//!
//! A key may have a request rate ([`rate`]: `requests_per_minute`). The
//! design sketch puts token limits, the priority queue and budgets here too,
//! one `admit` step before the exchange.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod keys;
pub mod rate;

pub use keys::{Key, KeyRing, MAX_KEY_BYTES, Refusal, hash_line, new_key};
