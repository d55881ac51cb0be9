//! Server-sent events as LLM APIs use them.

/// Watches the bytes of an SSE stream go by and tells how it ended: with
/// the line a complete stream of its API ends with (`data: [DONE]` for
/// OpenAI, `event: message_stop` for Anthropic), or with an error event of
/// that API (`data: {"error"...`, `event: error`). So a stream the provider
/// cut short is never passed off as complete, and one that already told its
/// client why it failed gets no second error event. Keeps only the first
/// few bytes of the current line; chunk boundaries may fall anywhere.
#[derive(Debug)]
pub struct DoneDetector {
    end: crate::api::StreamLine,
    error: crate::api::StreamLine,
    /// The current line's first bytes.
    line: Vec<u8>,
    /// The current line is longer than what is kept of it.
    truncated: bool,
    done: bool,
    errored: bool,
    /// The finish key, how much of it the bytes just seen matched, and
    /// whether it matched whole and its value is being looked at.
    finish_key: &'static [u8],
    key_matched: usize,
    after_key: bool,
    finished: bool,
}

/// How much of each line is kept: enough for every line matched.
const KEPT: usize = 24;

impl Default for DoneDetector {
    /// The OpenAI detector.
    fn default() -> Self {
        DoneDetector::new(crate::Api::OpenAi)
    }
}

impl DoneDetector {
    /// A detector for streams of `api`.
    pub fn new(api: crate::Api) -> Self {
        DoneDetector {
            end: api.stream_end(),
            error: api.stream_error(),
            line: Vec::with_capacity(KEPT),
            truncated: false,
            done: false,
            errored: false,
            finish_key: api.finish_key(),
            key_matched: 0,
            after_key: false,
            finished: false,
        }
    }

    /// Looks for the finish key followed by a string value, byte by byte.
    fn watch_finish(&mut self, b: u8) {
        if self.after_key {
            match b {
                b' ' | b'\t' => return,
                b'"' => self.finished = true,
                _ => {}
            }
            self.after_key = false;
        }
        if b == self.finish_key[self.key_matched] {
            self.key_matched += 1;
            if self.key_matched == self.finish_key.len() {
                self.after_key = true;
                self.key_matched = 0;
            }
        } else {
            self.key_matched = usize::from(b == self.finish_key[0]);
        }
    }

    /// Feeds the next chunk of the stream.
    pub fn feed(&mut self, chunk: &[u8]) {
        for &b in chunk {
            if !self.finished {
                self.watch_finish(b);
            }
            if b == b'\n' {
                let line = self.line.strip_suffix(b"\r").unwrap_or(&self.line);
                self.done |= self.end.matches(line, self.truncated);
                self.errored |= self.error.matches(line, self.truncated);
                self.line.clear();
                self.truncated = false;
            } else if self.line.len() < KEPT {
                self.line.push(b);
            } else {
                self.truncated = true;
            }
        }
    }

    /// The stream has carried its end line.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The answer is complete: a choice finished (`"finish_reason":"stop"`,
    /// ...) or the message stopped (`"stop_reason":"end_turn"`, ...), even
    /// if the end line has not come.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// The stream has carried an error event.
    pub fn errored(&self) -> bool {
        self.errored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_choice_is_seen_across_chunks_and_null_is_not_a_finish() {
        let mut d = DoneDetector::default();
        d.feed(br#"data: {"choices":[{"delta":{"role":"assistant"},"finish_reason":null}]}"#);
        d.feed(b"\n\n");
        assert!(!d.finished());
        for b in br#"data: {"choices":[{"delta":{},"finish_reason": "stop"}]}"# {
            d.feed(&[*b]);
        }
        assert!(d.finished() && !d.is_done());
        let mut a = DoneDetector::new(crate::Api::Anthropic);
        a.feed(b"event: message_start\ndata: {\"message\":{\"stop_reason\":null}}\n\n");
        assert!(!a.finished());
        a.feed(b"event: message_delta\ndata: {\"delta\":{\"stop_reason\":\"end_turn\"}}\n\n");
        assert!(a.finished());
    }

    #[test]
    fn done_split_across_chunks_is_seen() {
        let mut d = DoneDetector::default();
        d.feed(b"data: {\"choices\":[]}\n\ndata: [DO");
        assert!(!d.is_done());
        d.feed(b"NE]\n\n");
        assert!(d.is_done());
    }

    #[test]
    fn done_inside_content_is_not_the_end() {
        let mut d = DoneDetector::default();
        d.feed(b"data: {\"content\":\"data: [DONE]\"}\n\n");
        assert!(!d.is_done());
    }

    #[test]
    fn an_anthropic_stream_ends_with_message_stop() {
        let mut d = DoneDetector::new(crate::Api::Anthropic);
        d.feed(b"event: message_delta\ndata: {\"type\":\"message_stop\"}\n\n");
        assert!(!d.is_done(), "message_stop inside data is not the end");
        d.feed(b"event: message_st");
        d.feed(b"op\ndata: {\"type\":\"message_stop\"}\n\n");
        assert!(d.is_done());
    }

    #[test]
    fn error_events_of_either_api_are_seen() {
        let mut d = DoneDetector::new(crate::Api::OpenAi);
        d.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"{\\\"error\\\"\"}}]}\n\n");
        assert!(!d.errored(), "error inside content is not an error event");
        d.feed(b"data: {\"error\":{\"message\":\"a long message that goes on and on\"}}\n\n");
        assert!(d.errored() && !d.is_done());
        let mut d = DoneDetector::new(crate::Api::Anthropic);
        d.feed(b"event: error_like\ndata: {}\n\n");
        assert!(!d.errored());
        d.feed(b"event: err");
        d.feed(b"or\ndata: {\"type\":\"error\"}\n\n");
        assert!(d.errored());
    }

    #[test]
    fn crlf_lines_count() {
        let mut d = DoneDetector::default();
        d.feed(b"data: [DONE]\r\n\r\n");
        assert!(d.is_done());
    }
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines, joined by newlines.
    pub data: String,
}

/// Splits a byte stream into events; chunk boundaries may fall anywhere.
#[derive(Debug, Default)]
pub struct EventReader {
    pending: Vec<u8>,
}

impl EventReader {
    /// Feeds the next chunk; returns the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Event> {
        self.pending.extend_from_slice(chunk);
        let mut events = Vec::new();
        loop {
            let text = &self.pending;
            let end = text
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, 2))
                .or_else(|| text.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, 4)));
            let Some((at, len)) = end else { break };
            let raw = String::from_utf8_lossy(&self.pending[..at]).into_owned();
            self.pending.drain(..at + len);
            let (mut event, mut data) = (None, Vec::new());
            for line in raw.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.strip_prefix(' ').unwrap_or(v).to_owned());
                }
            }
            if event.is_some() || !data.is_empty() {
                events.push(Event { event, data: data.join("\n") });
            }
        }
        events
    }
}

#[cfg(test)]
mod event_tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_are_put_back_together() {
        let mut reader = EventReader::default();
        assert!(reader.feed(b"event: ping\nda").is_empty());
        let events = reader.feed(b"ta: {}\n\ndata: [DONE]\n\n: comment\n\n");
        assert_eq!(
            events,
            [Event { event: Some("ping".into()), data: "{}".into() }, Event { event: None, data: "[DONE]".into() }]
        );
    }
}
