//! Streams translated event by event, never buffering the answer: each
//! translator is fed the provider's bytes as they arrive and returns the
//! bytes the client should see now.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::{finish_reason, stop_reason};
use crate::sse::EventReader;

/// A stream on its way from a provider of one API to a client of the other.
#[derive(Debug)]
pub enum StreamTranslator {
    /// Anthropic events for an OpenAI client.
    ToOpenAi(AnthropicToChat),
    /// OpenAI chunks for an Anthropic client.
    ToAnthropic(ChatToAnthropic),
}

impl StreamTranslator {
    /// Feeds provider bytes; returns client bytes (empty while an event is incomplete).
    pub fn feed(&mut self, bytes: &[u8]) -> String {
        match self {
            StreamTranslator::ToOpenAi(t) => t.feed(bytes),
            StreamTranslator::ToAnthropic(t) => t.feed(bytes),
        }
    }

    /// The provider's stream ended without its end event. If the answer was
    /// complete all the same (its stop or finish reason came), the client's
    /// closing events; `None` for a stream that really broke off.
    pub fn end(&mut self) -> Option<String> {
        match self {
            StreamTranslator::ToOpenAi(t) => t.end(),
            StreamTranslator::ToAnthropic(t) => t.end(),
        }
    }
}

/// Anthropic message events → OpenAI `chat.completion.chunk` events.
#[derive(Debug)]
pub struct AnthropicToChat {
    reader: EventReader,
    created: u64,
    include_usage: bool,
    id: String,
    model: String,
    input_tokens: u64,
    output_tokens: u64,
    /// Anthropic block index → OpenAI tool call index.
    tools: HashMap<u64, usize>,
    /// `message_delta` carried a stop reason: the answer is complete.
    stopped: bool,
    done: bool,
}

impl AnthropicToChat {
    /// `created` stamps every chunk; `include_usage` adds OpenAI's usage chunk
    /// at the end (what `stream_options.include_usage` asks for).
    pub fn new(created: u64, include_usage: bool) -> Self {
        AnthropicToChat {
            reader: EventReader::default(),
            created,
            include_usage,
            id: String::new(),
            model: String::new(),
            input_tokens: 0,
            output_tokens: 0,
            tools: HashMap::new(),
            stopped: false,
            done: false,
        }
    }

    /// The usage chunk (when asked for) and `[DONE]`.
    fn close(&mut self, out: &mut String) {
        if self.include_usage {
            let usage = json!({"prompt_tokens": self.input_tokens, "completion_tokens": self.output_tokens,
                               "total_tokens": self.input_tokens + self.output_tokens});
            let chunk = json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                               "model": self.model, "choices": [], "usage": usage});
            out.push_str(&format!("data: {chunk}\n\n"));
        }
        out.push_str("data: [DONE]\n\n");
        self.done = true;
    }

    /// See [`StreamTranslator::end`].
    pub fn end(&mut self) -> Option<String> {
        if self.done || !self.stopped {
            return None;
        }
        let mut out = String::new();
        self.close(&mut out);
        Some(out)
    }

    /// The stream reached `message_stop` (or an error), so `[DONE]` was sent.
    pub fn finished(&self) -> bool {
        self.done
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> String {
        let chunk = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        format!("data: {chunk}\n\n")
    }

    /// Feeds provider bytes; returns client bytes.
    pub fn feed(&mut self, bytes: &[u8]) -> String {
        let mut out = String::new();
        for event in self.reader.feed(bytes) {
            let Ok(data) = serde_json::from_str::<Value>(&event.data) else { continue };
            match data["type"].as_str().unwrap_or_default() {
                "message_start" => {
                    let message = &data["message"];
                    self.id = message["id"].as_str().unwrap_or_default().to_owned();
                    self.model = message["model"].as_str().unwrap_or_default().to_owned();
                    self.input_tokens = message["usage"]["input_tokens"].as_u64().unwrap_or(0);
                    out.push_str(&self.chunk(json!({"role": "assistant", "content": ""}), None));
                }
                "content_block_start" if data["content_block"]["type"] == "tool_use" => {
                    let index = self.tools.len();
                    self.tools.insert(data["index"].as_u64().unwrap_or(0), index);
                    let block = &data["content_block"];
                    let call = json!({"index": index, "id": block["id"], "type": "function",
                                      "function": {"name": block["name"], "arguments": ""}});
                    out.push_str(&self.chunk(json!({"tool_calls": [call]}), None));
                }
                "content_block_delta" => {
                    let delta = &data["delta"];
                    match delta["type"].as_str() {
                        Some("text_delta") => out.push_str(&self.chunk(json!({"content": delta["text"]}), None)),
                        Some("input_json_delta") => {
                            let index = self.tools.get(&data["index"].as_u64().unwrap_or(0)).copied().unwrap_or(0);
                            let call = json!({"index": index, "function": {"arguments": delta["partial_json"]}});
                            out.push_str(&self.chunk(json!({"tool_calls": [call]}), None));
                        }
                        _ => {}
                    }
                }
                "message_delta" => {
                    self.output_tokens = data["usage"]["output_tokens"].as_u64().unwrap_or(self.output_tokens);
                    if let Some(stop) = data["delta"]["stop_reason"].as_str() {
                        self.stopped = true;
                        out.push_str(&self.chunk(json!({}), Some(finish_reason(stop))));
                    }
                }
                "message_stop" => self.close(&mut out),
                "error" => {
                    let message = data["error"]["message"].as_str().unwrap_or("the provider failed mid-stream");
                    let error = crate::openai_error::OpenAiError::server(message, "upstream_stream_error");
                    out.push_str(&String::from_utf8_lossy(&error.to_sse_event()));
                    self.done = true;
                }
                // ping, content_block_start (text), content_block_stop
                _ => {}
            }
        }
        out
    }
}

/// OpenAI `chat.completion.chunk` events → Anthropic message events.
#[derive(Debug, Default)]
pub struct ChatToAnthropic {
    reader: EventReader,
    started: bool,
    /// Index and kind of the open content block.
    open: Option<(u64, bool)>,
    next_block: u64,
    stop_reason: Option<&'static str>,
    input_tokens: Option<u64>,
    output_tokens: u64,
    done: bool,
}

fn event(name: &str, data: Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

impl ChatToAnthropic {
    /// A translator for one stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// The stream reached `[DONE]` (or an error), so `message_stop` was sent.
    pub fn finished(&self) -> bool {
        self.done
    }

    fn close_block(&mut self, out: &mut String) {
        if let Some((index, _)) = self.open.take() {
            out.push_str(&event("content_block_stop", json!({"type": "content_block_stop", "index": index})));
        }
    }

    fn open_block(&mut self, out: &mut String, block: Value, is_text: bool) -> u64 {
        self.close_block(out);
        let index = self.next_block;
        self.next_block += 1;
        out.push_str(&event(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": block}),
        ));
        self.open = Some((index, is_text));
        index
    }

    /// The last block's stop, `message_delta` with the stop reason and
    /// usage, `message_stop`.
    fn close(&mut self, out: &mut String) {
        self.close_block(out);
        let mut usage = json!({"output_tokens": self.output_tokens});
        if let Some(input) = self.input_tokens {
            usage["input_tokens"] = input.into();
        }
        let delta = json!({"type": "message_delta",
            "delta": {"stop_reason": self.stop_reason.unwrap_or("end_turn"), "stop_sequence": null},
            "usage": usage});
        out.push_str(&event("message_delta", delta));
        out.push_str(&event("message_stop", json!({"type": "message_stop"})));
        self.done = true;
    }

    /// See [`StreamTranslator::end`]: complete once a choice finished.
    pub fn end(&mut self) -> Option<String> {
        if self.done || self.stop_reason.is_none() {
            return None;
        }
        let mut out = String::new();
        self.close(&mut out);
        Some(out)
    }

    /// Feeds provider bytes; returns client bytes.
    pub fn feed(&mut self, bytes: &[u8]) -> String {
        let mut out = String::new();
        for ev in self.reader.feed(bytes) {
            if ev.data == "[DONE]" {
                self.close(&mut out);
                continue;
            }
            let Ok(chunk) = serde_json::from_str::<Value>(&ev.data) else { continue };
            if let Some(error) = chunk.get("error") {
                let message = error["message"].as_str().unwrap_or("the provider failed mid-stream");
                out.push_str(&event(
                    "error",
                    json!({"type": "error", "error": {"type": "api_error", "message": message}}),
                ));
                self.done = true;
                continue;
            }
            if !self.started {
                self.started = true;
                let message = json!({"id": chunk["id"], "type": "message", "role": "assistant", "model": chunk["model"],
                    "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": chunk["usage"]["prompt_tokens"].as_u64().unwrap_or(0), "output_tokens": 0}});
                out.push_str(&event("message_start", json!({"type": "message_start", "message": message})));
            }
            if let Some(tokens) = chunk["usage"]["completion_tokens"].as_u64() {
                self.output_tokens = tokens;
            }
            if let Some(tokens) = chunk["usage"]["prompt_tokens"].as_u64() {
                self.input_tokens = Some(tokens);
            }
            let Some(choice) = chunk["choices"].get(0) else { continue };
            let delta = &choice["delta"];
            if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
                let index = match self.open {
                    Some((index, true)) => index,
                    _ => self.open_block(&mut out, json!({"type": "text", "text": ""}), true),
                };
                let delta = json!({"type": "text_delta", "text": text});
                out.push_str(&event(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": index, "delta": delta}),
                ));
            }
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                if call.get("id").is_some_and(|id| !id.is_null()) {
                    let block =
                        json!({"type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": {}});
                    self.open_block(&mut out, block, false);
                }
                if let (Some((index, false)), Some(args)) =
                    (self.open, call["function"]["arguments"].as_str().filter(|a| !a.is_empty()))
                {
                    let delta = json!({"type": "input_json_delta", "partial_json": args});
                    out.push_str(&event(
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": index, "delta": delta}),
                    ));
                }
            }
            if let Some(finish) = choice["finish_reason"].as_str() {
                self.stop_reason = Some(stop_reason(finish));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Anthropic stream in the documented event sequence, text then a tool call.
    const ANTHROPIC_STREAM: &str = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: ping\ndata: {\"type\":\"ping\"}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" world\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get_weather\",\"input\":{}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\":\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"Paris\\\"}\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );

    fn data_events(sse: &str) -> Vec<Value> {
        sse.split("\n\n")
            .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect()
    }

    #[test]
    fn an_anthropic_stream_becomes_openai_chunks_as_it_arrives() {
        let mut t = AnthropicToChat::new(7, true);
        // Fed in 13-byte pieces: output appears as soon as an event is whole.
        let mut out = String::new();
        let mut first_output_at = None;
        for (i, piece) in ANTHROPIC_STREAM.as_bytes().chunks(13).enumerate() {
            let got = t.feed(piece);
            if !got.is_empty() && first_output_at.is_none() {
                first_output_at = Some(i);
            }
            out.push_str(&got);
        }
        assert!(first_output_at.unwrap() < 40, "the first chunk waited for the stream's end");
        assert!(t.finished() && out.ends_with("data: [DONE]\n\n"));
        let chunks = data_events(&out);
        let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
        assert_eq!(text, "Hello world");
        let args: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
            .collect();
        assert_eq!(args, r#"{"city":"Paris"}"#);
        assert!(chunks.iter().any(|c| c["choices"][0]["delta"]["tool_calls"][0]["id"] == "toolu_1"));
        assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));
        assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 40);
        assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk" && c["id"] == "msg_1"));
    }

    #[test]
    fn openai_chunks_become_the_anthropic_event_sequence() {
        let chunk = |delta: Value, finish: Value| {
            format!(
                "data: {}\n\n",
                json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            )
        };
        let stream = [
            chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            chunk(json!({"content": "Hi"}), Value::Null),
            chunk(json!({"content": " you"}), Value::Null),
            chunk(json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]}), Value::Null),
            chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":1}"}}]}), Value::Null),
            chunk(json!({}), json!("tool_calls")),
            "data: [DONE]\n\n".to_owned(),
        ]
        .concat();
        let mut t = ChatToAnthropic::new();
        let out: String = stream.as_bytes().chunks(17).map(|piece| t.feed(piece)).collect();
        assert!(t.finished());
        let names: Vec<&str> = out.split("\n\n").filter_map(|e| e.strip_prefix("event: ")?.lines().next()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let events = data_events(&out);
        assert_eq!(events[5]["content_block"]["name"], "f");
        assert_eq!(events[6]["delta"]["partial_json"], "{\"a\":1}");
        assert_eq!(events[8]["delta"]["stop_reason"], "tool_use");
    }

    #[test]
    fn a_mid_stream_error_is_passed_on_in_the_clients_format() {
        let mut t = AnthropicToChat::new(1, false);
        let out = t.feed(b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n");
        assert!(t.finished() && out.contains("\"error\"") && out.contains("Overloaded"), "{out}");
        let mut t = ChatToAnthropic::new();
        let out = t.feed(b"data: {\"error\":{\"message\":\"upstream broke\",\"type\":\"server_error\"}}\n\n");
        assert!(out.starts_with("event: error\n") && out.contains("upstream broke"), "{out}");
    }
}
