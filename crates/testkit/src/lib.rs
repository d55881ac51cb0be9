//! Test support that speaks the real wire: mock LLM providers (OpenAI and
//! Anthropic, JSON and SSE) with scripted outages, a gateway harness on
//! `127.0.0.1:0`, an HTTP client for assertions, and the official Python
//! SDKs as clients. Used by the end-to-end tests, the bench and
//! `switchyard demo`. Nothing here mocks the gateway's own parts.
//!
//! # Layout
//! - [`MockProvider`] and its [`Reply`] script, re-exported from `switchyard-mock`.
//! - [`harness`]: [`TestGateway`] and [`ConfigBuilder`].
//! - [`client`]: plain and streaming requests to the gateway.
//! - [`receiver`]: a loopback receiver of webhooks and exported traces.
//! - [`redis`]: a real `redis-server` for the shared-state tests.
//! - [`sdk`]: the official `openai` and `anthropic` Python SDKs as clients.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod client;
pub mod harness;
pub mod receiver;
pub mod redis;
pub mod sdk;

pub use client::{
    ANTHROPIC_CLIENT_HEADERS, ChatResponse, StreamingResponse, chat_body, get, get_with, messages_body, post_chat,
    post_chat_stream, post_messages, post_messages_stream, post_raw, post_stream,
};
pub use harness::{ConfigBuilder, TestGateway};
pub use receiver::{Received, Receiver};
pub use redis::RedisServer;
pub use sdk::{SdkCall, sdk_call};
pub use switchyard_mock::{MockProvider, Reply, StreamEnd, closed_port_url};
pub use switchyard_policy_host::embedded::PLUGIN_ARTIFACTS;

/// Path of a component the build wrote from `plugins/` (e.g. `chaos`, `weighted_split`).
pub fn plugin_artifact(name: &str) -> std::path::PathBuf {
    std::path::Path::new(PLUGIN_ARTIFACTS).join(format!("{name}.wasm"))
}

/// Polls `check` until it holds or `patience` runs out (then panics with `what`).
pub async fn eventually(what: &str, patience: std::time::Duration, mut check: impl FnMut() -> bool) {
    let until = std::time::Instant::now() + patience;
    while !check() {
        assert!(std::time::Instant::now() < until, "timed out waiting for: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}
