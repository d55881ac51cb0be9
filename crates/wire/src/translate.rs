//! OpenAI chat completions ⇄ Anthropic messages (text, images, tools), for
//! requests and complete answers. Each conversion returns what it could not carry over
//! ([`Translated::dropped`]) so the caller can log it; nothing here fails on
//! a field it does not know.

use serde_json::{Map, Value, json};

mod image;
pub mod stream;

use crate::anthropic::{
    self, Block, Content, Message, MessagesRequest, MessagesResponse, Tool, ToolChoice, ToolChoiceKind,
};
use crate::chat::{
    ChatContent, ChatMessage, ChatRequest, ChatResponse, ChatTool, ChatUsage, Choice, FunctionCall, FunctionDef, Stop,
    ToolCall,
};

/// A converted value and the names of the fields that had no counterpart.
#[derive(Debug, Clone, PartialEq)]
pub struct Translated<T> {
    /// The result.
    pub value: T,
    /// What was left out, e.g. `"n"`, `"messages[2].content[1] (image_url)"`.
    pub dropped: Vec<String>,
}

/// Anthropic requires `max_tokens`; an OpenAI request without one gets this.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

fn anthropic_text(content: &Content) -> String {
    match content {
        Content::Text(t) => t.clone(),
        Content::Blocks(blocks) => blocks
            .iter()
            .filter_map(|b| match b {
                Block::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// An OpenAI request as an Anthropic one: `system`/`developer` messages become
/// `system`; `tool` messages become `tool_result` blocks of a user turn;
/// assistant `tool_calls` become `tool_use` blocks; consecutive turns of one
/// role are merged, as Anthropic wants them alternating.
pub fn chat_to_messages(request: &ChatRequest) -> Translated<MessagesRequest> {
    // `user` is carried as `metadata.user_id`; `stream_options` is the
    // caller's business (whether to add a usage chunk).
    let mut dropped: Vec<String> =
        request.extra.keys().filter(|k| *k != "user" && *k != "stream_options").cloned().collect();
    let mut system = Vec::new();
    let mut messages: Vec<Message> = Vec::new();
    let mut push = |role: &str, blocks: Vec<Block>| match messages.last_mut() {
        Some(Message { role: last, content: Content::Blocks(existing) }) if last == role => existing.extend(blocks),
        _ => messages.push(Message { role: role.into(), content: Content::Blocks(blocks) }),
    };
    for (i, m) in request.messages.iter().enumerate() {
        dropped.extend(m.extra.keys().map(|k| format!("messages[{i}].{k}")));
        let mut blocks = Vec::new();
        match &m.content {
            Some(ChatContent::Text(t)) if !t.is_empty() => blocks.push(Block::Text { text: t.clone() }),
            Some(ChatContent::Parts(parts)) => {
                for (j, part) in parts.iter().enumerate() {
                    match (part["text"].as_str(), image::to_anthropic(part)) {
                        (Some(text), _) if part["type"] == "text" => blocks.push(Block::Text { text: text.into() }),
                        (_, Some(image)) => {
                            if part["image_url"].get("detail").is_some() {
                                dropped.push(format!("messages[{i}].content[{j}].image_url.detail"));
                            }
                            blocks.push(Block::Other(image));
                        }
                        _ => dropped.push(format!("messages[{i}].content[{j}] ({})", part["type"])),
                    }
                }
            }
            _ => {}
        }
        match m.role.as_str() {
            "system" | "developer" => {
                system.extend(blocks.into_iter().filter_map(|b| match b {
                    Block::Text { text } => Some(text),
                    _ => None,
                }));
            }
            "tool" => {
                let text = m.content.as_ref().map(ChatContent::text).unwrap_or_default();
                push(
                    "user",
                    vec![Block::ToolResult {
                        tool_use_id: m.tool_call_id.clone().unwrap_or_default(),
                        content: Some(Content::Text(text)),
                        is_error: None,
                    }],
                );
            }
            "assistant" => {
                for call in m.tool_calls.iter().flatten() {
                    let input = serde_json::from_str(&call.function.arguments).unwrap_or_else(|_| json!({}));
                    blocks.push(Block::ToolUse { id: call.id.clone(), name: call.function.name.clone(), input });
                }
                push("assistant", blocks);
            }
            _ => push("user", blocks),
        }
    }
    let mut tool_choice = match request.tool_choice.as_ref() {
        None => None,
        Some(Value::String(s)) if s == "auto" => Some(ToolChoice::of(ToolChoiceKind::Auto)),
        Some(Value::String(s)) if s == "required" => Some(ToolChoice::of(ToolChoiceKind::Any)),
        Some(Value::String(s)) if s == "none" => Some(ToolChoice::of(ToolChoiceKind::None)),
        Some(v) => match v["function"]["name"].as_str() {
            Some(name) => Some(ToolChoice { name: Some(name.into()), ..ToolChoice::of(ToolChoiceKind::Tool) }),
            None => {
                dropped.push("tool_choice".into());
                None
            }
        },
    };
    // OpenAI's `parallel_tool_calls: false` is Anthropic's `disable_parallel_tool_use`.
    if request.extra.get("parallel_tool_calls") == Some(&Value::Bool(false)) && request.tools.is_some() {
        dropped.retain(|d| d != "parallel_tool_calls");
        let choice = tool_choice.get_or_insert_with(|| ToolChoice::of(ToolChoiceKind::Auto));
        choice.disable_parallel_tool_use = Some(true);
    }
    let value = MessagesRequest {
        model: request.model.clone(),
        max_tokens: request.max_completion_tokens.or(request.max_tokens).unwrap_or(DEFAULT_MAX_TOKENS),
        messages,
        system: (!system.is_empty()).then(|| Content::Text(system.join("\n\n"))),
        stop_sequences: request.stop.as_ref().map(|s| match s {
            Stop::One(s) => vec![s.clone()],
            Stop::Many(v) => v.clone(),
        }),
        // OpenAI's temperature runs to 2, Anthropic's to 1.
        temperature: request.temperature.map(|t| t.clamp(0.0, 1.0)),
        top_p: request.top_p,
        stream: request.stream,
        tools: request.tools.as_ref().map(|tools| {
            tools
                .iter()
                .map(|t| Tool {
                    name: t.function.name.clone(),
                    description: t.function.description.clone(),
                    input_schema: t.function.parameters.clone().unwrap_or_else(|| json!({"type": "object"})),
                })
                .collect()
        }),
        tool_choice,
        extra: match request.extra.get("user") {
            Some(Value::String(user)) => Map::from_iter([("metadata".to_owned(), json!({"user_id": user}))]),
            _ => Map::new(),
        },
    };
    Translated { value, dropped }
}

/// An Anthropic request as an OpenAI one: `system` becomes the first message;
/// `tool_use` blocks become the assistant's `tool_calls`; `tool_result`
/// blocks become `tool` messages.
pub fn messages_to_chat(request: &MessagesRequest) -> Translated<ChatRequest> {
    // `metadata.user_id` is carried as `user`.
    let user = request.extra.get("metadata").and_then(|m| m["user_id"].as_str()).map(str::to_owned);
    let mut dropped: Vec<String> =
        request.extra.keys().filter(|k| !(*k == "metadata" && user.is_some())).cloned().collect();
    let mut messages = Vec::new();
    let message = |role: &str, content: Option<ChatContent>| ChatMessage {
        role: role.into(),
        content,
        tool_calls: None,
        tool_call_id: None,
        extra: Map::new(),
    };
    if let Some(system) = &request.system {
        messages.push(message("system", Some(ChatContent::Text(anthropic_text(system)))));
    }
    for (i, m) in request.messages.iter().enumerate() {
        let blocks = match &m.content {
            Content::Text(t) => {
                messages.push(message(&m.role, Some(ChatContent::Text(t.clone()))));
                continue;
            }
            Content::Blocks(blocks) => blocks,
        };
        // Text and image parts in order; plain text when there is no image.
        let (mut parts, mut calls, mut images) = (Vec::new(), Vec::new(), false);
        for (j, block) in blocks.iter().enumerate() {
            match block {
                Block::Text { text } => parts.push(json!({"type": "text", "text": text})),
                Block::ToolUse { id, name, input } => calls.push(ToolCall {
                    id: id.clone(),
                    kind: "function".into(),
                    function: FunctionCall { name: name.clone(), arguments: input.to_string() },
                }),
                Block::ToolResult { tool_use_id, content, .. } => messages.push(ChatMessage {
                    tool_call_id: Some(tool_use_id.clone()),
                    ..message("tool", Some(ChatContent::Text(content.as_ref().map(anthropic_text).unwrap_or_default())))
                }),
                Block::Other(v) => match image::to_openai(v) {
                    Some(image) => {
                        images = true;
                        parts.push(image);
                    }
                    None => dropped.push(format!("messages[{i}].content[{j}] ({})", v["type"])),
                },
            }
        }
        if !parts.is_empty() || !calls.is_empty() {
            let content = match images {
                true => Some(ChatContent::Parts(parts)),
                false => (!parts.is_empty()).then(|| ChatContent::Parts(parts).text()).map(ChatContent::Text),
            };
            messages
                .push(ChatMessage { tool_calls: (!calls.is_empty()).then_some(calls), ..message(&m.role, content) });
        }
    }
    let value = ChatRequest {
        model: request.model.clone(),
        messages,
        max_tokens: Some(request.max_tokens),
        max_completion_tokens: None,
        temperature: request.temperature,
        top_p: request.top_p,
        stop: request.stop_sequences.clone().map(Stop::Many),
        stream: request.stream,
        tools: request.tools.as_ref().map(|tools| {
            tools
                .iter()
                .map(|t| ChatTool {
                    kind: "function".into(),
                    function: FunctionDef {
                        name: t.name.clone(),
                        description: t.description.clone(),
                        parameters: Some(t.input_schema.clone()),
                    },
                })
                .collect()
        }),
        tool_choice: request.tool_choice.as_ref().map(|c| match (c.kind, &c.name) {
            (ToolChoiceKind::Tool, Some(name)) => json!({"type": "function", "function": {"name": name}}),
            (ToolChoiceKind::Any | ToolChoiceKind::Tool, _) => json!("required"),
            (ToolChoiceKind::None, _) => json!("none"),
            (ToolChoiceKind::Auto, _) => json!("auto"),
        }),
        extra: {
            let mut extra = Map::new();
            if let Some(user) = user {
                extra.insert("user".into(), Value::String(user));
            }
            if request.tool_choice.as_ref().and_then(|c| c.disable_parallel_tool_use) == Some(true) {
                extra.insert("parallel_tool_calls".into(), Value::Bool(false));
            }
            extra
        },
    };
    Translated { value, dropped }
}

/// Anthropic `stop_reason` → OpenAI `finish_reason`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// OpenAI `finish_reason` → Anthropic `stop_reason`.
pub fn stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// An Anthropic answer as an OpenAI one (`created` is the caller's clock).
pub fn messages_response_to_chat(response: &MessagesResponse, created: u64) -> Translated<ChatResponse> {
    let mut dropped = Vec::new();
    let (mut texts, mut calls) = (Vec::new(), Vec::new());
    for (j, block) in response.content.iter().enumerate() {
        match block {
            Block::Text { text } => texts.push(text.clone()),
            Block::ToolUse { id, name, input } => calls.push(ToolCall {
                id: id.clone(),
                kind: "function".into(),
                function: FunctionCall { name: name.clone(), arguments: input.to_string() },
            }),
            Block::ToolResult { .. } => dropped.push(format!("content[{j}] (tool_result)")),
            Block::Other(v) => dropped.push(format!("content[{j}] ({})", v["type"])),
        }
    }
    let message = ChatMessage {
        role: "assistant".into(),
        content: Some(ChatContent::Text(texts.join(""))),
        tool_calls: (!calls.is_empty()).then_some(calls),
        tool_call_id: None,
        extra: Map::new(),
    };
    let usage = response.usage;
    let value = ChatResponse {
        id: response.id.clone(),
        object: "chat.completion".into(),
        created,
        model: response.model.clone(),
        choices: vec![Choice {
            index: 0,
            message,
            finish_reason: Some(finish_reason(response.stop_reason.as_deref().unwrap_or("end_turn")).into()),
        }],
        usage: Some(ChatUsage {
            prompt_tokens: usage.input_tokens,
            completion_tokens: usage.output_tokens,
            total_tokens: usage.input_tokens + usage.output_tokens,
        }),
    };
    Translated { value, dropped }
}

/// An OpenAI answer as an Anthropic one (the first choice; others dropped).
pub fn chat_response_to_messages(response: &ChatResponse) -> Translated<MessagesResponse> {
    let mut dropped: Vec<String> = (1..response.choices.len()).map(|i| format!("choices[{i}]")).collect();
    let mut content = Vec::new();
    let mut stop = "end_turn";
    if let Some(choice) = response.choices.first() {
        dropped.extend(choice.message.extra.keys().map(|k| format!("choices[0].message.{k}")));
        if let Some(text) = choice.message.content.as_ref().map(ChatContent::text).filter(|t| !t.is_empty()) {
            content.push(Block::Text { text });
        }
        for call in choice.message.tool_calls.iter().flatten() {
            let input = serde_json::from_str(&call.function.arguments).unwrap_or_else(|_| json!({}));
            content.push(Block::ToolUse { id: call.id.clone(), name: call.function.name.clone(), input });
        }
        stop = stop_reason(choice.finish_reason.as_deref().unwrap_or("stop"));
    }
    let usage = response.usage.unwrap_or_default();
    let value = MessagesResponse {
        id: response.id.clone(),
        kind: "message".into(),
        role: "assistant".into(),
        model: response.model.clone(),
        content,
        stop_reason: Some(stop.into()),
        stop_sequence: None,
        usage: anthropic::Usage { input_tokens: usage.prompt_tokens, output_tokens: usage.completion_tokens },
    };
    Translated { value, dropped }
}

#[cfg(test)]
mod tests;
