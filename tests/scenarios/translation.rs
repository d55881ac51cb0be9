//! An OpenAI client in front of an Anthropic provider: requests, answers,
//! streams and errors translated on the way, failover across the two APIs.

use std::time::Duration;

use crate::*;

fn claude_then_gpt(claude: &MockProvider, gpt: &MockProvider) -> ConfigBuilder {
    ConfigBuilder::new().anthropic_provider("claude", &claude.url()).provider("gpt", &gpt.url()).route(
        "m",
        None,
        5000,
        &["claude", "gpt"],
    )
}

#[tokio::test]
async fn an_openai_client_gets_an_anthropic_providers_answer_in_openai_format() {
    init_tracing();
    let claude = MockProvider::start_anthropic("claude", vec![Reply::Ok]).await;
    let gpt = MockProvider::start("gpt").await;
    let gw = TestGateway::start(&claude_then_gpt(&claude, &gpt)).await;
    let r = post_chat(&gw.url(), "m").await;
    assert_eq!((r.status.as_u16(), r.header("x-switchyard-provider")), (200, "claude"), "{}", r.body);
    let body = r.json();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["content"], "Hello from claude");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["total_tokens"], 8);
    // The provider was asked in its own API: max_tokens set, messages kept.
    let sent: serde_json::Value = serde_json::from_str(&claude.seen()[0].body).unwrap();
    assert!(sent["max_tokens"].as_u64().unwrap() > 0, "{sent}");
    assert_eq!(sent["messages"][0]["role"], "user");
    assert_eq!(sent["model"], "m");
}

#[tokio::test]
async fn an_anthropic_stream_reaches_the_openai_client_as_chunks() {
    init_tracing();
    let claude = MockProvider::start_anthropic("claude", vec![Reply::Ok]).await;
    let gpt = MockProvider::start("gpt").await;
    let gw = TestGateway::start(&claude_then_gpt(&claude, &gpt)).await;
    let r = post_chat_stream(&gw.url(), "m").await;
    assert_eq!(r.status, 200);
    let text = r.rest(Duration::from_secs(5)).await;
    let content: String = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str::<serde_json::Value>(d).unwrap())
        .inspect(|c| assert_eq!(c["object"], "chat.completion.chunk"))
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(content, "Hello from claude");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
}

#[tokio::test]
async fn an_overloaded_anthropic_provider_fails_over_to_openai() {
    init_tracing();
    let claude = MockProvider::start_anthropic("claude", vec![Reply::anthropic_overloaded()]).await;
    let gpt = MockProvider::start("gpt").await;
    let gw = TestGateway::start(&claude_then_gpt(&claude, &gpt)).await;
    let r = post_chat(&gw.url(), "m").await;
    assert_eq!((r.status.as_u16(), r.header("x-switchyard-provider")), (200, "gpt"), "{}", r.body);
    // The overloaded provider is tried once more before failing over.
    assert_eq!(r.header("x-switchyard-attempts"), "3");
}

#[tokio::test]
async fn an_anthropic_error_reaches_the_openai_client_in_openai_format() {
    init_tracing();
    let refusal =
        r#"{"type":"error","error":{"type":"invalid_request_error","message":"messages: roles must alternate"}}"#;
    let claude = MockProvider::start_anthropic(
        "claude",
        vec![Reply::Status { status: 400, headers: Vec::new(), body: refusal.into() }],
    )
    .await;
    let gpt = MockProvider::start("gpt").await;
    let gw = TestGateway::start(&claude_then_gpt(&claude, &gpt)).await;
    let r = post_chat(&gw.url(), "m").await;
    assert_eq!(r.status, 400, "{}", r.body);
    let body = r.json();
    assert_eq!(body["error"]["message"], "messages: roles must alternate");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(gpt.received(), 0, "an invalid request is not retried elsewhere");
}
