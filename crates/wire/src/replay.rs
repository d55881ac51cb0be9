//! A complete answer replayed as the SSE stream a streaming client of its
//! API expects: how a cached answer reaches a client that asked for
//! `stream: true`.

use serde_json::{Map, Value, json};

/// The `chat.completion` JSON in `body` as `chat.completion.chunk` events:
/// per choice, one chunk carrying the whole message as its delta, then one
/// with its `finish_reason`; a last chunk with `usage` when the answer had
/// one; then `data: [DONE]`. `None` when `body` is not a chat completion.
pub fn completion_as_sse(body: &[u8]) -> Option<String> {
    let completion: Value = serde_json::from_slice(body).ok()?;
    let choices = completion.get("choices")?.as_array()?;
    let chunk = |choices: Value, usage: Option<&Value>| {
        let mut c = Map::new();
        for key in ["id", "created", "model", "system_fingerprint"] {
            if let Some(v) = completion.get(key) {
                c.insert(key.into(), v.clone());
            }
        }
        c.insert("object".into(), "chat.completion.chunk".into());
        c.insert("choices".into(), choices);
        if let Some(usage) = usage {
            c.insert("usage".into(), usage.clone());
        }
        format!("data: {}\n\n", Value::Object(c))
    };
    let mut out = String::new();
    for choice in choices {
        let index = choice.get("index").cloned().unwrap_or(json!(0));
        let mut delta = choice.get("message").and_then(Value::as_object).cloned().unwrap_or_default();
        // In a stream, each tool call carries its position.
        if let Some(Value::Array(calls)) = delta.get_mut("tool_calls") {
            for (i, call) in calls.iter_mut().enumerate() {
                if let Value::Object(call) = call {
                    call.insert("index".into(), json!(i));
                }
            }
        }
        out.push_str(&chunk(json!([{"index": index, "delta": delta, "finish_reason": null}]), None));
        let finish = choice.get("finish_reason").cloned().unwrap_or(Value::Null);
        out.push_str(&chunk(json!([{"index": index, "delta": {}, "finish_reason": finish}]), None));
    }
    if let Some(usage) = completion.get("usage") {
        out.push_str(&chunk(json!([]), Some(usage)));
    }
    out.push_str("data: [DONE]\n\n");
    Some(out)
}

/// The Anthropic message JSON in `body` as the Messages API's event
/// sequence: `message_start`, per content block `content_block_start`, one
/// delta carrying the whole text or tool input, `content_block_stop`; then
/// `message_delta` (stop reason, usage) and `message_stop`. `None` when
/// `body` is not a message.
pub fn message_as_sse(body: &[u8]) -> Option<String> {
    let message: Value = serde_json::from_slice(body).ok()?;
    if message.get("type")? != "message" {
        return None;
    }
    let blocks = message.get("content")?.as_array()?;
    let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let mut start = message.as_object()?.clone();
    start.insert("content".into(), json!([]));
    start.insert("stop_reason".into(), Value::Null);
    start.insert("stop_sequence".into(), Value::Null);
    let mut out = event("message_start", json!({"type": "message_start", "message": start}));
    for (index, block) in blocks.iter().enumerate() {
        let (opening, delta) = match block["type"].as_str() {
            Some("text") => {
                (json!({"type": "text", "text": ""}), Some(json!({"type": "text_delta", "text": block["text"]})))
            }
            Some("tool_use") => (
                json!({"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}),
                Some(json!({"type": "input_json_delta", "partial_json": block["input"].to_string()})),
            ),
            _ => (block.clone(), None),
        };
        out.push_str(&event(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": opening}),
        ));
        if let Some(delta) = delta {
            out.push_str(&event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": delta}),
            ));
        }
        out.push_str(&event("content_block_stop", json!({"type": "content_block_stop", "index": index})));
    }
    let delta = json!({"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]});
    out.push_str(&event("message_delta", json!({"type": "message_delta", "delta": delta, "usage": message["usage"]})));
    out.push_str(&event("message_stop", json!({"type": "message_stop"})));
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_completion_becomes_chunks_a_client_can_reassemble() {
        let body = br#"{"id":"c1","object":"chat.completion","created":7,"model":"m",
            "choices":[{"index":0,"message":{"role":"assistant","content":"Hello",
              "tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{}"}}]},
              "finish_reason":"tool_calls"}],
            "usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}"#;
        let sse = completion_as_sse(body).unwrap();
        let events: Vec<Value> = sse
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter(|e| *e != "[DONE]")
            .map(|e| serde_json::from_str(e).unwrap())
            .collect();
        assert_eq!(events.len(), 3);
        assert!(events.iter().all(|e| e["object"] == "chat.completion.chunk" && e["id"] == "c1"));
        assert_eq!(events[0]["choices"][0]["delta"]["content"], "Hello");
        assert_eq!(events[0]["choices"][0]["delta"]["tool_calls"][0]["index"], 0);
        assert_eq!(events[1]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(events[2]["usage"]["total_tokens"], 6);
        assert!(sse.ends_with("data: [DONE]\n\n"));
        assert_eq!(completion_as_sse(b"{\"error\":{}}"), None);
    }

    #[test]
    fn a_message_becomes_the_anthropic_event_sequence() {
        let body = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude",
            "content":[{"type":"text","text":"Let me look."},
                       {"type":"tool_use","id":"toolu_1","name":"f","input":{"a":1}}],
            "stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":5,"output_tokens":9}}"#;
        let sse = message_as_sse(body).unwrap();
        let names: Vec<&str> = sse.split("\n\n").filter_map(|e| e.strip_prefix("event: ")?.lines().next()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let data: Vec<Value> = sse
            .split("\n\n")
            .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        assert_eq!(data[0]["message"]["content"], json!([]));
        assert_eq!(data[2]["delta"]["text"], "Let me look.");
        assert_eq!(data[5]["delta"]["partial_json"], r#"{"a":1}"#);
        assert_eq!(data[7]["delta"]["stop_reason"], "tool_use");
        assert_eq!(data[7]["usage"]["output_tokens"], 9);
        assert_eq!(message_as_sse(br#"{"type":"error","error":{}}"#), None);
    }
}
