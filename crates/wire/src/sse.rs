//! Server-sent events as LLM APIs use them.

/// Watches the bytes of an SSE stream go by and tells how it ended: with
/// the line a complete stream of its API ends with (`data: [DONE]` for
/// OpenAI, `event: message_stop` for Anthropic), or with an error event of
/// that API (`data: {"error"...`, `event: error`). So a stream the provider
/// cut short is never passed off as complete, and one that already told its
/// client why it failed gets no second error event. Keeps only the first
/// few bytes of the current line; chunk boundaries may fall anywhere.
///
/// The relay used this until it began cutting whole events
/// ([`crate::stream::cutter`], which can also hold an error event back);
/// `switchyard-bench --streams` measures the two side by side.
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

/// Longest event kept whole; a longer one is dropped (and counted), so a
/// provider that never ends an event cannot grow the gateway's memory.
pub const MAX_EVENT_BYTES: usize = 4 << 20;

/// Splits a byte stream into events; chunk boundaries may fall anywhere.
/// Lines end with LF or CRLF; a blank line ends an event. Each byte is
/// looked at a bounded number of times however the stream is cut.
#[derive(Debug, Default)]
pub struct EventReader {
    pending: Vec<u8>,
    /// `pending[..scanned]` holds no event boundary.
    scanned: usize,
    /// The current event outgrew [`MAX_EVENT_BYTES`]: skip to its end.
    skipping: bool,
    dropped: u64,
}

/// Where the first blank line of `text` at or after `from` is: the end of
/// the event before it and where the next one starts. `None`, and how far
/// the text was searched, when there is none yet.
fn boundary(text: &[u8], from: usize) -> Result<(usize, usize), usize> {
    let mut i = from;
    while let Some(offset) = text[i..].iter().position(|&b| b == b'\n') {
        let nl = i + offset;
        let end = if nl > 0 && text[nl - 1] == b'\r' { nl - 1 } else { nl };
        match text.get(nl + 1..) {
            Some([b'\n', ..]) => return Ok((end, nl + 2)),
            Some([b'\r', b'\n', ..]) => return Ok((end, nl + 3)),
            // Not enough yet to tell: look here again next time.
            Some([]) | Some([b'\r']) => return Err(end),
            _ => i = nl + 1,
        }
    }
    Err(text.len().saturating_sub(1).max(from))
}

fn parse_event(raw: &[u8]) -> Option<Event> {
    let raw = String::from_utf8_lossy(raw);
    let (mut event, mut data) = (None, Vec::new());
    for line in raw.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            event = Some(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push(v.strip_prefix(' ').unwrap_or(v).to_owned());
        }
    }
    (event.is_some() || !data.is_empty()).then(|| Event { event, data: data.join("\n") })
}

impl EventReader {
    /// Feeds the next chunk; returns the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Event> {
        self.pending.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        loop {
            match boundary(&self.pending, self.scanned.max(start)) {
                Ok((end, next)) => {
                    if !std::mem::take(&mut self.skipping) {
                        events.extend(parse_event(&self.pending[start..end]));
                    }
                    start = next;
                    self.scanned = next;
                }
                Err(searched) => {
                    self.scanned = searched;
                    break;
                }
            }
        }
        self.pending.drain(..start);
        self.scanned -= start;
        if self.pending.len() > MAX_EVENT_BYTES {
            // Keep only what could still start the blank line that ends it.
            let keep = self.pending.split_off(self.pending.len() - 3);
            self.pending = keep;
            self.scanned = 0;
            if !self.skipping {
                self.skipping = true;
                self.dropped += 1;
            }
        }
        events
    }

    /// Events dropped for outgrowing [`MAX_EVENT_BYTES`].
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod event_tests {
    use super::*;

    #[test]
    fn lf_and_crlf_blank_lines_end_events_in_order() {
        let mut reader = EventReader::default();
        let events = reader.feed(b"data: a\r\n\r\ndata: b\n\ndata: c\n\r\n");
        let data: Vec<&str> = events.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, ["a", "b", "c"]);
    }

    #[test]
    fn an_event_that_never_ends_is_dropped_not_kept() {
        let mut reader = EventReader::default();
        let chunk = vec![b'x'; 64 * 1024];
        reader.feed(b"data: ");
        for _ in 0..(MAX_EVENT_BYTES / chunk.len() + 2) {
            assert!(reader.feed(&chunk).is_empty());
        }
        assert!(reader.pending.len() <= MAX_EVENT_BYTES);
        assert_eq!(reader.dropped(), 1);
        let events = reader.feed(b"\n\ndata: next\n\n");
        assert_eq!(events, [Event { event: None, data: "next".into() }]);
    }

    #[test]
    fn a_big_event_fed_byte_by_byte_is_read_in_linear_time() {
        let mut reader = EventReader::default();
        let event = format!("data: {}\n\n", "y".repeat(1 << 20));
        let started = std::time::Instant::now();
        let mut events = Vec::new();
        for b in event.as_bytes() {
            events.extend(reader.feed(&[*b]));
        }
        assert_eq!(events.len(), 1);
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
    }

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
