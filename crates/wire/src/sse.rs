//! Server-sent events as LLM APIs use them.

/// Watches the bytes of an OpenAI SSE stream go by and tells whether the
/// stream reached its terminating `data: [DONE]` event, so a stream the
/// provider cut short is never passed off as complete. Keeps only a few bytes
/// of state; chunk boundaries may fall anywhere.
#[derive(Debug, Default)]
pub struct DoneDetector {
    /// The current line so far, kept only while it could still be `data: [DONE]`.
    line: Vec<u8>,
    /// The current line has grown past anything `[DONE]` could be.
    line_overflow: bool,
    done: bool,
}

const DONE_LINE: &[u8] = b"data: [DONE]";

impl DoneDetector {
    /// Feeds the next chunk of the stream.
    pub fn feed(&mut self, chunk: &[u8]) {
        for &b in chunk {
            if b == b'\n' {
                let line = self.line.strip_suffix(b"\r").unwrap_or(&self.line);
                if !self.line_overflow && (line == DONE_LINE || line == b"data:[DONE]") {
                    self.done = true;
                }
                self.line.clear();
                self.line_overflow = false;
            } else if !self.line_overflow {
                if self.line.len() > DONE_LINE.len() + 1 {
                    self.line_overflow = true;
                    self.line.clear();
                } else {
                    self.line.push(b);
                }
            }
        }
    }

    /// The stream has carried its `[DONE]` event.
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
    fn crlf_lines_count() {
        let mut d = DoneDetector::default();
        d.feed(b"data: [DONE]\r\n\r\n");
        assert!(d.is_done());
    }
}
