//! A recovery's stream, rewritten to continue the client's: the answer's
//! id, model and `created` stay those the client already has; preamble
//! events (a second `message_start`, role chunks, pings) are dropped;
//! Anthropic block indexes carry on where the client's stopped. Two modes:
//!
//! - **continue**: the recovery was asked to go on from the delivered text
//!   (a partial assistant turn). Its first text block continues the
//!   client's open one. When the partial turn was sent without its trailing
//!   whitespace (Anthropic refuses it), that whitespace, if the recovery
//!   repeats it, is not sent twice.
//! - **restart**: the recovery answers the question from the start. Each of
//!   its blocks must begin with what the client already has of that block;
//!   only what comes after is forwarded. An answer that says anything else
//!   [`Diverged`], and the caller ends the stream with an error instead.
//!
//! Input is the recovery's events already in the client's API (translated
//! if need be); output is whole events in the client's API.

use serde_json::{Value, json};

use super::delivered::{BlockKind, Delivered};
use crate::Api;
use crate::sse::EventReader;

/// The recovery's answer says something other than what the client has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diverged(pub String);

impl std::fmt::Display for Diverged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How the recovery was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpliceMode {
    /// Asked to continue; `trimmed` is the whitespace cut off the end of
    /// the partial turn it was given.
    Continue {
        /// Whitespace the partial turn was sent without.
        trimmed: String,
    },
    /// Asked again from the start.
    Restart,
}

/// Matches new text against what was delivered of one block.
#[derive(Debug, Clone)]
struct Prefix {
    expected: String,
    matched: usize,
    /// A mismatch ends the matching instead of diverging (continue mode's
    /// trimmed whitespace).
    lenient: bool,
}

impl Prefix {
    fn new(expected: String, lenient: bool) -> Self {
        Prefix { expected, matched: 0, lenient }
    }

    fn done(&self) -> bool {
        self.matched >= self.expected.len()
    }

    /// What of `piece` is new, or how it diverged.
    fn feed<'a>(&mut self, piece: &'a str) -> Result<&'a str, Diverged> {
        if self.done() {
            return Ok(piece);
        }
        let left = &self.expected.as_bytes()[self.matched..];
        let overlap = left.len().min(piece.len());
        if piece.as_bytes()[..overlap] == left[..overlap] {
            self.matched += overlap;
            // `overlap` ends where `expected` or `piece` ends: a char boundary of both.
            return Ok(&piece[overlap..]);
        }
        if self.lenient {
            self.matched = self.expected.len();
            return Ok(piece);
        }
        Err(Diverged(format!(
            "the new answer diverged after {} of {} delivered bytes of a block",
            self.matched,
            self.expected.len()
        )))
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct Splicer {
    api: Api,
    mode: SpliceMode,
    delivered: Delivered,
    reader: EventReader,
    /// Per delivered block: its matcher (restart), by block position.
    prefixes: Vec<Prefix>,
    /// Continue mode: the whitespace matcher of the continued text.
    lenient: Option<Prefix>,
    /// Anthropic, continue mode: the client's open text block the
    /// recovery's first text block continues.
    merge_into: Option<usize>,
}

fn openai_channel(key: &str) -> BlockKind {
    if key == "content" { BlockKind::Text } else { BlockKind::Thinking }
}

impl Splicer {
    /// A splicer onto a client stream of `api` that delivered `delivered`.
    pub fn new(api: Api, delivered: Delivered, mode: SpliceMode) -> Self {
        let restart = mode == SpliceMode::Restart;
        let prefixes = if restart {
            delivered.blocks.iter().map(|b| Prefix::new(b.text.clone(), false)).collect()
        } else {
            vec![]
        };
        let lenient = match &mode {
            SpliceMode::Continue { trimmed } if !trimmed.is_empty() => Some(Prefix::new(trimmed.clone(), true)),
            _ => None,
        };
        let merge_into = match (&mode, delivered.blocks.last()) {
            (SpliceMode::Continue { .. }, Some(b)) if b.open && b.kind == BlockKind::Text => {
                Some(delivered.blocks.len() - 1)
            }
            _ => None,
        };
        Splicer { api, mode, delivered, reader: EventReader::default(), prefixes, lenient, merge_into }
    }

    /// Feeds the recovery's bytes (client API); returns the client's bytes.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<u8>, Diverged> {
        let mut out = Vec::new();
        for event in self.reader.feed(bytes) {
            if event.data.trim() == "[DONE]" {
                out.extend_from_slice(b"data: [DONE]\n\n");
                continue;
            }
            let Ok(mut v) = serde_json::from_str::<Value>(&event.data) else { continue };
            let keep = match self.api {
                Api::OpenAi => self.openai(&mut v)?,
                Api::Anthropic => self.anthropic(&mut v)?,
            };
            if !keep {
                continue;
            }
            match self.api {
                Api::OpenAi => out.extend_from_slice(format!("data: {v}\n\n").as_bytes()),
                Api::Anthropic => {
                    let name = v["type"].as_str().unwrap_or("message").to_owned();
                    out.extend_from_slice(format!("event: {name}\ndata: {v}\n\n").as_bytes());
                }
            }
        }
        Ok(out)
    }

    /// Restart mode: every delivered block was said again whole.
    fn check_complete(&self) -> Result<(), Diverged> {
        match self.prefixes.iter().all(Prefix::done) {
            true => Ok(()),
            false => Err(Diverged("the new answer ended before repeating what was delivered".into())),
        }
    }

    /// The position of the delivered block an OpenAI channel is in.
    fn openai_block(&self, kind: &BlockKind, tool_index: Option<u64>) -> Option<usize> {
        self.delivered.blocks.iter().position(|b| match (&b.kind, kind) {
            (BlockKind::ToolCall { .. }, BlockKind::ToolCall { .. }) => b.tool_index == tool_index,
            (a, b) => a == b,
        })
    }

    fn new_text<'a>(&mut self, block: Option<usize>, piece: &'a str) -> Result<&'a str, Diverged> {
        if let Some(lenient) = self.lenient.as_mut().filter(|_| block.is_none()) {
            return lenient.feed(piece);
        }
        match block.and_then(|b| self.prefixes.get_mut(b)) {
            Some(prefix) => prefix.feed(piece),
            None => Ok(piece),
        }
    }

    fn openai(&mut self, v: &mut Value) -> Result<bool, Diverged> {
        if v.get("error").is_some_and(|e| !e.is_null()) {
            return Ok(true);
        }
        let d = &self.delivered;
        v["id"] = json!(d.id);
        v["model"] = json!(d.model);
        if let Some(created) = d.created {
            v["created"] = json!(created);
        }
        let restart = self.mode == SpliceMode::Restart;
        let mut choices = std::mem::take(&mut v["choices"]).as_array().cloned().unwrap_or_default();
        choices.retain(|c| c["index"].as_u64().unwrap_or(0) == 0);
        let mut kept = Vec::new();
        for mut choice in choices {
            let delta = choice["delta"].as_object_mut().map(std::mem::take).unwrap_or_default();
            let mut out = serde_json::Map::new();
            for (key, value) in delta {
                match key.as_str() {
                    "role" => {}
                    "content" | "reasoning_content" | "reasoning" => {
                        let Some(piece) = value.as_str().filter(|p| !p.is_empty()) else { continue };
                        let kind = openai_channel(&key);
                        let block = if restart { self.openai_block(&kind, None) } else { None };
                        // Continue mode: the whitespace check applies to the answer text only.
                        let block = if !restart && kind != BlockKind::Text { Some(usize::MAX) } else { block };
                        let new = self.new_text(block, piece)?;
                        if !new.is_empty() {
                            out.insert(key, json!(new));
                        }
                    }
                    "tool_calls" => {
                        let mut calls = Vec::new();
                        for mut call in value.as_array().cloned().unwrap_or_default() {
                            let index = call["index"].as_u64().unwrap_or(0);
                            let kind = BlockKind::ToolCall { id: String::new(), name: String::new() };
                            let Some(block) = self.openai_block(&kind, Some(index)).filter(|_| restart) else {
                                calls.push(call);
                                continue;
                            };
                            if let (Some(name), BlockKind::ToolCall { name: had, .. }) =
                                (call["function"]["name"].as_str(), &self.delivered.blocks[block].kind)
                                && name != had
                            {
                                return Err(Diverged(format!("the new answer calls {name:?}, not {had:?}")));
                            }
                            let args = call["function"]["arguments"].as_str().unwrap_or_default().to_owned();
                            let new = self.new_text(Some(block), &args)?.to_owned();
                            if new.is_empty() {
                                continue;
                            }
                            call = json!({"index": index, "function": {"arguments": new}});
                            calls.push(call);
                        }
                        if !calls.is_empty() {
                            out.insert(key, Value::Array(calls));
                        }
                    }
                    _ => {
                        out.insert(key, value);
                    }
                }
            }
            let finished = !choice["finish_reason"].is_null();
            if finished && restart {
                self.check_complete()?;
            }
            if out.is_empty() && !finished {
                continue;
            }
            choice["delta"] = Value::Object(out);
            kept.push(choice);
        }
        let usage = v.get("usage").is_some_and(|u| !u.is_null());
        let empty = kept.is_empty();
        v["choices"] = Value::Array(kept);
        Ok(!empty || usage)
    }

    /// The client's index for the recovery's block `j` (continue mode).
    fn continued_index(&self, j: u64) -> u64 {
        let delivered = self.delivered.blocks.len() as u64;
        match self.merge_into {
            Some(open) => open as u64 + j,
            None => delivered + j,
        }
    }

    fn anthropic(&mut self, v: &mut Value) -> Result<bool, Diverged> {
        let restart = self.mode == SpliceMode::Restart;
        let kind = v["type"].as_str().unwrap_or_default().to_owned();
        let j = v["index"].as_u64();
        let delivered = self.delivered.blocks.len();
        match kind.as_str() {
            "message_start" | "ping" => Ok(false),
            "content_block_start" => {
                let j = j.unwrap_or(0);
                if restart {
                    let Some(had) = self.delivered.blocks.get(j as usize) else { return Ok(true) };
                    let block = &v["content_block"];
                    let same = match (&had.kind, block["type"].as_str()) {
                        (BlockKind::Text, Some("text")) | (BlockKind::Thinking, Some("thinking")) => true,
                        (BlockKind::ToolCall { name, .. }, Some("tool_use")) => block["name"].as_str() == Some(name),
                        (BlockKind::Other, _) => true,
                        _ => false,
                    };
                    if !same {
                        return Err(Diverged(format!("the new answer's block {j} is not the one delivered")));
                    }
                    return Ok(false);
                }
                let merged = j == 0 && self.merge_into.is_some() && v["content_block"]["type"] == "text";
                v["index"] = json!(self.continued_index(j));
                Ok(!merged)
            }
            "content_block_delta" => {
                let j = j.unwrap_or(0);
                let key = ["text", "partial_json", "thinking"].into_iter().find(|k| v["delta"][k].is_string());
                if restart {
                    if let Some(key) = key {
                        let piece = v["delta"][key].as_str().unwrap_or_default().to_owned();
                        let block = (j as usize) < delivered;
                        let new = self.new_text(block.then_some(j as usize), &piece)?.to_owned();
                        if block && !new.is_empty() && !self.delivered.blocks[j as usize].open {
                            return Err(Diverged(format!("the new answer's block {j} is longer than delivered")));
                        }
                        if new.is_empty() {
                            return Ok(false);
                        }
                        v["delta"][key] = json!(new);
                    }
                    return Ok(true);
                }
                if let Some(key) = key.filter(|_| j == 0 && self.merge_into.is_some()) {
                    let piece = v["delta"][key].as_str().unwrap_or_default().to_owned();
                    let new = self.new_text(None, &piece)?.to_owned();
                    if new.is_empty() {
                        return Ok(false);
                    }
                    v["delta"][key] = json!(new);
                }
                v["index"] = json!(self.continued_index(j));
                Ok(true)
            }
            "content_block_stop" => {
                let j = j.unwrap_or(0);
                if restart {
                    if let Some(prefix) = self.prefixes.get(j as usize)
                        && !prefix.done()
                    {
                        return Err(Diverged(format!("the new answer's block {j} is shorter than delivered")));
                    }
                    return Ok(self.delivered.blocks.get(j as usize).is_none_or(|b| b.open));
                }
                v["index"] = json!(self.continued_index(j));
                Ok(true)
            }
            "message_delta" if restart && !v["delta"]["stop_reason"].is_null() => {
                self.check_complete()?;
                Ok(true)
            }
            _ => Ok(true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openai_delivered() -> Delivered {
        let bytes = concat!(
            "data: {\"id\":\"orig\",\"created\":5,\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
            "data: {\"id\":\"orig\",\"created\":5,\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"one two \"}}]}\n\n",
        );
        Delivered::read(Api::OpenAi, bytes.as_bytes())
    }

    fn chunk(id: &str, content: &str) -> String {
        format!(
            "data: {}\n\n",
            json!({"id": id, "created": 9, "model": "other", "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]})
        )
    }

    fn texts(out: &[u8]) -> String {
        let d = Delivered::read(Api::OpenAi, out);
        assert!(d.id.is_empty() || d.id == "orig", "{d:?}");
        d.text()
    }

    #[test]
    fn a_restart_forwards_only_what_follows_the_delivered_text() {
        let mut s = Splicer::new(Api::OpenAi, openai_delivered(), SpliceMode::Restart);
        let role = "data: {\"id\":\"new\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n";
        assert!(s.feed(role.as_bytes()).unwrap().is_empty(), "the second preamble is dropped");
        assert!(s.feed(chunk("new", "one ").as_bytes()).unwrap().is_empty());
        let out = s.feed(chunk("new", "two three").as_bytes()).unwrap();
        assert_eq!(texts(&out), "three");
        assert!(String::from_utf8(out).unwrap().contains("\"id\":\"orig\""));
    }

    #[test]
    fn a_restart_that_says_something_else_diverges() {
        let mut s = Splicer::new(Api::OpenAi, openai_delivered(), SpliceMode::Restart);
        assert!(s.feed(chunk("new", "one three").as_bytes()).is_err());
        let mut short = Splicer::new(Api::OpenAi, openai_delivered(), SpliceMode::Restart);
        let end = "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";
        assert!(short.feed(format!("{}{end}", chunk("n", "one")).as_bytes()).is_err());
    }

    #[test]
    fn a_continuation_is_appended_with_the_trimmed_space_said_once() {
        let mode = SpliceMode::Continue { trimmed: " ".into() };
        let mut s = Splicer::new(Api::OpenAi, openai_delivered(), mode);
        let out = s.feed(chunk("new", " three").as_bytes()).unwrap();
        assert_eq!(texts(&out), "three");
        let out = s.feed(chunk("new", " four").as_bytes()).unwrap();
        assert_eq!(texts(&out), " four");
    }

    #[test]
    fn an_anthropic_continuation_carries_on_in_the_open_block() {
        let bytes = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"c\"}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
        );
        let delivered = Delivered::read(Api::Anthropic, bytes.as_bytes());
        let mut s = Splicer::new(Api::Anthropic, delivered.clone(), SpliceMode::Continue { trimmed: String::new() });
        let recovery = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_2\",\"model\":\"c\"}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: ping\ndata: {\"type\":\"ping\"}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" there\"}}\n\n",
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{}}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        );
        let out = String::from_utf8(s.feed(recovery.as_bytes()).unwrap()).unwrap();
        assert!(!out.contains("message_start") && !out.contains("ping"), "{out}");
        let mut all = bytes.to_owned();
        all.push_str(&out);
        let whole = Delivered::read(Api::Anthropic, all.as_bytes());
        assert_eq!(whole.blocks.len(), 2, "{whole:?}");
        assert_eq!(whole.text(), "Hi there");
        assert!(out.contains("\"index\":1") && out.contains("message_stop"));
        // A restart of the same answer forwards only the rest of the block.
        let mut r = Splicer::new(Api::Anthropic, delivered, SpliceMode::Restart);
        let again = recovery.replace(" there", "Hi there");
        let out = String::from_utf8(r.feed(again.as_bytes()).unwrap()).unwrap();
        let mut all = bytes.to_owned();
        all.push_str(&out);
        assert_eq!(Delivered::read(Api::Anthropic, all.as_bytes()).text(), "Hi there");
    }
}
