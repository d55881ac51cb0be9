//! A streamed answer after the provider's first byte: where it commits,
//! how it is cut into events on its way, what the client already has when
//! it breaks, and how a recovery's stream is spliced onto it.
//!
//! - [`first_token`]: preamble or content? The commit point of a stream.
//! - [`cutter`]: whole events out of arbitrary chunks, cheaply classified
//!   (heartbeat, end, error), so an error event can be held back.
//! - [`delivered`]: what a client stream carried, read back from its bytes.
//! - [`splice`]: a recovery's events rewritten to continue the client's
//!   stream (same ids and block indexes, nothing said twice).

pub mod cutter;
pub mod delivered;
pub mod first_token;
pub mod splice;
