//! An Anthropic client (`POST /v1/messages`) in front of Anthropic and
//! OpenAI providers: answers, streams, tool calls and errors in Anthropic's
//! format whichever API answered; failover from Claude to GPT; nothing of
//! the client's credentials reaches a provider.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::*;

fn claude_then_gpt(claude: &MockProvider, gpt: &MockProvider) -> ConfigBuilder {
    ConfigBuilder::new().anthropic_provider("claude", &claude.url()).provider("gpt", &gpt.url()).route(
        "claude-x",
        None,
        5000,
        &["claude", "gpt"],
    )
}

fn gpt_only(gpt: &MockProvider) -> ConfigBuilder {
    ConfigBuilder::new().provider("gpt", &gpt.url()).route("claude-x", None, 5000, &["gpt"])
}

/// `(event name, data)` of every event of an Anthropic stream.
fn events(sse: &str) -> Vec<(String, Value)> {
    sse.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e.lines().find_map(|l| l.strip_prefix("event: ")).unwrap_or_default().to_owned();
            let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap_or("null");
            (name, serde_json::from_str(data).unwrap_or_else(|err| panic!("{err}: {data}")))
        })
        .collect()
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).filter(|n| *n != "ping").collect()
}

fn streamed_text(events: &[(String, Value)]) -> String {
    events.iter().filter_map(|(_, d)| d["delta"]["text"].as_str()).collect()
}

#[tokio::test]
async fn an_anthropic_client_gets_a_claude_answer_as_claude_gave_it() {
    init_tracing();
    let claude = MockProvider::start_anthropic("claude", vec![Reply::Ok]).await;
    let gpt = MockProvider::start("gpt").await;
    let gw = TestGateway::start(&claude_then_gpt(&claude, &gpt)).await;
    let r = post_raw(
        &gw.url(),
        "/v1/messages",
        messages_body("claude-x", false),
        &[("anthropic-version", "2023-06-01"), ("anthropic-beta", "tools-2099-01-01"), ("x-api-key", "sk-client")],
    )
    .await;
    assert_eq!((r.status.as_u16(), r.header("x-switchyard-provider")), (200, "claude"), "{}", r.body);
    let body = r.json();
    assert_eq!((body["type"].as_str(), body["role"].as_str()), (Some("message"), Some("assistant")));
    assert_eq!(body["content"][0]["text"], "Hello from claude");
    assert_eq!(body["usage"]["output_tokens"], 3);
    // The client's version and beta flags go along; its key does not.
    let seen = &claude.seen()[0];
    assert_eq!(seen.headers["anthropic-version"], "2023-06-01");
    assert_eq!(seen.headers["anthropic-beta"], "tools-2099-01-01");
    assert!(!seen.headers.contains_key("x-api-key") && !seen.body.contains("sk-client"));
    assert_eq!(gpt.received(), 0);
}

#[tokio::test]
async fn an_anthropic_client_gets_an_openai_providers_answer_in_anthropic_format() {
    init_tracing();
    let gpt = MockProvider::start("gpt").await;
    let gw = TestGateway::start(&gpt_only(&gpt)).await;
    let r = post_messages(&gw.url(), "claude-x").await;
    assert_eq!((r.status.as_u16(), r.header("x-switchyard-provider")), (200, "gpt"), "{}", r.body);
    let body = r.json();
    assert_eq!(body["type"], "message");
    assert_eq!(body["content"], json!([{"type": "text", "text": "Hello from gpt"}]));
    assert_eq!(body["stop_reason"], "end_turn");
    assert_eq!((body["usage"]["input_tokens"].as_u64(), body["usage"]["output_tokens"].as_u64()), (Some(5), Some(3)));
    // The provider was asked in OpenAI's shape, without the client's key or Anthropic headers.
    let seen = &gpt.seen()[0];
    let sent: Value = serde_json::from_str(&seen.body).unwrap();
    assert_eq!(sent["messages"], json!([{"role": "user", "content": "Hello?"}]));
    assert_eq!(sent["max_tokens"], 256);
    assert!(!seen.headers.contains_key("x-api-key") && !seen.headers.contains_key("anthropic-version"));
}

#[tokio::test]
async fn an_openai_stream_reaches_the_anthropic_client_as_the_message_event_sequence() {
    init_tracing();
    let gpt = MockProvider::start("gpt").await;
    let gw = TestGateway::start(&gpt_only(&gpt)).await;
    let r = post_messages_stream(&gw.url(), "claude-x").await;
    assert_eq!((r.status.as_u16(), r.header("content-type")), (200, "text/event-stream"));
    let events = events(&r.rest(PATIENCE).await);
    assert_eq!(
        names(&events),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(streamed_text(&events), "Hello from gpt");
    // Usage arrives although the OpenAI provider reports it only when asked.
    let delta = &events[events.len() - 2].1;
    assert_eq!((delta["usage"]["output_tokens"].as_u64(), delta["usage"]["input_tokens"].as_u64()), (Some(3), Some(5)));
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    let sent: Value = serde_json::from_str(&gpt.seen()[0].body).unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn streaming_stays_incremental_across_translation() {
    init_tracing();
    let release = Arc::new(tokio::sync::Notify::new());
    let gpt = MockProvider::start_cycling(
        "gpt",
        vec![Reply::StreamHeld { pieces: vec!["first ".into(), "second".into()], release: release.clone() }],
    )
    .await;
    let gw = TestGateway::start(&gpt_only(&gpt)).await;
    let mut r = post_messages_stream(&gw.url(), "claude-x").await;
    // The provider holds everything after its first piece: the client must
    // already see the first text delta.
    let mut seen = String::new();
    while !seen.contains("first ") {
        let chunk = r.next_chunk(PATIENCE).await.expect("the stream goes on");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.starts_with("event: message_start\n") && !seen.contains("message_stop"), "{seen}");
    release.notify_one();
    let rest = r.rest(PATIENCE).await;
    assert_eq!(streamed_text(&events(&(seen + &rest))), "first second");
    assert!(rest.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"), "{rest}");
}

#[tokio::test]
async fn a_claude_529_fails_over_to_gpt_and_the_anthropic_client_gets_a_claude_shaped_answer() {
    init_tracing();
    let claude = MockProvider::start_anthropic("claude", vec![Reply::anthropic_overloaded()]).await;
    let gpt = MockProvider::start("gpt").await;
    let gw = TestGateway::start(&claude_then_gpt(&claude, &gpt)).await;
    let r = post_messages(&gw.url(), "claude-x").await;
    assert_eq!((r.status.as_u16(), r.header("x-switchyard-provider")), (200, "gpt"), "{}", r.body);
    // The overloaded provider is tried once more before failing over.
    assert_eq!(r.header("x-switchyard-attempts"), "3");
    assert_eq!(r.json()["content"][0]["text"], "Hello from gpt");
    // Streamed too: the fallback's chunks arrive as Anthropic events.
    let r = post_messages_stream(&gw.url(), "claude-x").await;
    assert_eq!(r.header("x-switchyard-provider"), "gpt");
    let events = events(&r.rest(PATIENCE).await);
    assert_eq!((names(&events)[0], *names(&events).last().unwrap()), ("message_start", "message_stop"));
    assert_eq!(streamed_text(&events), "Hello from gpt");
}

#[tokio::test]
async fn an_anthropic_stream_passes_through_to_the_anthropic_client_untouched() {
    init_tracing();
    let claude = MockProvider::start_anthropic("claude", vec![Reply::Ok]).await;
    let gpt = MockProvider::start("gpt").await;
    let gw = TestGateway::start(&claude_then_gpt(&claude, &gpt)).await;
    let r = post_messages_stream(&gw.url(), "claude-x").await;
    let events = events(&r.rest(PATIENCE).await);
    assert!(events.iter().any(|(n, _)| n == "ping"), "pings are passed on");
    assert_eq!(streamed_text(&events), "Hello from claude");
    assert_eq!(names(&events).last(), Some(&"message_stop"));
}

#[tokio::test]
async fn a_translated_stream_cut_midway_ends_with_an_anthropic_error_event() {
    init_tracing();
    let gpt = MockProvider::start_cycling(
        "gpt",
        vec![Reply::stream(&["partial ", "answer"], Duration::from_millis(10), StreamEnd::Cut)],
    )
    .await;
    let gw = TestGateway::start(&gpt_only(&gpt)).await;
    let r = post_messages_stream(&gw.url(), "claude-x").await;
    let events = events(&r.rest(PATIENCE).await);
    let (last, data) = events.last().unwrap();
    assert_eq!((last.as_str(), data["type"].as_str()), ("error", Some("error")));
    assert_eq!(data["error"]["type"], "api_error");
    assert!(!names(&events).contains(&"message_stop"));
}

#[tokio::test]
async fn a_tool_call_from_an_openai_provider_reaches_the_anthropic_client_as_tool_use() {
    init_tracing();
    let call = Reply::ToolCall { name: "get_weather".into(), arguments: r#"{"city":"Paris"}"#.into() };
    let gpt = MockProvider::start_cycling("gpt", vec![call]).await;
    let gw = TestGateway::start(&gpt_only(&gpt)).await;
    let request = |stream: bool| {
        json!({"model": "claude-x", "max_tokens": 100, "stream": stream,
            "tools": [{"name": "get_weather", "description": "Weather by city",
                       "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
            "messages": [{"role": "user", "content": "Weather in Paris?"}]})
        .to_string()
    };
    let r = post_raw(&gw.url(), "/v1/messages", request(false), &ANTHROPIC_CLIENT_HEADERS).await;
    let body = r.json();
    assert_eq!(body["stop_reason"], "tool_use", "{body}");
    assert_eq!(body["content"][0]["type"], "tool_use");
    assert_eq!(
        (body["content"][0]["name"].as_str(), &body["content"][0]["input"]),
        (Some("get_weather"), &json!({"city": "Paris"}))
    );
    // The tool definition reached the provider as an OpenAI function.
    let sent: Value = serde_json::from_str(&gpt.seen()[0].body).unwrap();
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(sent["tools"][0]["function"]["parameters"]["properties"]["city"]["type"], "string");

    let r = post_stream(&gw.url(), "/v1/messages", request(true), &ANTHROPIC_CLIENT_HEADERS).await;
    let events = events(&r.rest(PATIENCE).await);
    let start = events.iter().find(|(n, _)| n == "content_block_start").unwrap();
    assert_eq!(start.1["content_block"]["type"], "tool_use");
    let arguments: String = events.iter().filter_map(|(_, d)| d["delta"]["partial_json"].as_str()).collect();
    assert_eq!(serde_json::from_str::<Value>(&arguments).unwrap(), json!({"city": "Paris"}));
    let delta = events.iter().find(|(n, _)| n == "message_delta").unwrap();
    assert_eq!(delta.1["delta"]["stop_reason"], "tool_use");
}

#[tokio::test]
async fn gateway_errors_reach_anthropic_clients_in_anthropic_format() {
    init_tracing();
    let gpt = MockProvider::start_cycling("gpt", vec![Reply::status(503)]).await;
    let gw = TestGateway::start(&gpt_only(&gpt).top("max_body_bytes = 4096")).await;
    let is_anthropic_error = |r: &ChatResponse, kind: &str| {
        let body = r.json();
        assert_eq!((body["type"].as_str(), body["error"]["type"].as_str()), (Some("error"), Some(kind)), "{body}");
        assert!(!body["error"]["message"].as_str().unwrap_or_default().is_empty());
    };
    let r = post_messages(&gw.url(), "no-such-model").await;
    assert_eq!(r.status, 404);
    is_anthropic_error(&r, "not_found_error");

    let no_max_tokens = json!({"model": "claude-x", "messages": [{"role": "user", "content": "hi"}]}).to_string();
    let r = post_raw(&gw.url(), "/v1/messages", no_max_tokens, &ANTHROPIC_CLIENT_HEADERS).await;
    assert_eq!(r.status, 400);
    is_anthropic_error(&r, "invalid_request_error");
    assert!(r.body.contains("max_tokens"), "{}", r.body);
    let bad_role = json!({"model": "claude-x", "max_tokens": 5, "messages": [{"role": "system", "content": "hi"}]});
    let r = post_raw(&gw.url(), "/v1/messages", bad_role.to_string(), &ANTHROPIC_CLIENT_HEADERS).await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("messages.0.role"), "{}", r.body);
    let huge = messages_body("claude-x", false).replace("Hello?", &"x".repeat(5000));
    let r = post_raw(&gw.url(), "/v1/messages", huge, &ANTHROPIC_CLIENT_HEADERS).await;
    assert_eq!(r.status, 413);
    is_anthropic_error(&r, "request_too_large");
    assert_eq!(gpt.received(), 0, "malformed requests never reach a provider");

    // Every provider down: a clean 503 with Retry-After, as an overloaded_error.
    let r = post_messages(&gw.url(), "claude-x").await;
    assert_eq!(r.status, 503);
    is_anthropic_error(&r, "overloaded_error");
    assert!(r.headers.contains_key("retry-after"));

    let r = get(&gw.url(), "/v1/messages").await;
    assert_eq!(r.status, 405);
    is_anthropic_error(&r, "api_error");
}

#[tokio::test]
async fn an_openai_provider_refusing_the_request_reaches_the_anthropic_client_as_its_error() {
    init_tracing();
    let gpt =
        MockProvider::start_cycling("gpt", vec![Reply::bad_request("invalid_value", "temperature: must be at most 2")])
            .await;
    let gw = TestGateway::start(&gpt_only(&gpt)).await;
    let r = post_messages(&gw.url(), "claude-x").await;
    assert_eq!((r.status.as_u16(), r.header("x-switchyard-attempts")), (400, "1"), "{}", r.body);
    let body = r.json();
    assert_eq!((body["type"].as_str(), body["error"]["type"].as_str()), (Some("error"), Some("invalid_request_error")));
    assert_eq!(body["error"]["message"], "temperature: must be at most 2");
}

#[tokio::test]
async fn a_cached_answer_reaches_an_anthropic_client_in_anthropic_format_streamed_or_not() {
    init_tracing();
    let primary = MockProvider::start("primary").await;
    let backup = MockProvider::start("backup").await;
    let gw = TestGateway::start(&resilient_pair(&primary, &backup)).await;
    let fresh = post_messages(&gw.url(), "m").await;
    assert_eq!(fresh.status, 200, "{}", fresh.body);
    tokio::time::sleep(Duration::from_millis(50)).await;
    primary.set_cycle(vec![Reply::status(503)]);
    backup.set_cycle(vec![Reply::status(503)]);

    let cached = post_messages(&gw.url(), "m").await;
    assert_eq!((cached.status.as_u16(), cached.header("x-switchyard-degraded")), (200, "cached"), "{}", cached.body);
    assert_eq!(cached.json(), fresh.json());
    // An OpenAI client asking the same words does not get the Anthropic-shaped entry.
    let r = post_chat(&gw.url(), "m").await;
    assert_eq!(r.status, 503, "{}", r.body);

    let r = post_messages_stream(&gw.url(), "m").await;
    assert_eq!((r.header("content-type"), r.header("x-switchyard-degraded")), ("text/event-stream", "cached"));
    let events = events(&r.rest(PATIENCE).await);
    // The words the fresh answer had (from the primary, or from the backup
    // when a slow primary was hedged or the policy explored).
    let said = fresh.json()["content"][0]["text"].as_str().unwrap().to_owned();
    assert!(said.starts_with("Hello from "), "{said}");
    assert_eq!(streamed_text(&events), said);
    assert_eq!(names(&events).last(), Some(&"message_stop"));
}

#[tokio::test]
async fn models_are_listed_in_the_asking_clients_format() {
    init_tracing();
    let gpt = MockProvider::start("gpt").await;
    let gw = TestGateway::start(&gpt_only(&gpt)).await;
    let r = get(&gw.url(), "/v1/models").await;
    assert_eq!(r.json()["object"], "list");
    let r = get_with(&gw.url(), "/v1/models", &[("anthropic-version", "2023-06-01")]).await;
    let body = r.json();
    assert_eq!((body["data"][0]["type"].as_str(), body["data"][0]["id"].as_str()), (Some("model"), Some("claude-x")));
    assert_eq!(body["has_more"], false);
    // One model, by id, in either shape; an unknown one is a 404 in the asker's format.
    let r = get_with(&gw.url(), "/v1/models/claude-x", &[("anthropic-version", "2023-06-01")]).await;
    assert_eq!((r.json()["type"].as_str(), r.json()["id"].as_str()), (Some("model"), Some("claude-x")));
    let r = get(&gw.url(), "/v1/models/claude-x").await;
    assert_eq!((r.json()["object"].as_str(), r.json()["id"].as_str()), (Some("model"), Some("claude-x")));
    let r = get_with(&gw.url(), "/v1/models/nope", &[("anthropic-version", "2023-06-01")]).await;
    assert_eq!((r.status.as_u16(), r.json()["error"]["type"].as_str()), (404, Some("not_found_error")));
}

#[tokio::test]
async fn token_counting_goes_to_the_routes_anthropic_target_with_its_model_name() {
    init_tracing();
    let gpt = MockProvider::start("gpt").await;
    let claude = MockProvider::start_anthropic("claude", vec![Reply::Ok]).await;
    let config = ConfigBuilder::new()
        .provider("gpt", &gpt.url())
        .anthropic_provider("claude", &claude.url())
        .group("smart", &[], 5000, &[("gpt", "gpt-4o-mini"), ("claude", "claude-sonnet-4-5")])
        .route("gpt-only", None, 5000, &["gpt"]);
    let gw = TestGateway::start(&config).await;
    let question = json!({"model": "smart", "messages": [{"role": "user", "content": "How many tokens is this?"}]});
    let r = post_raw(&gw.url(), "/v1/messages/count_tokens", question.to_string(), &ANTHROPIC_CLIENT_HEADERS).await;
    assert_eq!((r.status.as_u16(), r.header("x-switchyard-provider")), (200, "claude"), "{}", r.body);
    assert!(r.json()["input_tokens"].as_u64().unwrap() > 0);
    let seen = &claude.seen()[0];
    assert_eq!(
        (seen.model.as_str(), seen.headers["anthropic-version"].to_str().unwrap()),
        ("claude-sonnet-4-5", "2023-06-01")
    );
    assert!(!seen.headers.contains_key("x-api-key"), "the client's key stays at the gateway");
    assert_eq!(gpt.received(), 0);

    // No Anthropic target: a clear 404 in Anthropic's format, nothing sent anywhere.
    let question = json!({"model": "gpt-only", "messages": [{"role": "user", "content": "hi"}]});
    let r = post_raw(&gw.url(), "/v1/messages/count_tokens", question.to_string(), &ANTHROPIC_CLIENT_HEADERS).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["type"], "not_found_error");
    assert!(r.body.contains("only Anthropic can count"), "{}", r.body);
    assert_eq!(gpt.received(), 0);
}

#[tokio::test]
async fn a_providers_own_mid_stream_error_reaches_each_client_once_in_its_format() {
    init_tracing();
    let overloaded = || Reply::stream(&["partial "], Duration::ZERO, StreamEnd::ProviderError);
    let claude = MockProvider::start_anthropic("claude", vec![overloaded()]).await;
    let gw = TestGateway::start(&ConfigBuilder::new().anthropic_provider("claude", &claude.url()).route(
        "claude-x",
        None,
        5000,
        &["claude"],
    ))
    .await;
    // The Anthropic client gets Claude's own error event, and nothing after it.
    let r = post_messages_stream(&gw.url(), "claude-x").await;
    let events = events(&r.rest(PATIENCE).await);
    let errors: Vec<&Value> = events.iter().filter(|(n, _)| n == "error").map(|(_, d)| d).collect();
    assert_eq!(errors.len(), 1, "{events:?}");
    assert_eq!(errors[0]["error"]["type"], "overloaded_error");
    assert_eq!(events.last().unwrap().0, "error");
    // An OpenAI client gets it translated: one error chunk, no [DONE].
    let r = post_chat_stream(&gw.url(), "claude-x").await;
    let text = r.rest(PATIENCE).await;
    assert_eq!(text.matches("\"error\"").count(), 1, "{text}");
    assert!(text.contains("Overloaded") && !text.contains("[DONE]"), "{text}");
}
