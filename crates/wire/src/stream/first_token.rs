//! The commit point of a stream: its first content-bearing event. Before it,
//! a provider sends only a preamble (OpenAI's role-only first chunk and
//! empty deltas, Anthropic's `message_start`, `content_block_start` of an
//! empty text block, `ping`, SSE comments); the gateway holds that back so
//! that a provider which stalls or errors after its preamble is failed over
//! like one that never answered.

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::sse::Event;
use crate::{Api, OutcomeKind};

/// What one provider event means for the commit point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventClass {
    /// Nothing the client needs yet (role, empty delta, ping, usage).
    Preamble,
    /// Text, a tool call, or thinking: the stream commits here.
    Content,
    /// The answer ended (a finish or stop reason, the end event) without
    /// content: an empty answer, committed as it is.
    End,
    /// The provider's error event, classified like an HTTP error of the
    /// same meaning, and its message.
    Error(OutcomeKind, String),
}

fn non_empty_str(v: &Value) -> bool {
    v.as_str().is_some_and(|s| !s.is_empty())
}

/// How an error object's type or code reads as an outcome kind.
fn error_kind(kind: &str) -> OutcomeKind {
    let kind = kind.to_ascii_lowercase();
    if kind.contains("rate_limit") || kind == "requests" || kind == "tokens" {
        OutcomeKind::RateLimited
    } else if kind.contains("overloaded") {
        OutcomeKind::Overloaded
    } else {
        OutcomeKind::ServerError
    }
}

fn error_of(error: &Value) -> EventClass {
    let kind = [&error["type"], &error["code"]].iter().find_map(|v| v.as_str()).unwrap_or("");
    let message = error["message"].as_str().unwrap_or("the provider sent an error event");
    EventClass::Error(error_kind(kind), crate::text::truncate(message, 300).to_owned())
}

/// Classifies one event of a stream in `api`'s format.
pub fn classify(api: Api, event: &Event) -> EventClass {
    match api {
        Api::OpenAi => classify_openai(&event.data),
        Api::Anthropic => classify_anthropic(event),
    }
}

// The fields the commit point reads, borrowed from the event: a chunk is
// classified without building a JSON tree. Whatever does not fit these
// shapes (an error event, odd types) is classified from a `Value` instead.

/// An OpenAI chunk.
#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
    #[serde(borrow, default)]
    choices: Option<Vec<Choice<'a>>>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow, default)]
    delta: Option<Delta<'a>>,
    #[serde(default)]
    finish_reason: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    reasoning_content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    reasoning: Option<&'a RawValue>,
    #[serde(borrow, default)]
    refusal: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_calls: Option<&'a RawValue>,
}

/// An Anthropic event.
#[derive(Deserialize)]
struct Message<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<&'a str>,
    #[serde(borrow, default)]
    content_block: Option<Block<'a>>,
    #[serde(default)]
    delta: Option<StopDelta>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Block<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<&'a str>,
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
    #[serde(borrow, default)]
    thinking: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct StopDelta {
    #[serde(default)]
    stop_reason: Option<IgnoredAny>,
}

/// A JSON string with at least one character.
fn non_empty_raw_str(v: Option<&RawValue>) -> bool {
    v.is_some_and(|v| v.get().starts_with('"') && v.get().len() > 2)
}

/// A JSON array with at least one element.
fn non_empty_raw_array(v: Option<&RawValue>) -> bool {
    v.and_then(|v| v.get().strip_prefix('[')).is_some_and(|rest| !rest.trim_start().starts_with(']'))
}

fn classify_openai(data: &str) -> EventClass {
    if data.trim() == "[DONE]" {
        return EventClass::End;
    }
    let Ok(chunk) = serde_json::from_str::<Chunk<'_>>(data) else { return classify_openai_value(data) };
    if chunk.error.is_some() {
        return classify_openai_value(data);
    }
    let mut finished = false;
    for choice in chunk.choices.iter().flatten() {
        if let Some(d) = &choice.delta {
            let content = [d.content, d.reasoning_content, d.reasoning, d.refusal].into_iter().any(non_empty_raw_str);
            if content || non_empty_raw_array(d.tool_calls) {
                return EventClass::Content;
            }
        }
        finished |= choice.finish_reason.is_some();
    }
    if finished { EventClass::End } else { EventClass::Preamble }
}

fn classify_openai_value(data: &str) -> EventClass {
    let Ok(chunk) = serde_json::from_str::<Value>(data) else {
        return EventClass::Error(OutcomeKind::InvalidResponse, "an event that is not JSON".into());
    };
    if chunk.get("error").is_some_and(|e| !e.is_null()) {
        return error_of(&chunk["error"]);
    }
    let mut finished = false;
    for choice in chunk["choices"].as_array().into_iter().flatten() {
        let delta = &choice["delta"];
        let content = ["content", "reasoning_content", "reasoning", "refusal"].iter().any(|k| non_empty_str(&delta[k]));
        let tools = delta["tool_calls"].as_array().is_some_and(|t| !t.is_empty());
        if content || tools {
            return EventClass::Content;
        }
        finished |= !choice["finish_reason"].is_null();
    }
    if finished { EventClass::End } else { EventClass::Preamble }
}

fn classify_anthropic(event: &Event) -> EventClass {
    let Ok(data) = serde_json::from_str::<Message<'_>>(&event.data) else { return classify_anthropic_value(event) };
    if data.error.is_some() {
        return classify_anthropic_value(event);
    }
    match data.kind.or(event.event.as_deref()).unwrap_or_default() {
        "content_block_delta" => EventClass::Content,
        "content_block_start" => match data.content_block {
            Some(Block { kind: Some("text"), text, .. }) if !non_empty_raw_str(text) => EventClass::Preamble,
            Some(Block { kind: Some("thinking"), thinking, .. }) if !non_empty_raw_str(thinking) => {
                EventClass::Preamble
            }
            _ => EventClass::Content,
        },
        "message_delta" if data.delta.is_some_and(|d| d.stop_reason.is_some()) => EventClass::End,
        "message_stop" => EventClass::End,
        "error" => classify_anthropic_value(event),
        _ => EventClass::Preamble,
    }
}

fn classify_anthropic_value(event: &Event) -> EventClass {
    let Ok(data) = serde_json::from_str::<Value>(&event.data) else {
        return match event.event.as_deref() {
            Some("ping") | None => EventClass::Preamble,
            _ => EventClass::Error(OutcomeKind::InvalidResponse, "an event that is not JSON".into()),
        };
    };
    let kind = data["type"].as_str().or(event.event.as_deref()).unwrap_or_default();
    match kind {
        "content_block_delta" => EventClass::Content,
        "content_block_start" => {
            let block = &data["content_block"];
            match block["type"].as_str() {
                Some("text") if !non_empty_str(&block["text"]) => EventClass::Preamble,
                Some("thinking") if !non_empty_str(&block["thinking"]) => EventClass::Preamble,
                _ => EventClass::Content,
            }
        }
        "message_delta" if !data["delta"]["stop_reason"].is_null() => EventClass::End,
        "message_stop" => EventClass::End,
        "error" => error_of(&data["error"]),
        _ => EventClass::Preamble,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(text: &str) -> Event {
        Event { event: None, data: text.into() }
    }

    fn named(name: &str, text: &str) -> Event {
        Event { event: Some(name.into()), data: text.into() }
    }

    #[test]
    fn openai_role_and_empty_deltas_are_preamble_text_and_tools_commit() {
        let role = r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#;
        assert_eq!(classify(Api::OpenAi, &data(role)), EventClass::Preamble);
        let text = r#"{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#;
        assert_eq!(classify(Api::OpenAi, &data(text)), EventClass::Content);
        let tool = r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"f"}}]}}]}"#;
        assert_eq!(classify(Api::OpenAi, &data(tool)), EventClass::Content);
        let think = r#"{"choices":[{"index":0,"delta":{"reasoning_content":"hmm"}}]}"#;
        assert_eq!(classify(Api::OpenAi, &data(think)), EventClass::Content);
        let stop = r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;
        assert_eq!(classify(Api::OpenAi, &data(stop)), EventClass::End);
        assert_eq!(classify(Api::OpenAi, &data("[DONE]")), EventClass::End);
    }

    #[test]
    fn error_events_read_as_the_failure_they_name() {
        let e = r#"{"error":{"message":"busy","type":"server_error"}}"#;
        assert_eq!(classify(Api::OpenAi, &data(e)), EventClass::Error(OutcomeKind::ServerError, "busy".into()));
        let o = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(
            classify(Api::Anthropic, &named("error", o)),
            EventClass::Error(OutcomeKind::Overloaded, "Overloaded".into())
        );
        let r = r#"{"error":{"message":"slow down","code":"rate_limit_exceeded"}}"#;
        assert!(matches!(classify(Api::OpenAi, &data(r)), EventClass::Error(OutcomeKind::RateLimited, _)));
    }

    #[test]
    fn anthropic_preamble_until_a_delta_or_a_tool_block() {
        let start = r#"{"type":"message_start","message":{"id":"m"}}"#;
        assert_eq!(classify(Api::Anthropic, &named("message_start", start)), EventClass::Preamble);
        let block = r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#;
        assert_eq!(classify(Api::Anthropic, &named("content_block_start", block)), EventClass::Preamble);
        assert_eq!(classify(Api::Anthropic, &named("ping", r#"{"type":"ping"}"#)), EventClass::Preamble);
        let tool =
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"f"}}"#;
        assert_eq!(classify(Api::Anthropic, &named("content_block_start", tool)), EventClass::Content);
        let delta = r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#;
        assert_eq!(classify(Api::Anthropic, &named("content_block_delta", delta)), EventClass::Content);
        let stop = r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"}}"#;
        assert_eq!(classify(Api::Anthropic, &named("message_delta", stop)), EventClass::End);
    }

    #[test]
    fn the_borrowed_reading_agrees_with_the_json_tree_on_every_shape() {
        let openai = [
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            r#"{"choices":[{"delta":{"content":"Hi"}}]}"#,
            r#"{"choices":[{"delta":{"content":null,"tool_calls":[]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[ {"index":0} ]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[ ]}}]}"#,
            r#"{"choices":[{"delta":{"refusal":"no"}}]}"#,
            r#"{"choices":[{"delta":{"reasoning":"\u0041"}}]}"#,
            r#"{"choices":[{"delta":{"content":7}}]}"#,
            r#"{"choices":[{"delta":null,"finish_reason":"stop"}]}"#,
            r#"{"choices":[{"delta":"odd"}]}"#,
            r#"{"choices":null}"#,
            r#"{"choices":{}}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":3}}"#,
            r#"{"error":null,"choices":[{"delta":{"content":"x"}}]}"#,
            r#"{"error":{"code":"rate_limit_exceeded","message":"slow down"}}"#,
            r#"[1]"#,
            r#"not json"#,
        ];
        for e in openai {
            assert_eq!(classify_openai(e), classify_openai_value(e), "{e}");
        }
        let anthropic = [
            (Some("message_start"), r#"{"type":"message_start","message":{"usage":{"input_tokens":3}}}"#),
            (
                Some("content_block_start"),
                r#"{"type":"content_block_start","content_block":{"type":"text","text":""}}"#,
            ),
            (
                Some("content_block_start"),
                r#"{"type":"content_block_start","content_block":{"type":"text","text":"Hi"}}"#,
            ),
            (
                Some("content_block_start"),
                r#"{"type":"content_block_start","content_block":{"type":"thinking","thinking":""}}"#,
            ),
            (
                Some("content_block_start"),
                r#"{"type":"content_block_start","content_block":{"type":"tool_use","name":"f"}}"#,
            ),
            (Some("content_block_start"), r#"{"type":"content_block_start"}"#),
            (Some("content_block_delta"), r#"{"type":"content_block_delta","delta":{"type":"text_delta","text":"x"}}"#),
            (Some("message_delta"), r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"}}"#),
            (Some("message_delta"), r#"{"type":"message_delta","delta":{"stop_reason":null}}"#),
            (Some("message_delta"), r#"{"type":"message_delta","delta":"odd"}"#),
            (Some("message_stop"), r#"{"type":"message_stop"}"#),
            (Some("message_stop"), r#"{}"#),
            (Some("ping"), r#"{"type":"ping"}"#),
            (Some("ping"), "not json"),
            (Some("error"), r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#),
            (None, r#"{"type":7}"#),
        ];
        for (name, e) in anthropic {
            let event = Event { event: name.map(Into::into), data: e.into() };
            assert_eq!(classify_anthropic(&event), classify_anthropic_value(&event), "{name:?} {e}");
        }
    }
}
