//! Streams pass through chunk by chunk; a stream that breaks after its first
//! byte ends with an error event, never a clean-looking end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::*;

async fn gateway_over(primary: &MockProvider, backup: &MockProvider) -> TestGateway {
    init_tracing();
    let config = two_providers(&primary.url(), &backup.url()).settings("failover", &["per_try_timeout_ms = 500"]);
    TestGateway::start(&config).await
}

#[tokio::test]
async fn chunks_reach_the_client_while_the_provider_holds_the_rest() {
    let release = Arc::new(Notify::new());
    let pieces = vec!["first ".to_string(), "second ".to_string(), "third".to_string()];
    let primary =
        MockProvider::start_cycling("primary", vec![Reply::StreamHeld { pieces, release: release.clone() }]).await;
    let backup = MockProvider::start("backup").await;
    let gw = gateway_over(&primary, &backup).await;

    let mut stream = post_chat_stream(&gw.url(), "m").await;
    assert_eq!(stream.status, 200);
    assert_eq!(stream.headers["content-type"], "text/event-stream");
    assert_eq!(stream.headers["x-switchyard-provider"], "primary");
    // The provider is still holding "second" and "third" back.
    let first = stream.next_chunk(Duration::from_secs(5)).await.expect("first chunk");
    let first = String::from_utf8_lossy(&first).to_string();
    assert!(first.contains("first "), "{first}");
    assert!(!first.contains("second"), "{first}");
    release.notify_one();
    let rest = stream.rest(Duration::from_secs(5)).await;
    assert!(rest.contains("second ") && rest.contains("third"), "{rest}");
    assert!(rest.trim_end().ends_with("data: [DONE]"), "{rest}");
    assert!(!rest.contains("\"error\""));
}

async fn broken_stream_ends_with_error_event(end: StreamEnd) {
    let primary =
        MockProvider::start_cycling("primary", vec![Reply::stream(&["one ", "two "], Duration::from_millis(20), end)])
            .await;
    let backup = MockProvider::start("backup").await;
    let gw = gateway_over(&primary, &backup).await;
    let started = Instant::now();
    let stream = post_chat_stream(&gw.url(), "m").await;
    assert_eq!(stream.status, 200);
    let text = stream.rest(Duration::from_secs(5)).await;
    // What the provider sent before breaking reached the client (a hard cut may
    // lose what was still in the provider's send buffer).
    assert!(text.contains("one "), "{text}");
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    assert!(last.starts_with("data: {\"error\":"), "last event should be an error: {last}");
    let event: serde_json::Value = serde_json::from_str(last.trim_start_matches("data: ")).unwrap();
    assert_eq!(event["error"]["code"], "upstream_stream_broken");
    assert!(!text.contains("[DONE]"));
    // Bytes had reached the client: no retry on the backup.
    assert_eq!(backup.received(), 0);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn half_dead_stream_cut_after_first_byte_ends_with_an_error_event() {
    broken_stream_ends_with_error_event(StreamEnd::Cut).await;
}

#[tokio::test]
async fn stream_closed_without_done_ends_with_an_error_event() {
    broken_stream_ends_with_error_event(StreamEnd::Truncated).await;
}

#[tokio::test]
async fn stalled_stream_ends_with_an_error_event_after_the_idle_timeout() {
    broken_stream_ends_with_error_event(StreamEnd::Stall).await;
}

#[tokio::test]
async fn stream_that_dies_before_its_first_byte_fails_over() {
    let primary =
        MockProvider::start_cycling("primary", vec![Reply::stream(&[], Duration::ZERO, StreamEnd::Cut)]).await;
    let backup = MockProvider::start("backup").await;
    let gw = gateway_over(&primary, &backup).await;
    let stream = post_chat_stream(&gw.url(), "m").await;
    assert_eq!(stream.headers["x-switchyard-provider"], "backup");
    assert_eq!(stream.headers["x-switchyard-attempts"], "2");
    let text = stream.rest(Duration::from_secs(5)).await;
    assert!(text.contains("backup") && text.trim_end().ends_with("data: [DONE]"), "{text}");
}

#[tokio::test]
async fn streamed_503_fails_over_before_any_byte_is_sent() {
    let primary = MockProvider::start_cycling("primary", vec![Reply::status(503)]).await;
    let backup = MockProvider::start("backup").await;
    let gw = gateway_over(&primary, &backup).await;
    let stream = post_chat_stream(&gw.url(), "m").await;
    assert_eq!(stream.status, 200);
    assert_eq!(stream.headers["x-switchyard-provider"], "backup");
    let text = stream.rest(Duration::from_secs(5)).await;
    assert!(text.trim_end().ends_with("data: [DONE]"));
}
