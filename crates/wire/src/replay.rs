//! A complete OpenAI chat completion replayed as the SSE stream a streaming
//! client expects: how a cached answer reaches a client that asked for
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
}
