//! Whole events out of a stream's chunks, with the little the relay must
//! know of each: is it a heartbeat, the stream's end, or an error event?
//! Complete events are forwarded as they came (the chunk itself, when it
//! ends on an event boundary, as providers' chunks do); the bytes of an
//! event still incomplete wait for the next chunk; an error event is held
//! back, so that a broken stream can still be recovered before the client
//! sees it. One pass per byte (`memchr` for line ends), no JSON parsing.

use bytes::Bytes;

use crate::Api;
use crate::api::StreamLine;
use crate::sse::MAX_EVENT_BYTES;

/// What one chunk yielded.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Cut {
    /// Complete events to forward, as they came.
    pub forward: Bytes,
    /// An error event (and anything after it): the stream broke here.
    pub error: Option<Bytes>,
    /// At least one event that is not a heartbeat (comment or `ping`).
    pub activity: bool,
    /// The stream's end event came.
    pub end: bool,
    /// An event outgrew [`MAX_EVENT_BYTES`] without ending: malformed.
    pub oversized: bool,
}

/// Cuts a stream of one API into whole events. See the module docs.
#[derive(Debug)]
pub struct EventCutter {
    end: StreamLine,
    error: StreamLine,
    /// The start of an event whose end has not come yet.
    pending: Vec<u8>,
}

/// What is known of the event being read.
#[derive(Default)]
struct Seen {
    heartbeat_only: bool,
    lines: usize,
    ping: bool,
    error: bool,
    end: bool,
}

impl EventCutter {
    /// A cutter for streams of `api`.
    pub fn new(api: Api) -> Self {
        EventCutter { end: api.stream_end(), error: api.stream_error(), pending: Vec::new() }
    }

    /// Feeds the next chunk.
    pub fn feed(&mut self, chunk: Bytes) -> Cut {
        let buf = if self.pending.is_empty() {
            chunk
        } else {
            self.pending.extend_from_slice(&chunk);
            Bytes::from(std::mem::take(&mut self.pending))
        };
        let mut cut = Cut::default();
        let (mut event_start, mut line_start, mut complete) = (0, 0, 0);
        let mut seen = Seen { heartbeat_only: true, ..Seen::default() };
        for nl in memchr::memchr_iter(b'\n', &buf) {
            let line = &buf[line_start..nl];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            line_start = nl + 1;
            if !line.is_empty() {
                seen.lines += 1;
                let comment = line.starts_with(b":");
                seen.ping |= line == b"event: ping" || line == b"event:ping";
                seen.heartbeat_only &= comment;
                seen.error |= self.error.matches(line, false);
                seen.end |= self.end.matches(line, false);
                continue;
            }
            // A blank line: the event from `event_start` is complete.
            if seen.lines > 0 {
                if seen.error {
                    cut.forward = buf.slice(..event_start);
                    cut.error = Some(buf.slice(event_start..));
                    return cut;
                }
                cut.activity |= !(seen.heartbeat_only || seen.ping);
                cut.end |= seen.end;
            }
            complete = line_start;
            event_start = line_start;
            seen = Seen { heartbeat_only: true, ..Seen::default() };
        }
        cut.forward = buf.slice(..complete);
        if complete < buf.len() {
            self.pending.extend_from_slice(&buf[complete..]);
            if self.pending.len() > MAX_EVENT_BYTES {
                self.pending.clear();
                cut.oversized = true;
            }
        }
        cut
    }

    /// The stream ended: what was left of an event that never got its
    /// blank line (forwarded as it is; a last `data: [DONE]` without one
    /// still ends the stream), as a final [`Cut`].
    pub fn finish(&mut self) -> Cut {
        if self.pending.is_empty() {
            return Cut::default();
        }
        let mut rest = std::mem::take(&mut self.pending);
        if !rest.ends_with(b"\n") {
            rest.push(b'\n');
        }
        rest.push(b'\n');
        self.feed(Bytes::from(rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_of_whole_events_is_forwarded_as_it_is() {
        let mut c = EventCutter::new(Api::OpenAi);
        let chunk = Bytes::from_static(b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\n");
        let cut = c.feed(chunk.clone());
        assert_eq!(cut.forward, chunk);
        assert!(cut.activity && !cut.end && cut.error.is_none());
        assert_eq!(cut.forward.as_ptr(), chunk.as_ptr(), "no copy");
    }

    #[test]
    fn events_split_anywhere_come_out_whole() {
        let stream = b"data: {\"x\":\"1\"}\r\n\r\n: keep-alive\n\ndata: [DONE]\n\n";
        for split in 0..stream.len() {
            let mut c = EventCutter::new(Api::OpenAi);
            let a = c.feed(Bytes::copy_from_slice(&stream[..split]));
            let b = c.feed(Bytes::copy_from_slice(&stream[split..]));
            let mut all = a.forward.to_vec();
            all.extend_from_slice(&b.forward);
            assert_eq!(all, stream, "split at {split}");
            assert!(a.end || b.end, "split at {split}");
        }
    }

    #[test]
    fn heartbeats_are_not_activity() {
        let mut c = EventCutter::new(Api::OpenAi);
        assert!(!c.feed(Bytes::from_static(b": ping\n\n")).activity);
        let mut a = EventCutter::new(Api::Anthropic);
        assert!(!a.feed(Bytes::from_static(b"event: ping\ndata: {\"type\": \"ping\"}\n\n")).activity);
        assert!(a.feed(Bytes::from_static(b"event: content_block_delta\ndata: {}\n\n")).activity);
    }

    #[test]
    fn an_error_event_is_held_back_with_what_follows() {
        let mut c = EventCutter::new(Api::Anthropic);
        let cut = c.feed(Bytes::from_static(
            b"event: content_block_delta\ndata: {}\n\nevent: error\ndata: {\"type\":\"error\"}\n\nevent: message_stop\n\n",
        ));
        assert_eq!(&cut.forward[..], b"event: content_block_delta\ndata: {}\n\n");
        assert!(cut.error.unwrap().starts_with(b"event: error"));
        assert!(!cut.end);
    }

    #[test]
    fn an_event_that_never_ends_is_malformed_and_not_kept() {
        let mut c = EventCutter::new(Api::OpenAi);
        let big = Bytes::from(vec![b'x'; MAX_EVENT_BYTES + 1]);
        assert!(c.feed(big).oversized);
        assert!(c.pending.is_empty());
    }

    #[test]
    fn a_last_event_without_its_blank_line_is_finished_at_the_end() {
        let mut c = EventCutter::new(Api::OpenAi);
        assert!(c.feed(Bytes::from_static(b"data: [DONE]")).forward.is_empty());
        let last = c.finish();
        assert!(last.end);
        assert_eq!(&last.forward[..], b"data: [DONE]\n\n");
    }
}
