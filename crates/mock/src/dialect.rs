//! The two wire formats a mock speaks: answers, stream events and request
//! checks, in OpenAI's chat completions or Anthropic's Messages shape, as
//! the providers document them.

use bytes::Bytes;
use serde_json::{Value, json};

/// Which API a mock provider speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    OpenAi,
    Anthropic,
}

/// What an answer says: text, or one tool call.
pub(crate) enum Said<'a> {
    Text(&'a str),
    ToolCall { name: &'a str, arguments: &'a str },
}

fn anthropic_event(name: &str, data: Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

fn openai_chunk(model: &str, delta: Value, finish: Option<&str>) -> Bytes {
    let v = json!({
        "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
    });
    Bytes::from(format!("data: {v}\n\n"))
}

/// How an OpenAI stream ends: the usage chunk when asked for, then `[DONE]`.
fn openai_end(model: &str, usage: bool) -> Vec<Bytes> {
    let mut events = Vec::new();
    if usage {
        let v = json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": model, "choices": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}});
        events.push(Bytes::from(format!("data: {v}\n\n")));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

impl Dialect {
    /// Why the provider would refuse this request as malformed (the error
    /// body), checked the way the real API checks the essentials.
    pub fn refusal(self, body: &Value, headers: &http::HeaderMap) -> Option<String> {
        let why = match self {
            Dialect::OpenAi => match body["messages"].as_array() {
                None => Some("'messages' is a required property".to_owned()),
                Some(m) if m.iter().any(|m| m["role"].as_str().is_none()) => {
                    Some("every message needs a 'role'".to_owned())
                }
                Some(_) => None,
            },
            Dialect::Anthropic => {
                let roles: Vec<&str> =
                    body["messages"].as_array().into_iter().flatten().filter_map(|m| m["role"].as_str()).collect();
                if !headers.contains_key("anthropic-version") {
                    Some("anthropic-version: header is required".to_owned())
                } else if body["max_tokens"].as_u64().is_none() {
                    Some("max_tokens: Field required".to_owned())
                } else if roles.is_empty() || roles.iter().any(|r| *r != "user" && *r != "assistant") {
                    Some("messages: roles must be 'user' or 'assistant', at least one message".to_owned())
                } else if roles.windows(2).any(|w| w[0] == w[1]) {
                    Some("messages: roles must alternate between 'user' and 'assistant'".to_owned())
                } else {
                    None
                }
            }
        }?;
        Some(
            match self {
                Dialect::OpenAi => {
                    json!({"error": {"message": why, "type": "invalid_request_error", "param": null, "code": null}})
                }
                Dialect::Anthropic => {
                    json!({"type": "error", "error": {"type": "invalid_request_error", "message": why}})
                }
            }
            .to_string(),
        )
    }

    /// A complete answer.
    pub fn answer(self, model: &str, said: &Said<'_>) -> String {
        match self {
            Dialect::OpenAi => {
                let (message, finish) = match *said {
                    Said::Text(text) => (json!({"role": "assistant", "content": text}), "stop"),
                    Said::ToolCall { name, arguments } => (
                        json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_mock", "type": "function",
                            "function": {"name": name, "arguments": arguments}}]}),
                        "tool_calls",
                    ),
                };
                json!({
                    "id": "chatcmpl-mock", "object": "chat.completion", "created": 1_700_000_000, "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
                })
            }
            Dialect::Anthropic => {
                let (content, stop) = match *said {
                    Said::Text(text) => (json!([{"type": "text", "text": text}]), "end_turn"),
                    Said::ToolCall { name, arguments } => {
                        let input: Value = serde_json::from_str(arguments).unwrap_or_else(|_| json!({}));
                        (json!([{"type": "tool_use", "id": "toolu_mock", "name": name, "input": input}]), "tool_use")
                    }
                };
                json!({
                    "id": "msg_mock", "type": "message", "role": "assistant", "model": model, "content": content,
                    "stop_reason": stop, "stop_sequence": null, "usage": {"input_tokens": 5, "output_tokens": 3}
                })
            }
        }
        .to_string()
    }

    /// The events that open a stream of text (OpenAI: a role-only chunk, as OpenAI sends).
    pub fn stream_open(self, model: &str) -> Vec<Bytes> {
        match self {
            Dialect::OpenAi => vec![openai_chunk(model, json!({"role": "assistant", "content": ""}), None)],
            Dialect::Anthropic => vec![
                anthropic_event(
                    "message_start",
                    json!({"type": "message_start", "message": {"id": "msg_mock", "type": "message",
                        "role": "assistant", "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
                        "usage": {"input_tokens": 5, "output_tokens": 1}}}),
                ),
                anthropic_event(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                ),
                anthropic_event("ping", json!({"type": "ping"})),
            ],
        }
    }

    /// One piece of streamed text.
    pub fn stream_text(self, model: &str, piece: &str) -> Bytes {
        match self {
            Dialect::OpenAi => openai_chunk(model, json!({"content": piece}), None),
            Dialect::Anthropic => anthropic_event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}),
            ),
        }
    }

    /// The events that end a complete text stream; `usage` adds OpenAI's
    /// usage chunk (`stream_options.include_usage`).
    pub fn stream_close(self, model: &str, usage: bool) -> Vec<Bytes> {
        match self {
            Dialect::OpenAi => {
                let mut events = vec![openai_chunk(model, json!({}), Some("stop"))];
                events.extend(openai_end(model, usage));
                events
            }
            Dialect::Anthropic => vec![
                anthropic_event("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
                anthropic_event(
                    "message_delta",
                    json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                        "usage": {"output_tokens": 3}}),
                ),
                anthropic_event("message_stop", json!({"type": "message_stop"})),
            ],
        }
    }

    /// The text of the request's final partial assistant turn, if it ends with one.
    pub fn partial_turn(self, body: &Value) -> Option<String> {
        let last = body["messages"].as_array()?.last()?;
        if last["role"] != "assistant" {
            return None;
        }
        match &last["content"] {
            Value::String(s) => Some(s.clone()),
            Value::Array(blocks) => Some(blocks.iter().filter_map(|b| b["text"].as_str()).collect()),
            _ => None,
        }
    }

    /// An error body of this API.
    pub fn error_body(self, kind: &str, message: &str) -> String {
        match self {
            Dialect::OpenAi => json!({"error": {"message": message, "type": kind, "param": null, "code": null}}),
            Dialect::Anthropic => json!({"type": "error", "error": {"type": kind, "message": message}}),
        }
        .to_string()
    }

    /// The preamble of a stream: OpenAI's role-only chunk and a keep-alive
    /// comment; Anthropic's `message_start`, an empty text block and a `ping`.
    pub fn stream_preamble(self, model: &str) -> Vec<Bytes> {
        match self {
            Dialect::OpenAi => vec![
                openai_chunk(model, json!({"role": "assistant", "content": ""}), None),
                Bytes::from_static(b": keep-alive\n\n"),
            ],
            Dialect::Anthropic => self.stream_open(model),
        }
    }

    /// A heartbeat: Anthropic's `ping` event, an SSE comment for OpenAI.
    pub fn heartbeat(self) -> Bytes {
        match self {
            Dialect::OpenAi => Bytes::from_static(b": ping\n\n"),
            Dialect::Anthropic => anthropic_event("ping", json!({"type": "ping"})),
        }
    }

    /// The provider's own mid-stream error event.
    pub fn stream_error(self) -> Bytes {
        match self {
            Dialect::OpenAi => Bytes::from(format!(
                "data: {}\n\n",
                json!({"error": {"message": "The server had an error while processing your request.", "type": "server_error", "param": null, "code": null}})
            )),
            Dialect::Anthropic => anthropic_event(
                "error",
                json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            ),
        }
    }

    /// A whole stream in which the model calls one tool, its arguments in two pieces.
    pub fn stream_tool_call(self, model: &str, name: &str, arguments: &str, usage: bool) -> Vec<Bytes> {
        let (head, tail) = arguments.split_at(arguments.len() / 2);
        match self {
            Dialect::OpenAi => {
                let call = |first: bool, args: &str| {
                    let mut c = json!({"index": 0, "function": {"arguments": args}});
                    if first {
                        c["id"] = "call_mock".into();
                        c["type"] = "function".into();
                        c["function"]["name"] = name.into();
                    }
                    json!({"tool_calls": [c]})
                };
                let mut events = vec![
                    openai_chunk(model, json!({"role": "assistant", "content": null}), None),
                    openai_chunk(model, call(true, ""), None),
                    openai_chunk(model, call(false, head), None),
                    openai_chunk(model, call(false, tail), None),
                    openai_chunk(model, json!({}), Some("tool_calls")),
                ];
                events.extend(openai_end(model, usage));
                events
            }
            Dialect::Anthropic => {
                let delta = |part: &str| {
                    anthropic_event(
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": 0,
                            "delta": {"type": "input_json_delta", "partial_json": part}}),
                    )
                };
                vec![
                    self.stream_open(model)[0].clone(),
                    anthropic_event(
                        "content_block_start",
                        json!({"type": "content_block_start", "index": 0,
                            "content_block": {"type": "tool_use", "id": "toolu_mock", "name": name, "input": {}}}),
                    ),
                    delta(head),
                    delta(tail),
                    anthropic_event("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
                    anthropic_event(
                        "message_delta",
                        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
                            "usage": {"output_tokens": 3}}),
                    ),
                    anthropic_event("message_stop", json!({"type": "message_stop"})),
                ]
            }
        }
    }
}
