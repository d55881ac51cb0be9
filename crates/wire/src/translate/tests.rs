//! Translations checked against requests and answers in the shapes the two
//! APIs document.

use super::*;

const CHAT_REQUEST: &str = r#"{
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"},
                                     {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18°C"}
    ],
    "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
    "tool_choice": "required",
    "max_tokens": 300,
    "temperature": 1.5,
    "stop": "END",
    "n": 1,
    "presence_penalty": 0.5
}"#;

const MESSAGES_RESPONSE: &str = r#"{
    "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
    "content": [{"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "Paris"}}],
    "stop_reason": "tool_use", "stop_sequence": null,
    "usage": {"input_tokens": 25, "output_tokens": 12}
}"#;

const CHAT_RESPONSE: &str = r#"{
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi there", "refusal": null},
                 "finish_reason": "length"}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}
}"#;

#[test]
fn an_openai_request_becomes_an_anthropic_one() {
    let request: ChatRequest = serde_json::from_str(CHAT_REQUEST).unwrap();
    let Translated { value: m, mut dropped } = chat_to_messages(&request);
    assert_eq!(m.system, Some(Content::Text("You are terse.".into())));
    assert_eq!((m.max_tokens, m.temperature), (300, Some(1.0)), "temperature clamped to Anthropic's range");
    assert_eq!(m.stop_sequences.as_deref(), Some(&["END".to_owned()][..]));
    assert_eq!(m.tool_choice, Some(ToolChoice::of(crate::anthropic::ToolChoiceKind::Any)));
    assert_eq!(m.tools.as_ref().unwrap()[0].input_schema["properties"]["city"]["type"], "string");
    let roles: Vec<&str> = m.messages.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(roles, ["user", "assistant", "user"], "alternating, system lifted out");
    let Content::Blocks(call) = &m.messages[1].content else { panic!() };
    assert_eq!(
        call[0],
        Block::ToolUse { id: "call_1".into(), name: "get_weather".into(), input: json!({"city": "Paris"}) }
    );
    let Content::Blocks(result) = &m.messages[2].content else { panic!() };
    assert!(matches!(&result[0], Block::ToolResult { tool_use_id, .. } if tool_use_id == "call_1"));
    let Content::Blocks(question) = &m.messages[0].content else { panic!() };
    assert!(matches!(&question[1], Block::Other(image) if image["source"]["url"] == "https://x/y.png"), "{question:?}");
    dropped.sort();
    assert_eq!(dropped, ["n", "presence_penalty"]);
}

#[test]
fn an_anthropic_request_becomes_an_openai_one() {
    let request: MessagesRequest = serde_json::from_str(super::super::anthropic::tests::REQUEST).unwrap();
    let Translated { value: c, dropped } = messages_to_chat(&request);
    let roles: Vec<&str> = c.messages.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool"]);
    let assistant = &c.messages[2];
    assert_eq!(assistant.content, Some(ChatContent::Text("Let me check.".into())));
    let call = &assistant.tool_calls.as_ref().unwrap()[0];
    assert_eq!((call.function.name.as_str(), call.function.arguments.as_str()), ("get_weather", r#"{"city":"Paris"}"#));
    assert_eq!(c.messages[3].tool_call_id.as_deref(), Some("toolu_01"));
    assert_eq!(c.max_tokens, Some(1024));
    assert_eq!(c.tool_choice, Some(json!("auto")));
    assert_eq!(dropped, ["top_k"]);
    assert_eq!(c.extra["user"], "u-1", "metadata.user_id is carried as user");
    // Both directions: back again, the conversation is the same.
    let back = chat_to_messages(&c).value;
    assert_eq!(back.messages.len(), request.messages.len());
    assert_eq!(back.tools, request.tools);
}

#[test]
fn an_anthropic_answer_becomes_an_openai_one() {
    let response: MessagesResponse = serde_json::from_str(MESSAGES_RESPONSE).unwrap();
    let c = messages_response_to_chat(&response, 42).value;
    assert_eq!((c.object.as_str(), c.created), ("chat.completion", 42));
    let choice = &c.choices[0];
    assert_eq!(choice.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(choice.message.content, Some(ChatContent::Text("Checking.".into())));
    assert_eq!(choice.message.tool_calls.as_ref().unwrap()[0].id, "toolu_9");
    assert_eq!(c.usage, Some(ChatUsage { prompt_tokens: 25, completion_tokens: 12, total_tokens: 37 }));
}

#[test]
fn an_openai_answer_becomes_an_anthropic_one() {
    let response: ChatResponse = serde_json::from_str(CHAT_RESPONSE).unwrap();
    let Translated { value: m, dropped } = chat_response_to_messages(&response);
    assert_eq!(m.content, [Block::Text { text: "Hi there".into() }]);
    assert_eq!(m.stop_reason.as_deref(), Some("max_tokens"));
    assert_eq!((m.usage.input_tokens, m.usage.output_tokens), (9, 2));
    assert_eq!(dropped, ["choices[0].message.refusal"]);
    let json: Value = serde_json::to_value(&m).unwrap();
    assert_eq!((json["type"].as_str(), json["role"].as_str()), (Some("message"), Some("assistant")));
}

#[test]
fn stop_and_finish_reasons_map_both_ways() {
    for (stop, finish) in
        [("end_turn", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"), ("refusal", "content_filter")]
    {
        assert_eq!(finish_reason(stop), finish);
        assert_eq!(stop_reason(finish), stop);
    }
    assert_eq!(finish_reason("stop_sequence"), "stop");
}
