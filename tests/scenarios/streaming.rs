//! Streams pass through chunk by chunk; a stream that breaks after its first
//! content and is not recovered (recovery off) ends with an error event,
//! never a clean-looking end. Recovery itself: `stream_recovery.rs`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::*;

async fn gateway_over(primary: &MockProvider, backup: &MockProvider) -> TestGateway {
    init_tracing();
    let config = two_providers(&primary.url(), &backup.url())
        .settings("failover", &["first_token_timeout_ms = 500", "idle_timeout_ms = 500", "recovery = \"off\""]);
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

#[tokio::test]
async fn events_the_provider_sends_in_one_burst_reach_the_client_together_not_one_write_each() {
    let release = Arc::new(Notify::new());
    let pieces: Vec<String> = (0..16).map(|i| format!("w{i} ")).collect();
    let primary = MockProvider::start_cycling(
        "primary",
        vec![Reply::StreamHeld { pieces: pieces.clone(), release: release.clone() }],
    )
    .await;
    let backup = MockProvider::start("backup").await;
    let gw = gateway_over(&primary, &backup).await;

    let mut stream = post_chat_stream(&gw.url(), "m").await;
    assert_eq!(stream.status, 200);
    let first = stream.next_chunk(Duration::from_secs(5)).await.expect("first chunk");
    assert!(String::from_utf8_lossy(&first).contains("w0 "));
    // The other 15 words and the end come in a burst.
    release.notify_one();
    let mut chunks = 0;
    let mut rest = String::new();
    while let Some(chunk) = stream.next_chunk(Duration::from_secs(5)).await {
        chunks += 1;
        rest.push_str(&String::from_utf8_lossy(&chunk));
    }
    let words: Vec<&str> = rest.split("\"content\":\"").skip(1).filter_map(|s| s.split('"').next()).collect();
    let expected: Vec<String> = pieces[1..].to_vec();
    assert_eq!(words.iter().filter(|w| !w.is_empty()).copied().collect::<Vec<_>>(), expected, "{rest}");
    assert!(rest.trim_end().ends_with("data: [DONE]"), "{rest}");
    // 17 events and the end marker: one HTTP chunk each if each were
    // written as it was read.
    assert!(chunks <= 8, "{chunks} chunks for one burst of 18 events");
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
    // Content had reached the client and recovery is off: no attempt at the backup.
    assert_eq!(backup.received(), 0);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn half_dead_stream_cut_after_first_content_ends_with_an_error_event_when_recovery_is_off() {
    broken_stream_ends_with_error_event(StreamEnd::Cut).await;
}

#[tokio::test]
async fn stream_closed_without_done_ends_with_an_error_event_when_recovery_is_off() {
    broken_stream_ends_with_error_event(StreamEnd::Truncated).await;
}

#[tokio::test]
async fn stalled_stream_ends_with_an_error_event_after_the_idle_limit_when_recovery_is_off() {
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

/// A provider that sends its whole answer (finish reason, usage) and closes
/// without its API's end event: the client, of either API, gets a complete
/// stream ending the way its SDK expects, never an error.
async fn complete_stream_without_end_event(provider_api: &str, client_path: &str) -> String {
    init_tracing();
    let reply = Reply::stream(&["all ", "of ", "it"], Duration::ZERO, StreamEnd::CompleteWithoutEnd);
    let primary = match provider_api {
        "anthropic" => MockProvider::start_anthropic("primary", vec![reply]).await,
        _ => MockProvider::start_cycling("primary", vec![reply]).await,
    };
    let backup = MockProvider::start("backup").await;
    let config = match provider_api {
        "anthropic" => ConfigBuilder::new().anthropic_provider("primary", &primary.url()),
        _ => ConfigBuilder::new().provider("primary", &primary.url()),
    }
    .provider("backup", &backup.url())
    .route("m", None, 5000, &["primary", "backup"]);
    let gw = TestGateway::start(&config).await;
    let (body, headers): (String, &[(&str, &str)]) = match client_path {
        "/v1/messages" => (messages_body("m", true), &[("anthropic-version", "2023-06-01")]),
        _ => (chat_body("m", true), &[]),
    };
    let stream = post_stream(&gw.url(), client_path, body, headers).await;
    assert_eq!(stream.status, 200);
    let text = stream.rest(Duration::from_secs(5)).await;
    assert!(text.contains("all ") && text.contains("it"), "{text}");
    assert!(!text.contains("error"), "a complete answer got an error: {text}");
    assert_eq!(backup.received(), 0);
    let primary_health = gw.policies().health().get(0).unwrap();
    assert_eq!(primary_health.consecutive_failures, 0, "recorded as a failure");
    text
}

#[tokio::test]
async fn a_complete_openai_stream_without_done_ends_with_done_for_an_openai_client() {
    let text = complete_stream_without_end_event("openai", "/v1/chat/completions").await;
    assert!(text.contains(r#""finish_reason":"stop""#), "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
}

#[tokio::test]
async fn a_complete_anthropic_stream_without_message_stop_ends_with_message_stop_for_an_anthropic_client() {
    let text = complete_stream_without_end_event("anthropic", "/v1/messages").await;
    assert!(text.trim_end().ends_with(r#"data: {"type":"message_stop"}"#), "{text}");
}

#[tokio::test]
async fn a_complete_stream_without_its_end_event_is_ended_properly_through_translation_both_ways() {
    let text = complete_stream_without_end_event("anthropic", "/v1/chat/completions").await;
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let text = complete_stream_without_end_event("openai", "/v1/messages").await;
    assert!(text.contains("message_delta") && text.trim_end().ends_with(r#"data: {"type":"message_stop"}"#), "{text}");
}

#[tokio::test]
async fn a_provider_that_breaks_every_stream_midway_has_its_breaker_opened() {
    let primary = MockProvider::start_cycling(
        "primary",
        vec![Reply::stream(&["one ", "two "], Duration::from_millis(5), StreamEnd::Cut)],
    )
    .await;
    let backup = MockProvider::start("backup").await;
    let gw = gateway_over(&primary, &backup).await;
    for _ in 0..5 {
        let stream = post_chat_stream(&gw.url(), "m").await;
        assert_eq!(stream.headers["x-switchyard-provider"], "primary");
        let text = stream.rest(Duration::from_secs(5)).await;
        assert!(text.contains("upstream_stream_broken"), "{text}");
    }
    let health = gw.policies().health().get(0).unwrap();
    assert_eq!(health.consecutive_failures, 5, "each broken stream is a failure, its first byte no success");
    assert_eq!(health.breaker, switchyard_policy_host::BreakerState::Open);
    let stream = post_chat_stream(&gw.url(), "m").await;
    assert_eq!(stream.headers["x-switchyard-provider"], "backup");
    assert!(stream.rest(Duration::from_secs(5)).await.trim_end().ends_with("data: [DONE]"));
}
