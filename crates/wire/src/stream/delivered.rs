//! What a client's stream has carried so far, read back from the bytes it
//! was sent (kept by the relay; parsed only when the stream breaks): the
//! answer's identity (id, model, created), its content blocks with their
//! text, whether the answer had finished, and the provider's token count.

use serde_json::Value;

use crate::Api;
use crate::sse::EventReader;

/// What a content block holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockKind {
    /// Answer text.
    Text,
    /// Thinking / reasoning text.
    Thinking,
    /// A tool call: its id and name; the block's text is its arguments.
    ToolCall {
        /// The call's id.
        id: String,
        /// The tool's name.
        name: String,
    },
    /// A block of another type (e.g. a redacted thinking block).
    Other,
}

/// One content block the client has received (part of).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// What it holds.
    pub kind: BlockKind,
    /// Its text (arguments for a tool call) as delivered.
    pub text: String,
    /// No end of the block has been delivered.
    pub open: bool,
    /// OpenAI: the tool call's `index` (tool calls only).
    pub tool_index: Option<u64>,
}

/// See the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivered {
    /// The answer's id (`chatcmpl-…`, `msg_…`).
    pub id: String,
    /// The model the answer names.
    pub model: String,
    /// OpenAI's `created`.
    pub created: Option<u64>,
    /// Content blocks in the order they started.
    pub blocks: Vec<Block>,
    /// A finish or stop reason was delivered: the answer is complete.
    pub finished: bool,
    /// The provider's output token count, when it sent one.
    pub output_tokens: Option<u64>,
    /// An OpenAI stream with more than one choice (`n` > 1): not recoverable.
    pub several_choices: bool,
}

impl Delivered {
    /// Reads back a client stream of `api`.
    pub fn read(api: Api, bytes: &[u8]) -> Delivered {
        let mut d = Delivered::default();
        let mut reader = EventReader::default();
        for event in reader.feed(bytes) {
            let Ok(v) = serde_json::from_str::<Value>(&event.data) else { continue };
            match api {
                Api::OpenAi => d.openai_chunk(&v),
                Api::Anthropic => d.anthropic_event(&v),
            }
        }
        d
    }

    /// Characters of content delivered (text, thinking, tool arguments).
    pub fn chars(&self) -> usize {
        self.blocks.iter().map(|b| b.text.chars().count()).sum()
    }

    /// Output tokens delivered: the provider's count, else characters / 4.
    pub fn tokens(&self) -> u64 {
        self.output_tokens.unwrap_or_else(|| self.chars().div_ceil(4) as u64)
    }

    /// The stream broke inside a tool call's arguments.
    pub fn in_tool_call(&self) -> bool {
        self.blocks.last().is_some_and(|b| b.open && matches!(b.kind, BlockKind::ToolCall { .. }))
    }

    /// The delivered answer is text only, so it can be handed to a model as
    /// a partial assistant turn to continue.
    pub fn continuable(&self) -> bool {
        !self.several_choices && self.blocks.iter().all(|b| b.kind == BlockKind::Text)
    }

    /// The delivered text (every text block, in order).
    pub fn text(&self) -> String {
        self.blocks.iter().filter(|b| b.kind == BlockKind::Text).map(|b| b.text.as_str()).collect()
    }

    /// The block of `kind`'s channel (OpenAI: text, thinking, or tool call `index`).
    fn channel(&mut self, kind: BlockKind, tool_index: Option<u64>) -> &mut Block {
        let found = self.blocks.iter().position(|b| match (&b.kind, &kind) {
            (BlockKind::ToolCall { .. }, BlockKind::ToolCall { .. }) => b.tool_index == tool_index,
            (a, b) => a == b,
        });
        let at = found.unwrap_or_else(|| {
            self.blocks.push(Block { kind, text: String::new(), open: true, tool_index });
            self.blocks.len() - 1
        });
        &mut self.blocks[at]
    }

    fn openai_chunk(&mut self, v: &Value) {
        if let Some(id) = v["id"].as_str() {
            id.clone_into(&mut self.id);
        }
        if let Some(model) = v["model"].as_str() {
            model.clone_into(&mut self.model);
        }
        self.created = v["created"].as_u64().or(self.created);
        if let Some(n) = v["usage"]["completion_tokens"].as_u64() {
            self.output_tokens = Some(n);
        }
        for choice in v["choices"].as_array().into_iter().flatten() {
            if choice["index"].as_u64().unwrap_or(0) != 0 {
                self.several_choices = true;
                continue;
            }
            let delta = &choice["delta"];
            if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
                self.channel(BlockKind::Text, None).text.push_str(text);
            }
            for key in ["reasoning_content", "reasoning"] {
                if let Some(text) = delta[key].as_str().filter(|t| !t.is_empty()) {
                    self.channel(BlockKind::Thinking, None).text.push_str(text);
                }
            }
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                let index = call["index"].as_u64().unwrap_or(0);
                let kind = BlockKind::ToolCall {
                    id: call["id"].as_str().unwrap_or_default().to_owned(),
                    name: call["function"]["name"].as_str().unwrap_or_default().to_owned(),
                };
                let block = self.channel(kind, Some(index));
                if let Some(args) = call["function"]["arguments"].as_str() {
                    block.text.push_str(args);
                }
            }
            if !choice["finish_reason"].is_null() {
                self.finished = true;
                self.blocks.iter_mut().for_each(|b| b.open = false);
            }
        }
    }

    fn anthropic_event(&mut self, v: &Value) {
        match v["type"].as_str().unwrap_or_default() {
            "message_start" => {
                let m = &v["message"];
                self.id = m["id"].as_str().unwrap_or_default().to_owned();
                self.model = m["model"].as_str().unwrap_or_default().to_owned();
            }
            "content_block_start" => {
                let b = &v["content_block"];
                let (kind, text) = match b["type"].as_str() {
                    Some("text") => (BlockKind::Text, b["text"].as_str()),
                    Some("thinking") => (BlockKind::Thinking, b["thinking"].as_str()),
                    Some("tool_use") => (
                        BlockKind::ToolCall {
                            id: b["id"].as_str().unwrap_or_default().to_owned(),
                            name: b["name"].as_str().unwrap_or_default().to_owned(),
                        },
                        None,
                    ),
                    _ => (BlockKind::Other, None),
                };
                let text = text.unwrap_or_default().to_owned();
                self.blocks.push(Block { kind, text, open: true, tool_index: None });
            }
            "content_block_delta" => {
                let Some(block) = v["index"].as_u64().and_then(|i| self.blocks.get_mut(i as usize)) else { return };
                let d = &v["delta"];
                let piece = ["text", "partial_json", "thinking"].iter().find_map(|k| d[k].as_str());
                block.text.push_str(piece.unwrap_or_default());
            }
            "content_block_stop" => {
                if let Some(block) = v["index"].as_u64().and_then(|i| self.blocks.get_mut(i as usize)) {
                    block.open = false;
                }
            }
            "message_delta" => {
                if !v["delta"]["stop_reason"].is_null() {
                    self.finished = true;
                }
                if let Some(n) = v["usage"]["output_tokens"].as_u64() {
                    self.output_tokens = Some(n);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_openai_stream_is_read_back_with_its_text_and_open_tool_call() {
        let bytes = concat!(
            "data: {\"id\":\"c1\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
            "data: {\"id\":\"c1\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello \"}}]}\n\n",
            "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"world\"}}]}\n\n",
            "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\"}}]}}]}\n\n",
        );
        let d = Delivered::read(Api::OpenAi, bytes.as_bytes());
        assert_eq!((d.id.as_str(), d.model.as_str(), d.created), ("c1", "m", Some(7)));
        assert_eq!(d.text(), "Hello world");
        assert!(d.in_tool_call() && !d.finished && !d.continuable());
        assert_eq!(d.chars(), 11 + 3);
    }

    #[test]
    fn an_anthropic_stream_is_read_back_block_by_block() {
        let bytes = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude\"}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi there\"}}\n\n",
        );
        let d = Delivered::read(Api::Anthropic, bytes.as_bytes());
        assert_eq!(d.id, "msg_1");
        assert_eq!(d.blocks.len(), 1);
        assert!(d.blocks[0].open && d.continuable() && !d.in_tool_call());
        assert_eq!(d.text(), "Hi there");
        assert_eq!(d.tokens(), 2);
    }
}
