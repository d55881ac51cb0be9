//! Relaying a streamed (SSE) answer that has committed (its first content
//! reached the client). Events are cut whole as they pass
//! (`switchyard_wire::stream::cutter`), and what the client received is kept,
//! so that when the stream breaks — cut, silent past the idle limit
//! (heartbeats do not count), the provider's error event (held back, never
//! shown), a malformed event — the request's policy can have it recovered
//! (`recovery.rs`): the recovery's events are spliced onto the client's
//! stream, and the client sees one answer, nothing twice. A break that is
//! not recovered ends with an error event in the client's API format, never
//! a clean-looking end. A provider that finished its answer but closed
//! without its API's end event is complete: the client gets the end event
//! it expects. How each upstream stream ended is what its target's health
//! records (not its first byte).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use hyper::body::Incoming;
use switchyard_policy_host::{BreakKind, HealthBook};
use switchyard_wire::Api;
use switchyard_wire::openai_error::OpenAiError;
use switchyard_wire::stream::cutter::EventCutter;
use switchyard_wire::stream::delivered::Delivered;
use switchyard_wire::stream::splice::Splicer;
use switchyard_wire::translate::stream::StreamTranslator;
use tokio::time::{Instant, Sleep};

use crate::recovery::{Recovering, Resumed, StreamRecovery};

/// Most of a stream kept to recover it; a longer answer that breaks ends
/// with an error event.
const MAX_TRANSCRIPT: usize = 1 << 20;

/// Most bytes gathered from the upstream before they go to the client in
/// one write (see [`Gathering`]).
const MAX_GATHERED: usize = 16 << 10;

/// How many scheduler turns without a new event the relay waits for one
/// before it sends what it gathered: hyper's client connection, a task on
/// the same thread, needs two to pass on the next chunk it has read.
const PATIENCE: u8 = 2;

/// Whether events that arrived together go to the client together.
///
/// hyper hands a response body's chunks over one at a time, and writes what
/// the client is owed whenever the body has nothing more: a stream whose
/// events arrive in one burst would cost one write (and one wake-up of the
/// client) per event. After an event, the relay gives the upstream
/// connection [`PATIENCE`] turns to pass on another before it says it has
/// nothing more. A lone event waits that many scheduler turns (µs).
#[derive(Default)]
struct Gathering {
    /// `ready` holds upstream events that more may join.
    on: bool,
    /// An event arrived since the last turn given to the upstream.
    fresh: bool,
    /// Turns given to the upstream since its last event.
    idle_turns: u8,
}

impl Gathering {
    /// Whether to give the upstream another turn.
    fn wait_more(&mut self) -> bool {
        if std::mem::take(&mut self.fresh) {
            self.idle_turns = 0;
        } else {
            self.idle_turns += 1;
        }
        self.idle_turns < PATIENCE
    }
}

/// Who a stream comes from, to record how it ended.
pub(crate) struct StreamSource {
    pub health: Arc<HealthBook>,
    pub target: u32,
    pub provider: Arc<str>,
    pub inflight: Option<crate::quota::Hold>,
    /// Time to the first content-bearing event: the latency the health book records.
    pub latency: Duration,
    /// The outcome is recorded (see [`StreamSource::ended`]).
    pub recorded: bool,
}

impl StreamSource {
    /// Records how the stream ended, once, and lets the attempt go.
    fn ended(&mut self, ok: bool) {
        if self.recorded {
            return;
        }
        self.recorded = true;
        self.inflight = None;
        self.health.record(self.target, ok, self.latency, None);
    }
}

/// One upstream stream being relayed: the provider's, or a recovery's.
pub(crate) struct Upstream {
    body: Incoming,
    source: StreamSource,
    /// Translates the provider's events for the client, event by event.
    translate: Option<Box<StreamTranslator>>,
    /// Rewrites a recovery's events to continue the client's stream.
    splice: Option<Box<Splicer>>,
    idle_timeout: Duration,
}

impl Upstream {
    pub fn new(
        body: Incoming,
        source: StreamSource,
        translate: Option<Box<StreamTranslator>>,
        splice: Option<Box<Splicer>>,
        idle_timeout: Duration,
    ) -> Self {
        Upstream { body, source, translate, splice, idle_timeout }
    }

    /// The target this stream comes from.
    pub fn target(&self) -> u32 {
        self.source.target
    }
}

/// Why the relay stops reading its upstream.
enum Interrupt {
    /// The stream broke: recoverable.
    Break(BreakKind, String),
    /// A recovery's answer differs from what the client has: the end.
    Diverged(String),
}

type Frames = Poll<Option<Result<Frame<Bytes>, std::convert::Infallible>>>;

pub(crate) struct Relay {
    /// The client's API: how its stream ends, and its error event.
    client: Api,
    /// Bytes for the client before anything else happens.
    ready: Option<Bytes>,
    upstream: Option<Upstream>,
    idle: Pin<Box<Sleep>>,
    cutter: EventCutter,
    /// What the client has received (`None` past [`MAX_TRANSCRIPT`]).
    transcript: Option<Vec<u8>>,
    /// The current upstream sent its API's end event.
    saw_end: bool,
    /// Found while forwarding what came before it: handled next.
    interrupt: Option<Interrupt>,
    /// The provider's own error event that broke the stream first, held
    /// back: what the client gets when the break is not recovered.
    held_error: Option<Bytes>,
    /// Asks the policy and carries out its recovery (`None`: cannot recover).
    recovery: Option<Box<StreamRecovery>>,
    recovering: Option<Recovering>,
    /// Nothing more after `ready`.
    done: bool,
    /// How the client's stream ended, for the access log (`None`: not yet).
    ended: Option<&'static str>,
    /// Resolves when the gateway's shutdown grace period is over.
    closing: Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
    gathering: Gathering,
}

impl Relay {
    pub fn new(
        client: Api,
        first: Bytes,
        upstream: Upstream,
        recovery: Option<Box<StreamRecovery>>,
        closing: tokio_util::sync::CancellationToken,
    ) -> Self {
        let idle = Box::pin(tokio::time::sleep(upstream.idle_timeout));
        let mut relay = Relay {
            client,
            ready: None,
            upstream: Some(upstream),
            idle,
            cutter: EventCutter::new(client),
            transcript: Some(Vec::new()),
            saw_end: false,
            interrupt: None,
            held_error: None,
            recovery,
            recovering: None,
            done: false,
            ended: None,
            closing: Box::pin(closing.cancelled_owned()),
            gathering: Gathering::default(),
        };
        relay.ready = Some(relay.pass(first));
        relay
    }

    fn reset_idle(&mut self) {
        if let Some(up) = &self.upstream {
            self.idle.as_mut().reset(Instant::now() + up.idle_timeout);
        }
    }

    /// What the client gets of upstream `data` now: translated, spliced,
    /// cut to whole events; an error event is held back as an interrupt.
    fn pass(&mut self, data: Bytes) -> Bytes {
        let Some(up) = self.upstream.as_mut() else { return Bytes::new() };
        let data = match up.translate.as_mut() {
            Some(t) => Bytes::from(t.feed(&data)),
            None => data,
        };
        let data = match up.splice.as_mut().map(|s| s.feed(&data)) {
            None => data,
            Some(Ok(spliced)) => Bytes::from(spliced),
            Some(Err(diverged)) => {
                self.interrupt = Some(Interrupt::Diverged(diverged.to_string()));
                return Bytes::new();
            }
        };
        let cut = self.cutter.feed(data);
        if cut.activity {
            self.reset_idle();
        }
        self.saw_end |= cut.end;
        if let Some(transcript) = self.transcript.as_mut() {
            if transcript.len() + cut.forward.len() > MAX_TRANSCRIPT {
                self.transcript = None;
            } else {
                transcript.extend_from_slice(&cut.forward);
            }
        }
        if let Some(error) = cut.error {
            self.interrupt = Some(Interrupt::Break(BreakKind::ProviderError, error_message(&error)));
            self.held_error.get_or_insert(error);
        } else if cut.oversized {
            let why = format!("an event outgrew {} bytes", switchyard_wire::sse::MAX_EVENT_BYTES);
            self.interrupt = Some(Interrupt::Break(BreakKind::Malformed, why));
        }
        cut.forward
    }

    fn ready_with(&mut self, bytes: Bytes) {
        self.ready = match self.ready.take() {
            // Appended in place when the bytes held are ours alone (gathered ones are).
            Some(before) if !before.is_empty() => match before.try_into_mut() {
                Ok(mut held) => {
                    held.extend_from_slice(&bytes);
                    Some(held.freeze())
                }
                Err(before) => Some([before, bytes].concat().into()),
            },
            _ => Some(bytes),
        };
    }

    /// Ends the client's stream with an error event: the provider's own
    /// when one broke the stream first (the real error, not masked by a
    /// recovery's), else the gateway's with `message`.
    fn end_with_error(&mut self, message: String) {
        self.end_with_error_coded(message, "upstream_stream_broken");
    }

    /// [`Relay::end_with_error`] with the error's `code`.
    fn end_with_error_coded(&mut self, message: String, code: &'static str) {
        if let Some(up) = self.upstream.as_mut() {
            up.source.ended(false);
        }
        self.upstream = None;
        tracing::warn!("stream ended with an error event: {message}");
        let event = match self.held_error.take() {
            Some(held) => held,
            None => self.client.stream_error_event(&OpenAiError::server(message, code)),
        };
        self.ready_with(event);
        self.done = true;
        self.ended = Some("error");
    }

    /// The current upstream ended (`ok`) and the client's stream with it.
    fn end_cleanly(&mut self, tail: Option<Bytes>) {
        if let Some(up) = self.upstream.as_mut() {
            up.source.ended(true);
        }
        self.upstream = None;
        if let Some(tail) = tail {
            self.ready_with(tail);
        }
        self.done = true;
        self.ended = Some("complete");
    }

    fn interrupted(&mut self, interrupt: Interrupt) {
        let (kind, detail) = match interrupt {
            Interrupt::Diverged(why) => {
                let provider = self.upstream.as_ref().map(|u| u.source.provider.clone());
                let from = provider.as_deref().unwrap_or("the recovery");
                return self.end_with_error(format!(
                    "The stream broke off and could not be recovered: {from}'s new answer did not match what was \
                     already sent ({why})."
                ));
            }
            Interrupt::Break(kind, detail) => (kind, detail),
        };
        let Some(mut up) = self.upstream.take() else { return };
        let provider = up.source.provider.clone();
        let delivered = self.transcript.as_deref().map(|t| Delivered::read(self.client, t));
        if let Some(d) = &delivered
            && d.finished
            && kind != BreakKind::ProviderError
        {
            tracing::debug!(%provider, "complete stream broke before its end event: ended for the client");
            self.upstream = Some(up);
            return self.end_cleanly(Some(Bytes::from_static(self.client.stream_end_event())));
        }
        up.source.ended(false);
        let target = up.target();
        drop(up);
        tracing::warn!(%provider, kind = kind.describe(), "the stream broke after reaching the client: {detail}");
        let message = format!("The provider's stream broke off ({}): {detail}.", kind.describe());
        match (self.recovery.take(), delivered) {
            (Some(recovery), Some(delivered)) => {
                self.recovering = Some(recovery.recover(target, kind, message, delivered));
            }
            _ => self.end_with_error(message),
        }
    }

    /// The current upstream closed cleanly.
    fn upstream_closed(&mut self) {
        let rest = self.cutter.finish();
        self.saw_end |= rest.end;
        if !rest.forward.is_empty() {
            if let Some(t) = self.transcript.as_mut() {
                t.extend_from_slice(&rest.forward);
            }
            self.ready_with(rest.forward);
        }
        if self.saw_end {
            return self.end_cleanly(None);
        }
        // Complete all the same (a stop reason came), only the end event missing?
        let tail = match self.upstream.as_mut().and_then(|u| u.translate.as_mut()) {
            Some(t) => t.end().map(Bytes::from),
            None => self
                .transcript
                .as_deref()
                .filter(|t| Delivered::read(self.client, t).finished)
                .map(|_| Bytes::from_static(self.client.stream_end_event())),
        };
        match tail {
            Some(tail) => {
                tracing::debug!("complete stream closed without its end event: ended for the client");
                self.end_cleanly(Some(tail));
            }
            None => {
                let why = "the provider closed the stream before it was complete".to_owned();
                self.interrupt = Some(Interrupt::Break(BreakKind::Cut, why));
            }
        }
    }

    fn resumed(&mut self, resumed: Resumed) {
        match resumed {
            Resumed::Source { upstream, first, comment } => {
                self.upstream = Some(*upstream);
                self.saw_end = false;
                self.cutter = EventCutter::new(self.client);
                self.reset_idle();
                let first = self.pass(first);
                self.ready_with(comment);
                self.ready_with(first);
            }
            Resumed::End(message) => self.end_with_error(message),
        }
    }
}

impl Drop for Relay {
    /// The stream's access log line: how it ended, with the usage it carried.
    fn drop(&mut self) {
        let Some(recovery) = self.recovery.as_mut() else { return };
        let usage = match self.transcript.as_deref() {
            Some(t) => switchyard_wire::usage::scan_stream(self.client, t),
            None => switchyard_wire::usage::Usage::default(),
        };
        recovery.finish(self.ended.unwrap_or("client-gone"), usage);
    }
}

/// The message of a held-back error event, for logs and the client's error.
fn error_message(event: &[u8]) -> String {
    let mut reader = switchyard_wire::sse::EventReader::default();
    let data = reader.feed(event).into_iter().next().map(|e| e.data).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&data).unwrap_or_default();
    let message = v["error"]["message"].as_str().unwrap_or("the provider sent an error event");
    format!("the provider sent an error event: {}", switchyard_wire::text::truncate(message, 300))
}

impl Body for Relay {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Frames {
        let this = self.get_mut();
        loop {
            if !this.gathering.on
                && let Some(bytes) = this.ready.take()
                && !bytes.is_empty()
            {
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            if let Some(interrupt) = this.interrupt.take() {
                this.interrupted(interrupt);
                continue;
            }
            if let Some(recovering) = this.recovering.as_mut() {
                let (recovery, resumed) = ready!(recovering.as_mut().poll(cx));
                this.recovering = None;
                this.recovery = Some(recovery);
                this.resumed(resumed);
                continue;
            }
            if this.done {
                return Poll::Ready(None);
            }
            let Some(up) = this.upstream.as_mut() else {
                if std::mem::take(&mut this.gathering.on) {
                    continue;
                }
                return Poll::Ready(None);
            };
            match Pin::new(&mut up.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        let out = this.pass(data);
                        this.ready_with(out);
                        let held = this.ready.as_ref().map_or(0, Bytes::len);
                        // What came before a break goes out before it is handled.
                        this.gathering.on = this.interrupt.is_none() && !this.done && held < MAX_GATHERED;
                        this.gathering.fresh = true;
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.gathering.on = false;
                    let why = format!("the connection broke: {e}");
                    this.interrupt = Some(Interrupt::Break(BreakKind::Cut, why));
                }
                Poll::Ready(None) => {
                    this.gathering.on = false;
                    this.upstream_closed();
                }
                Poll::Pending if this.gathering.on => {
                    if this.gathering.wait_more() {
                        // The upstream connection's turn: more may be on its way.
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    this.gathering = Gathering::default();
                }
                Poll::Pending => {
                    if this.closing.as_mut().poll(cx).is_ready() {
                        this.held_error = None;
                        let why = "The gateway is shutting down; the answer was cut short. Retry on another instance.";
                        this.end_with_error_coded(why.into(), "gateway_shutting_down");
                        continue;
                    }
                    ready!(this.idle.as_mut().poll(cx));
                    let ms = up.idle_timeout.as_millis();
                    let why = format!("no content for {ms} ms");
                    this.interrupt = Some(Interrupt::Break(BreakKind::Stall, why));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.ready.as_ref().is_none_or(Bytes::is_empty) && self.recovering.is_none()
    }
}
