//! Answering one request: read it (a malformed one gets a 400, as the real
//! APIs give), note what was seen, then play the script's next reply in the
//! mock's dialect — a JSON body, or SSE events fed through a channel.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use tokio::sync::mpsc;

use crate::dialect::{Dialect, Said};
use crate::{Reply, SEEN_KEPT, Seen, State, StreamEnd};

pub(crate) type MockBody = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

fn full(text: String) -> MockBody {
    http_body_util::Full::new(Bytes::from(text)).map_err(|never: Infallible| match never {}).boxed_unsync()
}

/// A body fed by a channel; an `Err` item tears the connection down.
struct ChannelBody(mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.0.poll_recv(cx).map(|item| item.map(|r| r.map(Frame::data)))
    }
}

fn sse_response(body: ChannelBody) -> Response<MockBody> {
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(body.boxed_unsync())
        .expect("valid response")
}

/// Answers one request; an `Err` closes the connection without an answer
/// (a planned `refuse`).
pub(crate) async fn answer(state: Arc<State>, req: Request<Incoming>) -> Result<Response<MockBody>, std::io::Error> {
    let now = state.inflight.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_inflight.fetch_max(now, Ordering::SeqCst);
    let answered = respond_to(&state, req).await;
    state.inflight.fetch_sub(1, Ordering::SeqCst);
    answered
}

async fn respond_to(state: &Arc<State>, req: Request<Incoming>) -> Result<Response<MockBody>, std::io::Error> {
    state.received.fetch_add(1, Ordering::SeqCst);
    let headers = req.headers().clone();
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (version, method, path) = (req.version(), req.method().clone(), req.uri().path().to_owned());
    let body = req.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let model = json["model"].as_str().unwrap_or("unknown").to_owned();
    let streaming = json["stream"].as_bool().unwrap_or(false);
    let usage = json["stream_options"]["include_usage"] == true;
    // A planned provider (a scenario's) keeps what it received its own way.
    if state.playing.is_none() {
        let mut seen = state.seen.lock().unwrap();
        if seen.len() < SEEN_KEPT {
            seen.push(Seen {
                model: model.clone(),
                authorization,
                headers: headers.clone(),
                body: String::from_utf8_lossy(&body).into(),
                version,
            });
        }
    }
    let dialect = if state.anthropic.load(Ordering::SeqCst) { Dialect::Anthropic } else { Dialect::OpenAi };
    if path.ends_with("/messages/count_tokens") {
        // Anthropic's counter (outside the script): a rough count of the prompt.
        return Ok(match dialect {
            Dialect::Anthropic => json_response(format!(r#"{{"input_tokens":{}}}"#, body.len() / 4)),
            Dialect::OpenAi => Response::builder().status(404).body(full(String::new())).expect("valid response"),
        });
    }
    let reply = match &state.playing {
        Some(playing) => playing.choose(&body, streaming),
        None => state.script.lock().unwrap().next(),
    };
    if matches!(reply, Reply::Reset) {
        return Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "the mock refuses the connection"));
    }
    // A malformed chat request gets the 400 the real API would give it.
    if method == http::Method::POST
        && let Some(refusal) = dialect.refusal(&json, &headers)
    {
        return Ok(play(
            &state.name,
            &model,
            Stream::No,
            dialect,
            Reply::Status { status: 400, headers: Vec::new(), body: refusal },
            None,
        )
        .await);
    }
    let stream = match (streaming, usage) {
        (false, _) => Stream::No,
        (true, usage) => Stream::Yes { usage },
    };
    let prefill = dialect.partial_turn(&json);
    Ok(play(&state.name, &model, stream, dialect, reply, prefill.as_deref()).await)
}

/// Whether the request asked for a stream, and OpenAI's usage chunk.
#[derive(Clone, Copy)]
enum Stream {
    No,
    Yes { usage: bool },
}

fn json_response(body: String) -> Response<MockBody> {
    Response::builder()
        .header("content-type", "application/json")
        .header("x-request-id", "req_mock")
        .header("request-id", "req_mock")
        .body(full(body))
        .expect("valid response")
}

async fn play(
    name: &str,
    model: &str,
    stream: Stream,
    dialect: Dialect,
    mut reply: Reply,
    prefill: Option<&str>,
) -> Response<MockBody> {
    loop {
        match reply {
            Reply::RefusePrefill(then) => {
                if prefill.is_none() {
                    reply = *then;
                    continue;
                }
                let body = dialect.error_body("invalid_request_error", "this model does not support assistant prefill");
                return Response::builder()
                    .status(StatusCode::BAD_REQUEST)
                    .header("content-type", "application/json")
                    .body(full(body))
                    .expect("valid response");
            }
            Reply::Tell { text, gap, pieces, end } => {
                // A model asked to continue says only what follows the partial turn.
                let said = match prefill {
                    Some(p) if text.starts_with(p.trim_end()) => &text[p.trim_end().len()..],
                    _ => text.as_str(),
                };
                let Stream::Yes { usage } = stream else {
                    return json_response(dialect.answer(model, &Said::Text(said)));
                };
                let words: Vec<&str> = said.split_inclusive(' ').collect();
                let (count, end) = match pieces {
                    Some(n) if n < words.len() => (n, end),
                    Some(_) | None => (words.len(), end),
                };
                let mut events = dialect.stream_open(model);
                let first_piece = events.len();
                events.extend(words[..count].iter().map(|w| dialect.stream_text(model, w)));
                return stream_events(events, first_piece, gap, end, dialect.stream_close(model, usage), dialect);
            }
            Reply::ToolCallCut { name: tool, arguments } => {
                let mut events = dialect.stream_tool_call(model, &tool, &arguments, false);
                // Up to the first half of the arguments (see `stream_tool_call`).
                let keep = match dialect {
                    Dialect::OpenAi => 3,
                    Dialect::Anthropic => 3,
                };
                events.truncate(keep);
                return stream_events(events, 0, Duration::ZERO, StreamEnd::Cut, Vec::new(), dialect);
            }
            Reply::Preamble { then, delay } => {
                let usage = matches!(stream, Stream::Yes { usage: true });
                let (tx, rx) = mpsc::channel(16);
                let model = model.to_owned();
                tokio::spawn(async move {
                    for event in dialect.stream_preamble(&model) {
                        let _ = tx.send(Ok(event)).await;
                    }
                    tokio::time::sleep(delay).await;
                    match then {
                        StreamEnd::ProviderError => {
                            let _ = tx.send(Ok(dialect.stream_error())).await;
                        }
                        StreamEnd::Done => {
                            let _ = tx.send(Ok(dialect.stream_text(&model, "late answer"))).await;
                            for event in dialect.stream_close(&model, usage) {
                                let _ = tx.send(Ok(event)).await;
                            }
                        }
                        StreamEnd::Cut => {
                            let _ = tx.send(Err(std::io::Error::other("mock cuts the stream"))).await;
                        }
                        _ => tx.closed().await,
                    }
                });
                return sse_response(ChannelBody(rx));
            }
            Reply::Delay(wait, then) => {
                tokio::time::sleep(wait).await;
                reply = *then;
            }
            Reply::Hang => std::future::pending::<()>().await,
            Reply::Reset => return json_response(String::new()),
            Reply::Ok if matches!(stream, Stream::Yes { .. }) => {
                let greeting = format!("Hello from {name}");
                let pieces: Vec<String> = greeting.split_inclusive(' ').map(str::to_owned).collect();
                reply = Reply::Stream { pieces, gap: Duration::ZERO, end: StreamEnd::Done };
            }
            Reply::Ok => return json_response(dialect.answer(model, &Said::Text(&format!("Hello from {name}")))),
            Reply::ToolCall { name: tool, arguments } => {
                let Stream::Yes { usage } = stream else {
                    return json_response(
                        dialect.answer(model, &Said::ToolCall { name: &tool, arguments: &arguments }),
                    );
                };
                let events = dialect.stream_tool_call(model, &tool, &arguments, usage);
                return stream_events(events, 0, Duration::ZERO, StreamEnd::Done, Vec::new(), dialect);
            }
            Reply::Status { status, headers, body } => {
                let mut b = Response::builder()
                    .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
                b = b.header("content-type", "application/json");
                for (k, v) in headers {
                    b = b.header(k, v);
                }
                return b.body(full(body)).expect("valid response");
            }
            Reply::Stream { mut pieces, gap, end } => {
                let usage = matches!(stream, Stream::Yes { usage: true });
                // Asked to continue a partial turn: the pieces it already holds are not said again.
                if let Some(p) = prefill.map(str::trim_end) {
                    let mut said = String::new();
                    let covered = pieces
                        .iter()
                        .take_while(|piece| {
                            said.push_str(piece);
                            p.starts_with(said.trim_end())
                        })
                        .count();
                    pieces.drain(..covered);
                }
                let mut events = dialect.stream_open(model);
                // The gap separates the pieces, not the opening events.
                let first_piece = events.len();
                events.extend(pieces.iter().map(|p| dialect.stream_text(model, p)));
                return stream_events(events, first_piece, gap, end, dialect.stream_close(model, usage), dialect);
            }
            Reply::StreamHeld { pieces, release } => {
                let usage = matches!(stream, Stream::Yes { usage: true });
                let (tx, rx) = mpsc::channel(16);
                let model = model.to_owned();
                tokio::spawn(async move {
                    let mut pieces = pieces.into_iter();
                    for event in dialect.stream_open(&model) {
                        let _ = tx.send(Ok(event)).await;
                    }
                    if let Some(first) = pieces.next() {
                        let _ = tx.send(Ok(dialect.stream_text(&model, &first))).await;
                    }
                    release.notified().await;
                    for piece in pieces {
                        let _ = tx.send(Ok(dialect.stream_text(&model, &piece))).await;
                    }
                    for event in dialect.stream_close(&model, usage) {
                        let _ = tx.send(Ok(event)).await;
                    }
                });
                return sse_response(ChannelBody(rx));
            }
        }
    }
}

/// Sends `events` on a fresh SSE response, `gap` apart from the one after
/// `first_piece` on, then ends as `end` says (`close` are a complete end).
fn stream_events(
    events: Vec<Bytes>,
    first_piece: usize,
    gap: Duration,
    end: StreamEnd,
    close: Vec<Bytes>,
    dialect: Dialect,
) -> Response<MockBody> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        for (i, event) in events.into_iter().enumerate() {
            if i > first_piece && !gap.is_zero() {
                tokio::time::sleep(gap).await;
            }
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
        }
        match end {
            StreamEnd::Done => {
                for event in close {
                    let _ = tx.send(Ok(event)).await;
                }
            }
            StreamEnd::Cut => {
                // What was sent reaches the client before the connection is torn down.
                tokio::time::sleep(Duration::from_millis(20)).await;
                let _ = tx.send(Err(std::io::Error::other("mock cuts the stream"))).await;
            }
            StreamEnd::Truncated => {}
            StreamEnd::CompleteWithoutEnd => {
                let all_but_the_end = close.len().saturating_sub(1);
                for event in close.into_iter().take(all_but_the_end) {
                    let _ = tx.send(Ok(event)).await;
                }
            }
            StreamEnd::Stall => tx.closed().await,
            StreamEnd::Heartbeats => loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if tx.send(Ok(dialect.heartbeat())).await.is_err() {
                    return;
                }
            },
            StreamEnd::ProviderError => {
                let _ = tx.send(Ok(dialect.stream_error())).await;
            }
        }
    });
    sse_response(ChannelBody(rx))
}
