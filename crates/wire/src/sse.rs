//! Server-sent events as LLM APIs use them.

/// Watches the bytes of an SSE stream go by and tells whether the stream
/// reached the line a complete stream of its API ends with (`data: [DONE]`
/// for OpenAI, `event: message_stop` for Anthropic), so a stream the
/// provider cut short is never passed off as complete. Keeps only a few
/// bytes of state; chunk boundaries may fall anywhere.
#[derive(Debug)]
pub struct DoneDetector {
    /// The end line's field and value, e.g. `data` and `[DONE]`.
    field: &'static [u8],
    value: &'static [u8],
    /// The current line so far, kept only while it could still be the end line.
    line: Vec<u8>,
    /// The current line has grown past anything the end line could be.
    line_overflow: bool,
    done: bool,
}

impl Default for DoneDetector {
    /// The OpenAI detector.
    fn default() -> Self {
        DoneDetector::new(crate::Api::OpenAi)
    }
}

impl DoneDetector {
    /// A detector for streams of `api`.
    pub fn new(api: crate::Api) -> Self {
        let (field, value) = api.stream_end();
        DoneDetector { field, value, line: Vec::new(), line_overflow: false, done: false }
    }

    fn is_end_line(&self, line: &[u8]) -> bool {
        let Some(rest) = line.strip_prefix(self.field).and_then(|r| r.strip_prefix(b":")) else { return false };
        rest.strip_prefix(b" ").unwrap_or(rest) == self.value
    }

    /// Feeds the next chunk of the stream.
    pub fn feed(&mut self, chunk: &[u8]) {
        let longest = self.field.len() + self.value.len() + 3;
        for &b in chunk {
            if b == b'\n' {
                let line = self.line.strip_suffix(b"\r").unwrap_or(&self.line);
                if !self.line_overflow && self.is_end_line(line) {
                    self.done = true;
                }
                self.line.clear();
                self.line_overflow = false;
            } else if !self.line_overflow {
                if self.line.len() >= longest {
                    self.line_overflow = true;
                    self.line.clear();
                } else {
                    self.line.push(b);
                }
            }
        }
    }

    /// The stream has carried its end line.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
