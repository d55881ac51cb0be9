//! The official Python SDKs (`openai`, `anthropic` from PyPI), unmodified,
//! pointed at the gateway by their base URL only: each API's client in front
//! of the other API's provider, failover in both directions, streams that
//! stay incremental across translation, tool calls, and errors raised as the
//! SDK's own exception types.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::*;

fn call(sdk: &str, gw: &TestGateway, model: &str, stream: bool) -> Value {
    json!({"sdk": sdk, "base_url": gw.url(), "model": model, "stream": stream})
}

fn ok(result: &Value) -> &Value {
    assert_eq!(result["ok"], true, "the SDK raised: {result}");
    result
}

/// Route `assistant` (alias `smart`): Claude's model, then GPT's.
async fn claude_first(claude: &MockProvider, gpt: &MockProvider) -> TestGateway {
    let config = ConfigBuilder::new().anthropic_provider("claude", &claude.url()).provider("gpt", &gpt.url()).group(
        "assistant",
        &["smart"],
        5000,
        &[("claude", "claude-sonnet-4-5"), ("gpt", "gpt-4o-mini")],
    );
    TestGateway::start(&config).await
}

/// Route `assistant` (alias `smart`): GPT's model, then Claude's.
async fn gpt_first(gpt: &MockProvider, claude: &MockProvider) -> TestGateway {
    let config = ConfigBuilder::new().provider("gpt", &gpt.url()).anthropic_provider("claude", &claude.url()).group(
        "assistant",
        &["smart"],
        5000,
        &[("gpt", "gpt-4o-mini"), ("claude", "claude-sonnet-4-5")],
    );
    TestGateway::start(&config).await
}

#[tokio::test]
async fn the_openai_sdk_gets_a_claude_answer_as_a_chat_completion_whole_and_streamed() {
    init_tracing();
    let claude = MockProvider::start_anthropic("claude", vec![Reply::Ok]).await;
    let gpt = MockProvider::start("gpt").await;
    let gw = claude_first(&claude, &gpt).await;

    let r = sdk_call(call("openai", &gw, "assistant", false)).await;
    let r = ok(&r);
    assert_eq!((r["class"].as_str(), r["object"].as_str()), (Some("ChatCompletion"), Some("chat.completion")));
    assert_eq!((r["text"].as_str(), r["finish_reason"].as_str()), (Some("Hello from claude"), Some("stop")));
    assert_eq!(r["usage"]["prompt_tokens"], 5);
    assert_eq!(r["usage"]["total_tokens"], 8);

    let r = sdk_call(call("openai", &gw, "assistant", true)).await;
    let r = ok(&r);
    assert_eq!((r["text"].as_str(), r["finish_reason"].as_str()), (Some("Hello from claude"), Some("stop")));
    assert_eq!(r["usage"]["completion_tokens"], 3, "stream_options.include_usage is honoured: {r}");
    // The system prompt reached Claude as Anthropic's `system`.
    let sent: Value = serde_json::from_str(&claude.seen()[0].body).unwrap();
    assert_eq!(sent["system"], "You are terse.", "{sent}");

    // The Anthropic SDK's token counter reaches Claude.
    let mut args = call("anthropic", &gw, "smart", false);
    args["count_tokens"] = true.into();
    let r = sdk_call(args).await;
    assert_eq!(
        (ok(&r)["class"].as_str(), r["input_tokens"].as_u64().is_some_and(|n| n > 0)),
        (Some("MessageTokensCount"), true),
        "{r}"
    );

    // The Anthropic SDK in front of the same Claude: its own API, passed through.
    for stream in [false, true] {
        let r = sdk_call(call("anthropic", &gw, "assistant", stream)).await;
        assert_eq!(
            (ok(&r)["text"].as_str(), r["model"].as_str()),
            (Some("Hello from claude"), Some("claude-sonnet-4-5"))
        );
    }
    assert_eq!(gpt.received(), 0);
}

#[tokio::test]
async fn the_anthropic_sdk_gets_a_gpt_answer_as_a_message_whole_and_streamed() {
    init_tracing();
    let gpt = MockProvider::start("gpt").await;
    let claude = MockProvider::start_anthropic("claude", vec![Reply::Ok]).await;
    let gw = gpt_first(&gpt, &claude).await;

    let r = sdk_call(call("anthropic", &gw, "assistant", false)).await;
    let r = ok(&r);
    assert_eq!(
        (r["class"].as_str(), r["type"].as_str(), r["role"].as_str()),
        (Some("Message"), Some("message"), Some("assistant"))
    );
    assert_eq!((r["text"].as_str(), r["stop_reason"].as_str()), (Some("Hello from gpt"), Some("end_turn")));
    assert_eq!(r["usage"], json!({"input_tokens": 5, "output_tokens": 3}));

    let r = sdk_call(call("anthropic", &gw, "assistant", true)).await;
    let r = ok(&r);
    assert_eq!((r["text"].as_str(), r["stop_reason"].as_str()), (Some("Hello from gpt"), Some("end_turn")));
    assert_eq!(r["usage"]["output_tokens"], 3);
    let events: Vec<&str> = r["events"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!((events.first(), events.last()), (Some(&"message_start"), Some(&"message_stop")), "{events:?}");
    assert!(events.contains(&"text") && events.contains(&"content_block_stop"), "{events:?}");
    // GPT was asked in OpenAI's shape: the system prompt as the first message.
    let sent: Value = serde_json::from_str(&gpt.seen()[0].body).unwrap();
    assert_eq!(sent["messages"][0], json!({"role": "system", "content": "You are terse."}));

    // The OpenAI SDK in front of the same GPT: its own API, passed through.
    for stream in [false, true] {
        let r = sdk_call(call("openai", &gw, "assistant", stream)).await;
        assert_eq!(ok(&r)["text"], "Hello from gpt");
    }
    assert_eq!(claude.received(), 0);
}

#[tokio::test]
async fn an_anthropic_sdk_client_whose_claude_is_overloaded_transparently_gets_gpts_answer() {
    init_tracing();
    let claude = MockProvider::start_anthropic("claude", vec![Reply::anthropic_overloaded()]).await;
    let gpt = MockProvider::start("gpt").await;
    let gw = claude_first(&claude, &gpt).await;
    for stream in [false, true] {
        let r = sdk_call(call("anthropic", &gw, "smart", stream)).await;
        let r = ok(&r);
        // (`messages.stream` hands back a `ParsedMessage`, a `Message` subclass.)
        assert_eq!((r["type"].as_str(), r["text"].as_str()), (Some("message"), Some("Hello from gpt")), "{r}");
        assert_eq!(r["model"], "gpt-4o-mini", "the answer names the model that answered");
    }
    assert_eq!(claude.seen()[0].model, "claude-sonnet-4-5");
    assert_eq!((claude.received(), gpt.received()), (4, 2), "two 529s each (one retry), then the fallback");
}

#[tokio::test]
async fn an_openai_sdk_client_whose_gpt_is_down_transparently_gets_claudes_answer() {
    init_tracing();
    let gpt = MockProvider::start_cycling("gpt", vec![Reply::status(503)]).await;
    let claude = MockProvider::start_anthropic("claude", vec![Reply::Ok]).await;
    let gw = gpt_first(&gpt, &claude).await;
    for stream in [false, true] {
        let r = sdk_call(call("openai", &gw, "smart", stream)).await;
        let r = ok(&r);
        assert_eq!(r["text"], "Hello from claude", "{r}");
    }
    let r = sdk_call(call("openai", &gw, "smart", false)).await;
    assert_eq!(ok(&r)["model"], "claude-sonnet-4-5", "the answer names the model that answered");
    // The first two requests retry the 503 once each; by the third, five
    // failures in a row have opened gpt's breaker and it is not asked.
    assert_eq!((gpt.received(), claude.received()), (5, 3));
}

#[tokio::test]
async fn streams_reach_the_sdks_incrementally_across_translation() {
    init_tracing();
    for sdk in ["anthropic", "openai"] {
        let release = Arc::new(tokio::sync::Notify::new());
        let held = Reply::StreamHeld { pieces: vec!["first ".into(), "second".into()], release: release.clone() };
        // Each SDK talks to the other API's provider.
        let provider = match sdk {
            "anthropic" => MockProvider::start_cycling("gpt", vec![held]).await,
            _ => MockProvider::start_anthropic("claude", vec![held]).await,
        };
        let config = match sdk {
            "anthropic" => ConfigBuilder::new().provider("p", &provider.url()),
            _ => ConfigBuilder::new().anthropic_provider("p", &provider.url()),
        }
        .route("assistant", None, 30_000, &["p"]);
        let gw = TestGateway::start(&config).await;
        let mut running = SdkCall::start(&call(sdk, &gw, "assistant", true)).await;
        // The provider holds the rest of its answer until the SDK has shown the first piece.
        assert_eq!(running.next_piece(PATIENCE).await, "first ", "{sdk}");
        release.notify_one();
        let r = running.result(PATIENCE).await;
        assert_eq!(ok(&r)["text"], "first second", "{sdk}: {r}");
    }
}

#[tokio::test]
async fn tool_calls_cross_between_the_apis_through_both_sdks() {
    init_tracing();
    let tool = || Reply::ToolCall { name: "get_weather".into(), arguments: r#"{"city":"Paris"}"#.into() };
    let gpt = MockProvider::start_cycling("gpt", vec![tool()]).await;
    let claude = MockProvider::start_anthropic("claude", vec![tool()]).await;
    let config = ConfigBuilder::new()
        .provider("gpt", &gpt.url())
        .anthropic_provider("claude", &claude.url())
        .route("via-gpt", None, 5000, &["gpt"])
        .route("via-claude", None, 5000, &["claude"]);
    let gw = TestGateway::start(&config).await;
    for stream in [false, true] {
        let mut args = call("anthropic", &gw, "via-gpt", stream);
        args["tools"] = true.into();
        let r = sdk_call(args).await;
        let r = ok(&r);
        assert_eq!(r["stop_reason"], "tool_use", "{r}");
        assert_eq!(r["tool_uses"], json!([{"name": "get_weather", "input": {"city": "Paris"}}]));

        let mut args = call("openai", &gw, "via-claude", stream);
        args["tools"] = true.into();
        let r = sdk_call(args).await;
        let r = ok(&r);
        assert_eq!(r["finish_reason"], "tool_calls", "{r}");
        assert_eq!(r["tool_calls"], json!([{"name": "get_weather", "arguments": {"city": "Paris"}}]));
    }
    let sent: Value = serde_json::from_str(&claude.seen()[0].body).unwrap();
    assert_eq!(sent["tools"][0]["input_schema"]["required"], json!(["city"]), "{sent}");
}

#[tokio::test]
async fn errors_surface_as_each_sdks_own_exception_types() {
    init_tracing();
    let refusing_gpt = MockProvider::start_cycling(
        "gpt",
        vec![Reply::bad_request("invalid_value", "max_tokens is too large for this model")],
    )
    .await;
    let down_claude = MockProvider::start_anthropic("claude", vec![Reply::anthropic_overloaded()]).await;
    let down_gpt = MockProvider::start_cycling("gpt-down", vec![Reply::status(503)]).await;
    let config = ConfigBuilder::new()
        .provider("gpt", &refusing_gpt.url())
        .anthropic_provider("claude", &down_claude.url())
        .provider("gpt-down", &down_gpt.url())
        .route("refusing", None, 5000, &["gpt"])
        .route("down", None, 3000, &["claude", "gpt-down"]);
    let gw = TestGateway::start(&config).await;
    let expect = |r: &Value, class: &str, status: u16| {
        assert_eq!(
            (r["ok"].as_bool(), r["class"].as_str(), r["status"].as_u64()),
            (Some(false), Some(class), Some(status.into())),
            "{r}"
        );
    };
    for sdk in ["anthropic", "openai"] {
        let r = sdk_call(call(sdk, &gw, "no-such-model", false)).await;
        expect(&r, "NotFoundError", 404);

        // A provider's refusal keeps its message, in the client's error shape.
        let r = sdk_call(call(sdk, &gw, "refusing", false)).await;
        expect(&r, "BadRequestError", 400);
        assert!(r["message"].as_str().unwrap().contains("max_tokens is too large"), "{r}");
        let kind = match sdk {
            "anthropic" => &r["body"]["error"]["type"],
            _ => &r["body"]["type"],
        };
        assert_eq!(kind, "invalid_request_error", "{r}");

        // Every provider down: a 503 with Retry-After.
        let r = sdk_call(call(sdk, &gw, "down", false)).await;
        let class = if sdk == "anthropic" { "ServiceUnavailableError" } else { "InternalServerError" };
        expect(&r, class, 503);
        assert!(r["retry_after"].as_str().is_some_and(|s| s.parse::<u64>().is_ok()), "{r}");
    }
}
