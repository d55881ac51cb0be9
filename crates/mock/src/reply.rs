//! The script a mock plays: one [`Reply`] per request, from a queue of
//! one-off replies first, then round a cycle.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

/// One scripted reply.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A healthy answer: JSON, or SSE when the request asked for a stream.
    Ok,
    /// An error status with an OpenAI-style error body and extra headers.
    Status {
        /// HTTP status.
        status: u16,
        /// Extra response headers (e.g. `retry-after`).
        headers: Vec<(String, String)>,
        /// Error body.
        body: String,
    },
    /// The model calls tool `name` with `arguments` (JSON text), answered
    /// whole or streamed (the arguments in two pieces) in the mock's API.
    ToolCall {
        /// Tool name.
        name: String,
        /// Arguments, JSON text.
        arguments: String,
    },
    /// Accept the request and never answer.
    Hang,
    /// Close the connection without an answer.
    Reset,
    /// Wait, then reply.
    Delay(Duration, Box<Reply>),
    /// Stream these content pieces, `gap` apart, then end as `end` says.
    Stream {
        /// Content of each chunk.
        pieces: Vec<String>,
        /// Pause before each chunk after the first.
        gap: Duration,
        /// How the stream ends.
        end: StreamEnd,
    },
    /// A deterministic answer, `text`, streamed a word at a time (`gap`
    /// apart) or answered whole. Like a model asked to continue, when the
    /// request ends with a partial assistant turn that `text` starts with
    /// (trailing whitespace aside), only the rest of `text` is said. A
    /// stream ends as `end` says after `pieces` words (all of them: `None`).
    Tell {
        /// The whole answer.
        text: String,
        /// Pause between words.
        gap: Duration,
        /// Words sent before the stream ends as `end` (`None`: every word, then `end`).
        pieces: Option<usize>,
        /// How the stream ends.
        end: StreamEnd,
    },
    /// A 400 refusing a request that ends with a partial assistant turn
    /// (as providers without prefill support answer); else `then`.
    RefusePrefill(Box<Reply>),
    /// A streamed tool call whose connection is cut halfway through its arguments.
    ToolCallCut {
        /// Tool name.
        name: String,
        /// Arguments, JSON text (the first half is sent).
        arguments: String,
    },
    /// Headers and the preamble (OpenAI: a role-only chunk; Anthropic:
    /// `message_start`, an empty text block, `ping`), then `then`: a stall
    /// (`Stall`), an error event (`ProviderError`), or text after `delay`.
    Preamble {
        /// What follows the preamble.
        then: StreamEnd,
        /// Wait before `then` (for `Done`: before the text "late answer").
        delay: Duration,
    },
    /// Stream the first piece, then wait for `release` before the rest and `[DONE]`.
    StreamHeld {
        /// Content of each chunk.
        pieces: Vec<String>,
        /// Notified by the test to let the rest go.
        release: Arc<Notify>,
    },
}

/// How a scripted stream ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamEnd {
    /// `data: [DONE]` and a clean end.
    Done,
    /// The connection is torn down mid-stream.
    Cut,
    /// The body ends cleanly but without `[DONE]`, before the answer finished.
    Truncated,
    /// The whole answer (finish reason, usage) is sent, then the body ends
    /// cleanly without the API's end event (`[DONE]`, `message_stop`), as
    /// several OpenAI-compatible servers do.
    CompleteWithoutEnd,
    /// Nothing more is sent, ever.
    Stall,
    /// Only heartbeats from then on (a `ping` event, or an SSE comment for
    /// OpenAI), every 50 ms, with no content ever again.
    Heartbeats,
    /// The provider's own mid-stream error event (OpenAI: a data event with
    /// an `error` object; Anthropic: `event: error`, `overloaded_error`),
    /// then a clean end.
    ProviderError,
}

impl Reply {
    /// An error status with an OpenAI error body.
    pub fn status(status: u16) -> Reply {
        let body =
            format!(r#"{{"error":{{"message":"mock says {status}","type":"server_error","param":null,"code":null}}}}"#);
        Reply::Status { status, headers: Vec::new(), body }
    }

    /// 429 with `Retry-After: secs`.
    pub fn rate_limited(secs: u32) -> Reply {
        let body =
            r#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
        Reply::Status { status: 429, headers: vec![("retry-after".into(), secs.to_string())], body: body.into() }
    }

    /// Anthropic's 529 `overloaded_error`.
    pub fn anthropic_overloaded() -> Reply {
        let body = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        Reply::Status { status: 529, headers: Vec::new(), body: body.into() }
    }

    /// A 400 with this OpenAI error code.
    pub fn bad_request(code: &str, message: &str) -> Reply {
        let body = serde_json::json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}});
        Reply::Status { status: 400, headers: Vec::new(), body: body.to_string() }
    }

    /// [`Reply::Tell`]: `text` word by word, `gap` apart, ending as `end` says after `pieces` words.
    pub fn tell(text: &str, gap: Duration, pieces: Option<usize>, end: StreamEnd) -> Reply {
        Reply::Tell { text: text.to_owned(), gap, pieces, end }
    }

    /// A stream of `pieces` ending as `end` says.
    pub fn stream(pieces: &[&str], gap: Duration, end: StreamEnd) -> Reply {
        Reply::Stream { pieces: pieces.iter().map(|s| s.to_string()).collect(), gap, end }
    }
}

pub(crate) struct Script {
    pub(crate) queue: VecDeque<Reply>,
    pub(crate) cycle: Vec<Reply>,
    pub(crate) next_in_cycle: usize,
}

impl Script {
    pub(crate) fn next(&mut self) -> Reply {
        if let Some(r) = self.queue.pop_front() {
            return r;
        }
        let r = self.cycle[self.next_in_cycle % self.cycle.len()].clone();
        self.next_in_cycle += 1;
        r
    }
}
