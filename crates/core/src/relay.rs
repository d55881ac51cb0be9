//! Relaying a streamed (SSE) answer chunk by chunk. Once the first byte has
//! gone to the client no retry is possible, so a stream the provider breaks,
//! closes before its answer was complete, or lets go silent past the idle
//! timeout ends with an error event in the client's API format, never a
//! clean-looking end. A provider that finished its answer (a choice's
//! `finish_reason`, a message's `stop_reason`) but closed without its API's
//! end event (`data: [DONE]`, `event: message_stop`) is complete: the client
//! gets the end event it expects. How the stream ended is what the target's
//! health records (not its first byte).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use hyper::body::Incoming;
use switchyard_policy_host::HealthBook;
use switchyard_policy_host::health::InflightGuard;
use switchyard_wire::Api;
use switchyard_wire::openai_error::OpenAiError;
use switchyard_wire::sse::DoneDetector;
use switchyard_wire::translate::stream::StreamTranslator;
use tokio::time::{Instant, Sleep};

/// Who the stream comes from, to record how it ended.
pub(crate) struct StreamSource {
    pub health: Arc<HealthBook>,
    pub target: u32,
    pub provider: Arc<str>,
    pub inflight: Option<InflightGuard>,
    /// Time to the first chunk: the latency the health book records.
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

pub(crate) struct Relay {
    /// The client's API: how its stream ends, and its error event.
    client: Api,
    first: Option<Bytes>,
    upstream: Option<Incoming>,
    idle: Pin<Box<Sleep>>,
    idle_timeout: Duration,
    done: DoneDetector,
    source: StreamSource,
    /// Translates the provider's events for the client, event by event.
    translate: Option<Box<StreamTranslator>>,
}

impl Relay {
    pub fn new(
        client: Api,
        first: Bytes,
        rest: Incoming,
        idle_timeout: Duration,
        source: StreamSource,
        translate: Option<Box<StreamTranslator>>,
    ) -> Self {
        Relay {
            client,
            first: Some(first),
            upstream: Some(rest),
            idle: Box::pin(tokio::time::sleep(idle_timeout)),
            idle_timeout,
            done: DoneDetector::new(client),
            source,
            translate,
        }
    }

    /// What the client gets of `data`: the bytes as they came, or their
    /// translation (possibly nothing yet, when an event is still incomplete).
    fn pass(&mut self, data: Bytes) -> Bytes {
        let data = match self.translate.as_mut() {
            Some(t) => Bytes::from(t.feed(&data)),
            None => data,
        };
        self.done.feed(&data);
        data
    }

    /// Closes the upstream connection and records the stream as a failure
    /// of its target.
    fn broken(&mut self) {
        self.upstream = None;
        self.source.ended(false);
    }

    /// The upstream ended cleanly without its end event: the client's
    /// closing events if the answer was complete all the same.
    fn completed_without_end_event(&mut self) -> Option<Bytes> {
        let tail = match self.translate.as_mut() {
            Some(t) => Bytes::from(t.end()?),
            None if self.done.finished() => Bytes::from_static(self.client.stream_end_event()),
            None => return None,
        };
        self.done.feed(&tail);
        Some(tail)
    }

    /// The stream carried its own error event (the provider's, translated
    /// if need be) and then ended: a failure, already told to the client.
    fn ended_by_error(&mut self) -> Poll<Option<Result<Frame<Bytes>, std::convert::Infallible>>> {
        self.broken();
        tracing::warn!(provider = %self.source.provider, "the provider ended the stream with an error event");
        Poll::Ready(None)
    }

    /// Ends the stream with an error event and closes the upstream connection.
    fn fail(&mut self, message: String) -> Poll<Option<Result<Frame<Bytes>, std::convert::Infallible>>> {
        self.broken();
        tracing::warn!(provider = %self.source.provider, "stream ended with an error event: {message}");
        let event = self.client.stream_error_event(&OpenAiError::server(message, "upstream_stream_broken"));
        Poll::Ready(Some(Ok(Frame::data(event))))
    }
}

impl Body for Relay {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Some(first) = this.first.take() {
            let first = this.pass(first);
            if !first.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(first))));
            }
        }
        loop {
            let Some(upstream) = this.upstream.as_mut() else { return Poll::Ready(None) };
            match Pin::new(upstream).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else { continue };
                    let deadline = Instant::now() + this.idle_timeout;
                    this.idle.as_mut().reset(deadline);
                    let data = this.pass(data);
                    if data.is_empty() {
                        continue;
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(Some(Err(_))) if this.done.errored() => return this.ended_by_error(),
                Poll::Ready(Some(Err(e))) => return this.fail(format!("the provider's stream broke off: {e}")),
                Poll::Ready(None) if this.done.is_done() => {
                    this.upstream = None;
                    this.source.ended(true);
                    return Poll::Ready(None);
                }
                Poll::Ready(None) if this.done.errored() => {
                    // The client already has the error event; record the failure, add nothing.
                    return this.ended_by_error();
                }
                Poll::Ready(None) => {
                    if let Some(tail) = this.completed_without_end_event() {
                        tracing::debug!(provider = %this.source.provider, "complete stream closed without its end event: ended for the client");
                        this.upstream = None;
                        this.source.ended(true);
                        return Poll::Ready(Some(Ok(Frame::data(tail))));
                    }
                    return this.fail("the provider closed the stream before it was complete".into());
                }
                Poll::Pending => {
                    ready!(this.idle.as_mut().poll(cx));
                    let ms = this.idle_timeout.as_millis();
                    return this.fail(format!("the provider's stream stalled: nothing for {ms} ms"));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.upstream.is_none()
    }
}
