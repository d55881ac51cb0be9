//! Anthropic Messages API wire types (`POST /v1/messages`), as far as the
//! gateway translates them. Fields the gateway has no use for are kept in
//! `extra`, so a translation can say what it dropped.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A Messages API request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagesRequest {
    /// The model asked for.
    pub model: String,
    /// Required by Anthropic: the most tokens to generate.
    pub max_tokens: u32,
    /// The conversation; roles alternate between `user` and `assistant`.
    pub messages: Vec<Message>,
    /// The system prompt: text, or text blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<Content>,
    /// Stop generating at any of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    /// Sampling temperature, 0..=1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Answer as server-sent events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// Whether and which tool to call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Everything else (`top_k`, `metadata`, `thinking`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `user` or `assistant`.
    pub role: String,
    /// Text, or content blocks.
    pub content: Content,
}

/// Message content: a plain string or a list of blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Content blocks.
    Blocks(Vec<Block>),
}

/// A content block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// The model calls a tool.
    ToolUse {
        /// Call id, echoed by the `tool_result`.
        id: String,
        /// Tool name.
        name: String,
        /// Arguments, as JSON.
        input: Value,
    },
    /// A tool's answer, sent back by the user.
    ToolResult {
        /// The `tool_use` this answers.
        tool_use_id: String,
        /// Text, or content blocks.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<Content>,
        /// The tool failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is_error: Option<bool>,
    },
    /// Any other block (images, documents, thinking, ...), kept as it came.
    #[serde(untagged)]
    Other(Value),
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// Tool name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON schema of its input.
    pub input_schema: Value,
}

/// `tool_choice`: `{"type": "auto" | "any" | "tool" | "none", "name"?,
/// "disable_parallel_tool_use"?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolChoice {
    /// Whether and which tool to call.
    #[serde(rename = "type")]
    pub kind: ToolChoiceKind,
    /// For `tool`: the tool that must be called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// At most one tool call per answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_parallel_tool_use: Option<bool>,
}

/// The kind of a [`ToolChoice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoiceKind {
    /// The model decides.
    Auto,
    /// Some tool must be called.
    Any,
    /// The tool named must be called.
    Tool,
    /// No tool may be called.
    None,
}

impl ToolChoice {
    /// A choice of `kind` with nothing else said.
    pub fn of(kind: ToolChoiceKind) -> Self {
        ToolChoice { kind, name: None, disable_parallel_tool_use: None }
    }
}

/// A complete (non-streamed) answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagesResponse {
    /// Message id (`msg_...`).
    pub id: String,
    /// Always `message`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Always `assistant`.
    pub role: String,
    /// The model that answered.
    pub model: String,
    /// Text and tool-use blocks.
    pub content: Vec<Block>,
    /// `end_turn`, `max_tokens`, `stop_sequence`, `tool_use`, `refusal`, `pause_turn`.
    pub stop_reason: Option<String>,
    /// The stop sequence that ended it, if one did.
    #[serde(default)]
    pub stop_sequence: Option<String>,
    /// Token counts.
    pub usage: Usage,
}

/// Token counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u32,
    /// Generated tokens.
    pub output_tokens: u32,
}

/// Anthropic's error body: `{"type":"error","error":{"type":..,"message":..}}`.
pub fn error_body(kind: &str, message: &str) -> String {
    serde_json::json!({"type": "error", "error": {"type": kind, "message": message}}).to_string()
}

/// The Anthropic error type for an HTTP status the gateway answers with, as
/// Anthropic's API documents them (a 503 from the gateway — every provider
/// failed — is an `overloaded_error`, like Anthropic's own 529).
pub fn error_kind(status: u16) -> &'static str {
    match status {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        408 | 504 => "timeout_error",
        529 | 503 => "overloaded_error",
        _ => "api_error",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A request in the shape Anthropic documents, tools and results included.
    pub(crate) const REQUEST: &str = r#"{
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": "You are terse."}],
        "messages": [
            {"role": "user", "content": "What is the weather in Paris?"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18°C, cloudy"}
            ]}
        ],
        "tools": [{"name": "get_weather", "description": "Weather by city",
                   "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        "tool_choice": {"type": "auto"},
        "stop_sequences": ["\n\nHuman:"],
        "temperature": 0.2,
        "top_k": 40,
        "metadata": {"user_id": "u-1"}
    }"#;

    #[test]
    fn a_documented_request_round_trips() {
        let request: MessagesRequest = serde_json::from_str(REQUEST).unwrap();
        assert_eq!(request.messages.len(), 3);
        assert!(
            matches!(&request.messages[1].content, Content::Blocks(b) if matches!(&b[1], Block::ToolUse { name, .. } if name == "get_weather"))
        );
        assert_eq!(request.extra.keys().collect::<Vec<_>>(), ["metadata", "top_k"]);
        let again: MessagesRequest = serde_json::from_str(&serde_json::to_string(&request).unwrap()).unwrap();
        assert_eq!(again, request);
    }

    #[test]
    fn an_unknown_block_is_kept_as_it_came() {
        let content: Content = serde_json::from_str(
            r#"[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AA=="}}]"#,
        )
        .unwrap();
        let Content::Blocks(blocks) = content else { panic!("blocks") };
        assert!(matches!(&blocks[0], Block::Other(v) if v["type"] == "image"));
    }

    #[test]
    fn error_bodies_have_anthropics_shape() {
        let body: Value = serde_json::from_str(&error_body(error_kind(529), "Overloaded")).unwrap();
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "overloaded_error");
    }
}
