//! LLM API wire formats, with no I/O: what the gateway needs to read from a
//! client request, the error bodies it answers with, SSE framing of streamed
//! answers, and the classification of provider failures.
//!
//! The gateway forwards request bytes as they came; it only peeks at the few
//! fields a decision needs ([`RequestPeek`]) and rewrites `model` when the
//! target's model name differs from the client's.
//!
//! # Layout
//! - [`api`]: [`Api`], the two APIs, and what differs between them at the edge.
//! - [`request`]: [`RequestPeek`], model rewriting.
//! - [`anthropic`], [`chat`]: Anthropic Messages and OpenAI chat wire types.
//! - [`translate`]: requests and complete answers, OpenAI ⇄ Anthropic.
//! - [`replay`]: a complete completion replayed as an SSE stream.
//! - [`openai_error`]: OpenAI's error JSON, as a body and as an SSE event.
//! - [`sse`]: [`sse::EventReader`] (SSE framing); [`sse::DoneDetector`], a
//!   byte-watching end-of-stream check (what the relay ran before it cut whole
//!   events; the bench's baseline for the relay's per-event work).
//! - [`stream`]: the commit point, event cutting, and splicing a recovered stream.
//! - [`classify`]: [`OutcomeKind`] of a provider answer; `Retry-After` parsing.
//! - [`text`]: cutting echoed input to size.
//! - [`usage`]: token counts read out of an answer without parsing it.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod anthropic;
pub mod api;
pub mod chat;
pub mod classify;
pub mod openai_error;
pub mod replay;
pub mod request;
pub mod sse;
pub mod stream;
pub mod text;
pub mod translate;
pub mod usage;

pub use api::Api;
pub use classify::{OutcomeKind, classify_status, parse_retry_after};
pub use request::{RequestPeek, WireError};
