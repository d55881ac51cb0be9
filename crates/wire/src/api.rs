//! The two LLM APIs the gateway speaks, to clients and to providers, and
//! what differs between them at the gateway's edge: error bodies, the error
//! event that ends a broken stream, and the event that ends a complete one.

use bytes::Bytes;

use crate::anthropic;
use crate::openai_error::OpenAiError;

/// An LLM API: the client's (the request's path says which) or a provider's
/// (its `api` setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// OpenAI chat completions, `POST /v1/chat/completions`.
    OpenAi,
    /// Anthropic Messages, `POST /v1/messages`.
    Anthropic,
}

impl Api {
    /// The path its chat endpoint has under `/v1`.
    pub fn chat_path(self) -> &'static str {
        match self {
            Api::OpenAi => "/v1/chat/completions",
            Api::Anthropic => "/v1/messages",
        }
    }

    /// The JSON body of an error answered with `status`: OpenAI's
    /// `{"error":{message,type,param,code}}`, or Anthropic's
    /// `{"type":"error","error":{type,message}}` with the type Anthropic
    /// uses for that status (`overloaded_error` for 503/529, ...).
    pub fn error_body(self, status: u16, error: &OpenAiError) -> Bytes {
        match self {
            Api::OpenAi => error.to_body(),
            Api::Anthropic => Bytes::from(anthropic::error_body(anthropic::error_kind(status), &error.message)),
        }
    }

    /// The SSE event that ends a stream which broke after it started; the
    /// official SDKs of both APIs raise on it.
    pub fn stream_error_event(self, error: &OpenAiError) -> Bytes {
        match self {
            Api::OpenAi => error.to_sse_event(),
            Api::Anthropic => {
                let kind = if error.kind == "server_error" { "api_error" } else { "invalid_request_error" };
                Bytes::from(format!("event: error\ndata: {}\n\n", anthropic::error_body(kind, &error.message)))
            }
        }
    }

    /// The SSE line a complete stream of this API carries last:
    /// `data: [DONE]`, or `event: message_stop`.
    pub fn stream_end(self) -> StreamLine {
        match self {
            Api::OpenAi => StreamLine { field: b"data", value: b"[DONE]", whole: true },
            Api::Anthropic => StreamLine { field: b"event", value: b"message_stop", whole: true },
        }
    }

    /// The bytes that end a complete stream of this API, for a provider
    /// that finished its answer but closed without them.
    pub fn stream_end_event(self) -> &'static [u8] {
        match self {
            Api::OpenAi => b"data: [DONE]\n\n",
            Api::Anthropic => b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        }
    }

    /// The JSON key whose string value (not `null`) says the answer is
    /// complete: a choice's `finish_reason`, a message's `stop_reason`.
    pub fn finish_key(self) -> &'static [u8] {
        match self {
            Api::OpenAi => br#""finish_reason":"#,
            Api::Anthropic => br#""stop_reason":"#,
        }
    }

    /// The SSE line that starts an error event of this API:
    /// `data: {"error"...`, or `event: error`.
    pub fn stream_error(self) -> StreamLine {
        match self {
            Api::OpenAi => StreamLine { field: b"data", value: br#"{"error""#, whole: false },
            Api::Anthropic => StreamLine { field: b"event", value: b"error", whole: true },
        }
    }
}

/// An SSE line to look for: `field: value`, the value whole or as a prefix.
#[derive(Debug, Clone, Copy)]
pub struct StreamLine {
    field: &'static [u8],
    value: &'static [u8],
    whole: bool,
}

impl StreamLine {
    /// Whether `line` (maybe only its first bytes, when `truncated`) is this one.
    pub fn matches(&self, line: &[u8], truncated: bool) -> bool {
        let Some(rest) = line.strip_prefix(self.field).and_then(|r| r.strip_prefix(b":")) else { return false };
        let value = rest.strip_prefix(b" ").unwrap_or(rest);
        match self.whole {
            true => !truncated && value == self.value,
            false => value.starts_with(self.value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_anthropic_client_gets_anthropics_error_shape() {
        let err = OpenAiError::server("No provider could answer.", "all_providers_unavailable");
        let body: serde_json::Value = serde_json::from_slice(&Api::Anthropic.error_body(503, &err)).unwrap();
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "overloaded_error");
        assert_eq!(body["error"]["message"], "No provider could answer.");
        let not_found = OpenAiError::invalid_request("model: nope", Some("model_not_found"), Some("model"));
        let body: serde_json::Value = serde_json::from_slice(&Api::Anthropic.error_body(404, &not_found)).unwrap();
        assert_eq!(body["error"]["type"], "not_found_error");
    }

    #[test]
    fn a_broken_anthropic_stream_ends_with_an_error_event() {
        let event = Api::Anthropic.stream_error_event(&OpenAiError::server("cut", "upstream_stream_broken"));
        let event = std::str::from_utf8(&event).unwrap();
        assert!(event.starts_with("event: error\ndata: {") && event.ends_with("\n\n"), "{event}");
        assert!(event.contains(r#""type":"api_error""#), "{event}");
    }
}
