//! Translations checked against recorded answers and event streams in the
//! exact shapes OpenAI and Anthropic send them (fields the gateway does not
//! model included: `logprobs`, `service_tier`, `system_fingerprint`, cache
//! token counts, `cache_control`, images). Streams are fed whole and one
//! byte at a time; both must give the same events.

use serde_json::{Value, json};
use switchyard_wire::anthropic::{MessagesRequest, MessagesResponse};
use switchyard_wire::chat::{ChatRequest, ChatResponse};
use switchyard_wire::translate::stream::{AnthropicToChat, ChatToAnthropic};
use switchyard_wire::translate::{
    chat_response_to_messages, chat_to_messages, messages_response_to_chat, messages_to_chat,
};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `(event name or "", data)` of each event of an SSE text.
fn events(sse: &str) -> Vec<(String, Value)> {
    sse.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e.lines().find_map(|l| l.strip_prefix("event: ")).unwrap_or_default().to_owned();
            let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap_or("null");
            (name, if data == "[DONE]" { json!("[DONE]") } else { serde_json::from_str(data).unwrap() })
        })
        .collect()
}

/// Feeds `input` whole and byte by byte; asserts both give the same output.
fn feed_both_ways(
    mut whole: impl FnMut(&[u8]) -> String,
    mut bytewise: impl FnMut(&[u8]) -> String,
    input: &str,
) -> String {
    let at_once = whole(input.as_bytes());
    let piecemeal: String = input.as_bytes().chunks(1).map(&mut bytewise).collect();
    assert_eq!(at_once, piecemeal, "chunk boundaries changed the translation");
    at_once
}

#[test]
fn a_recorded_openai_completion_with_a_tool_call_becomes_an_anthropic_message() {
    let completion: ChatResponse = serde_json::from_str(&fixture("openai_completion_tool_calls.json")).unwrap();
    let translated = chat_response_to_messages(&completion);
    let message = serde_json::to_value(&translated.value).unwrap();
    assert_eq!(message["type"], "message");
    assert_eq!(message["model"], "gpt-4.1-2025-04-14");
    assert_eq!(message["content"][0], json!({"type": "text", "text": "Let me check the weather."}));
    assert_eq!(
        message["content"][1],
        json!({"type": "tool_use", "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA", "name": "get_weather",
               "input": {"location": "Paris, France"}})
    );
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(message["usage"], json!({"input_tokens": 82, "output_tokens": 17}));
    // It parses as what Anthropic's clients expect.
    let _: MessagesResponse = serde_json::from_value(message).unwrap();
}

#[test]
fn a_recorded_anthropic_message_with_tool_use_becomes_an_openai_completion() {
    let message: MessagesResponse = serde_json::from_str(&fixture("anthropic_message_tool_use.json")).unwrap();
    let completion = serde_json::to_value(messages_response_to_chat(&message, 1_741_569_952).value).unwrap();
    assert_eq!(
        (completion["object"].as_str(), completion["created"].as_u64()),
        (Some("chat.completion"), Some(1_741_569_952))
    );
    let choice = &completion["choices"][0];
    assert_eq!(choice["message"]["content"], "I'll check the current weather in Paris for you.");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!((call["id"].as_str(), call["type"].as_str()), (Some("toolu_01A09q90qw90lq917835lq9"), Some("function")));
    let arguments: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"location": "Paris, France", "unit": "celsius"}));
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(completion["usage"], json!({"prompt_tokens": 472, "completion_tokens": 89, "total_tokens": 561}));
    let _: ChatResponse = serde_json::from_value(completion).unwrap();
}

#[test]
fn a_recorded_openai_stream_becomes_the_anthropic_event_sequence() {
    let stream = fixture("openai_stream_tool_calls.sse");
    let (mut whole, mut bytewise) = (ChatToAnthropic::new(), ChatToAnthropic::new());
    let out = feed_both_ways(|b| whole.feed(b), |b| bytewise.feed(b), &stream);
    assert!(whole.finished());
    let events = events(&out);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    let mut expected = vec!["message_start", "content_block_start", "content_block_delta", "content_block_delta"];
    expected.extend(["content_block_stop", "content_block_start"]);
    expected.extend(["content_block_delta"; 6]);
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names, expected);
    // Every event's data names its own type, as Anthropic's do.
    assert!(events.iter().all(|(name, data)| data["type"] == name.as_str()));
    let text: String = events.iter().filter_map(|(_, d)| d["delta"]["text"].as_str()).collect();
    assert_eq!(text, "Let me check.");
    assert_eq!(events[5].1["content_block"]["id"], "call_DdmO9pD3xa9XTPNJ32zg2hcA");
    let json: String = events.iter().filter_map(|(_, d)| d["delta"]["partial_json"].as_str()).collect();
    assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), json!({"location": "Paris, France"}));
    let delta = &events[events.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(delta["usage"], json!({"input_tokens": 82, "output_tokens": 17}));
}

#[test]
fn a_recorded_anthropic_stream_becomes_openai_chunks() {
    let stream = fixture("anthropic_stream_tool_use.sse");
    let (mut whole, mut bytewise) = (AnthropicToChat::new(7, true), AnthropicToChat::new(7, true));
    let out = feed_both_ways(|b| whole.feed(b), |b| bytewise.feed(b), &stream);
    assert!(whole.finished());
    let events = events(&out);
    assert!(events.iter().all(|(name, _)| name.is_empty()), "OpenAI streams carry data lines only");
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let chunks: Vec<&Value> = events.iter().map(|(_, d)| d).filter(|d| *d != "[DONE]").collect();
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk" && c["id"] == "msg_014p7gG3wDgGV9EUtLvnow3U"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "Okay, let's check the weather for Paris:");
    let calls: Vec<&Value> = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0)).collect();
    assert_eq!((calls[0]["index"].as_u64(), calls[0]["function"]["name"].as_str()), (Some(0), Some("get_weather")));
    let arguments: String = calls.iter().filter_map(|c| c["function"]["arguments"].as_str()).collect();
    assert_eq!(serde_json::from_str::<Value>(&arguments).unwrap(), json!({"location": "Paris, France"}));
    let finish: Vec<&str> = chunks.iter().filter_map(|c| c["choices"][0]["finish_reason"].as_str()).collect();
    assert_eq!(finish, ["tool_calls"]);
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(*usage, json!({"prompt_tokens": 472, "completion_tokens": 89, "total_tokens": 561}));
}

#[test]
fn a_recorded_mid_stream_overload_reaches_an_openai_client_as_an_error_chunk() {
    let stream = fixture("anthropic_stream_overloaded.sse");
    let mut t = AnthropicToChat::new(7, false);
    let events = events(&t.feed(stream.as_bytes()));
    assert!(t.finished());
    let (_, last) = events.last().unwrap();
    assert_eq!(last["error"]["message"], "Overloaded");
    let text: String = events.iter().filter_map(|(_, c)| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "Partial");
}

#[test]
fn a_recorded_openai_request_becomes_an_anthropic_request_and_says_what_it_dropped() {
    let request: ChatRequest = serde_json::from_str(&fixture("openai_request_tools.json")).unwrap();
    let translated = chat_to_messages(&request);
    let m = serde_json::to_value(&translated.value).unwrap();
    assert_eq!(m["system"], "You are a weather assistant.");
    assert_eq!(m["max_tokens"], 300, "max_completion_tokens wins");
    assert_eq!(m["temperature"], 1.0, "clamped to Anthropic's range");
    assert_eq!((m["top_p"].as_f64(), &m["stop_sequences"]), (Some(0.9), &json!(["END"])));
    assert_eq!(m["tool_choice"], json!({"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true}));
    assert_eq!(m["tools"][0]["input_schema"]["required"], json!(["location"]));
    assert_eq!(m["metadata"], json!({"user_id": "user-1234"}));
    let roles: Vec<&str> = m["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "user"], "tool result and the next user turn merge, roles alternate");
    assert_eq!(m["messages"][1]["content"][0]["input"], json!({"location": "Paris, France"}));
    assert_eq!(m["messages"][2]["content"][0]["type"], "tool_result");
    assert_eq!(m["messages"][2]["content"][0]["content"], "18°C and cloudy");
    assert_eq!(m["messages"][2]["content"][1], json!({"type": "text", "text": "Thanks!"}));
    let mut dropped = translated.dropped.clone();
    dropped.sort();
    assert_eq!(dropped, ["messages[4].name", "n"]);
    assert_eq!(
        m["messages"][0]["content"][1],
        json!({"type": "image", "source": {"type": "url", "url": "https://example.com/paris.jpg"}})
    );
    let _: MessagesRequest = serde_json::from_value(m).unwrap();
}

#[test]
fn a_recorded_anthropic_request_becomes_an_openai_request_and_says_what_it_dropped() {
    let request: MessagesRequest = serde_json::from_str(&fixture("anthropic_request_tools.json")).unwrap();
    let translated = messages_to_chat(&request);
    let c = serde_json::to_value(&translated.value).unwrap();
    let roles: Vec<&str> = c["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool", "user"]);
    assert_eq!(c["messages"][0]["content"], "You are a weather assistant.");
    assert_eq!(c["messages"][2]["tool_calls"][0]["function"]["name"], "get_weather");
    assert_eq!(
        c["messages"][3],
        json!({"role": "tool", "content": "18°C and cloudy", "tool_call_id": "toolu_01A09q90qw90lq917835lq9"})
    );
    assert_eq!(
        c["messages"][4]["content"],
        json!([{"type": "text", "text": "Thanks! And this photo?"},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}])
    );
    assert_eq!((c["max_tokens"].as_u64(), c["stream"].as_bool()), (Some(1024), Some(true)));
    assert_eq!((c["tool_choice"].as_str(), &c["stop"]), (Some("required"), &json!(["END"])));
    assert_eq!(c["tools"][0]["function"]["parameters"]["required"], json!(["location"]));
    assert_eq!(c["user"], "user-1234");
    assert_eq!(c["parallel_tool_calls"], false);
    let mut dropped = translated.dropped.clone();
    dropped.sort();
    assert_eq!(dropped, ["top_k"]);
    let _: ChatRequest = serde_json::from_value(c).unwrap();
}
