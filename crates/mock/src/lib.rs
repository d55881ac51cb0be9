//! Mock LLM providers on loopback that speak OpenAI's chat-completions wire
//! or Anthropic's Messages wire (JSON and SSE, see `dialect`) and play a
//! script of replies: healthy answers, tool calls, error statuses with
//! Retry-After, hangs, streams that finish, break or stall. Like the real
//! APIs, they refuse a malformed request with a 400.
//! `switchyard demo` runs two of them; the tests and the bench use them as
//! the providers whose outages the gateway must ride out.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod dialect;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use dialect::{Dialect, Said};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::sync::{Notify, mpsc};

/// Requests whose details a mock keeps for [`MockProvider::seen`].
pub const SEEN_KEPT: usize = 10_000;

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

struct Script {
    queue: VecDeque<Reply>,
    cycle: Vec<Reply>,
    next_in_cycle: usize,
}

impl Script {
    fn next(&mut self) -> Reply {
        if let Some(r) = self.queue.pop_front() {
            return r;
        }
        let r = self.cycle[self.next_in_cycle % self.cycle.len()].clone();
        self.next_in_cycle += 1;
        r
    }
}

/// What the mock saw of one request.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// `model` of the body.
    pub model: String,
    /// The `authorization` header, if any.
    pub authorization: Option<String>,
    /// Every request header.
    pub headers: http::HeaderMap,
    /// The request body.
    pub body: String,
    /// HTTP version the request came over.
    pub version: http::Version,
}

struct State {
    name: String,
    /// Speaks Anthropic's Messages wire instead of OpenAI's.
    anthropic: std::sync::atomic::AtomicBool,
    script: Mutex<Script>,
    received: AtomicUsize,
    /// TCP connections accepted.
    connections: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
    /// Requests being answered now, and the most there ever were at once
    /// (a stream counts until its headers are sent).
    inflight: AtomicUsize,
    max_inflight: AtomicUsize,
}

/// A mock OpenAI-wire provider on `127.0.0.1:<ephemeral>`. Stops when dropped.
pub struct MockProvider {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
    /// PEM of the self-signed certificate, when serving TLS.
    ca_pem: Option<String>,
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A base URL where nothing listens: connections are refused.
pub fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

impl MockProvider {
    /// A provider speaking Anthropic's Messages wire: answers and streams
    /// (the documented event sequence) in its shape; it wants
    /// `anthropic-version`, `max_tokens` and alternating roles. Errors play
    /// as scripted (see [`Reply::anthropic_overloaded`]).
    pub async fn start_anthropic(name: &str, cycle: Vec<Reply>) -> MockProvider {
        let mock = Self::start_with(name, cycle, None).await;
        mock.state.anthropic.store(true, Ordering::SeqCst);
        mock
    }

    /// Starts a provider named `name` that answers [`Reply::Ok`] forever.
    pub async fn start(name: &str) -> MockProvider {
        Self::start_cycling(name, vec![Reply::Ok]).await
    }

    /// Starts a provider that, once its queue is empty, plays `cycle` round and round.
    pub async fn start_cycling(name: &str, cycle: Vec<Reply>) -> MockProvider {
        Self::start_with(name, cycle, None).await
    }

    /// Like [`MockProvider::start_cycling`], over TLS with a fresh self-signed
    /// certificate for `localhost`, offering HTTP/2 and HTTP/1.1 (ALPN).
    pub async fn start_tls(name: &str, cycle: Vec<Reply>) -> MockProvider {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("self-signed cert");
        let cert = certified.cert.der().clone();
        let key = rustls::pki_types::PrivateKeyDer::try_from(certified.signing_key.serialize_der()).expect("key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("TLS server config");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let tls = (tokio_rustls::TlsAcceptor::from(Arc::new(config)), certified.cert.pem());
        Self::start_with(name, cycle, Some(tls)).await
    }

    async fn start_with(
        name: &str,
        cycle: Vec<Reply>,
        tls: Option<(tokio_rustls::TlsAcceptor, String)>,
    ) -> MockProvider {
        assert!(!cycle.is_empty(), "a mock needs at least one reply");
        // A deep accept queue: a provider accepts what it is sent, and a
        // bench that opens thousands of connections a second must measure
        // the gateway, not the mock's backlog (SYNs dropped, retried 1 s on).
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket.bind("127.0.0.1:0".parse().expect("an address")).expect("bind mock provider");
        let listener = socket.listen(4096).expect("listen");
        let addr = listener.local_addr().expect("mock addr");
        let state = Arc::new(State {
            name: name.to_owned(),
            anthropic: std::sync::atomic::AtomicBool::new(false),
            script: Mutex::new(Script { queue: VecDeque::new(), cycle, next_in_cycle: 0 }),
            received: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
            inflight: AtomicUsize::new(0),
            max_inflight: AtomicUsize::new(0),
        });
        let serving = state.clone();
        let (acceptor, ca_pem) = match tls {
            Some((acceptor, pem)) => (Some(acceptor), Some(pem)),
            None => (None, None),
        };
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let _ = stream.set_nodelay(true);
                serving.connections.fetch_add(1, Ordering::SeqCst);
                let state = serving.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| answer(state.clone(), req));
                    let server = auto::Builder::new(TokioExecutor::new());
                    match acceptor {
                        Some(acceptor) => {
                            if let Ok(tls) = acceptor.accept(stream).await {
                                let _ = server.serve_connection(TokioIo::new(tls), service).await;
                            }
                        }
                        None => {
                            let _ = server.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                });
            }
        });
        MockProvider { addr, state, task, ca_pem }
    }

    /// `https://localhost:PORT` for a TLS mock.
    pub fn tls_url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// The PEM certificate a client must trust to reach a TLS mock.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The provider's name (it appears in answers: "Hello from NAME").
    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// The most requests it was answering at once.
    pub fn max_inflight(&self) -> usize {
        self.state.max_inflight.load(Ordering::SeqCst)
    }

    /// Requests received so far.
    pub fn received(&self) -> usize {
        self.state.received.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far (a client that pools connections
    /// opens few).
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// What the mock saw of each of its first [`SEEN_KEPT`] requests (a mock
    /// serving a demo or a bench for hours keeps no more).
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// Plays `reply` for the next `times` requests (before the cycle resumes).
    pub fn push(&self, reply: Reply, times: usize) {
        let mut script = self.state.script.lock().unwrap();
        script.queue.extend(std::iter::repeat_n(reply, times));
    }

    /// Replaces the cycle played once the queue is empty.
    pub fn set_cycle(&self, cycle: Vec<Reply>) {
        assert!(!cycle.is_empty());
        let mut script = self.state.script.lock().unwrap();
        script.cycle = cycle;
        script.next_in_cycle = 0;
    }
}

type MockBody = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

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

async fn answer(state: Arc<State>, req: Request<Incoming>) -> Result<Response<MockBody>, Infallible> {
    let now = state.inflight.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_inflight.fetch_max(now, Ordering::SeqCst);
    let answered = respond_to(&state, req).await;
    state.inflight.fetch_sub(1, Ordering::SeqCst);
    answered
}

async fn respond_to(state: &Arc<State>, req: Request<Incoming>) -> Result<Response<MockBody>, Infallible> {
    state.received.fetch_add(1, Ordering::SeqCst);
    let headers = req.headers().clone();
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (version, method, path) = (req.version(), req.method().clone(), req.uri().path().to_owned());
    let body = req.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let model = json["model"].as_str().unwrap_or("unknown").to_owned();
    let streaming = json["stream"].as_bool().unwrap_or(false);
    let usage = json["stream_options"]["include_usage"] == true;
    {
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
    let reply = state.script.lock().unwrap().next();
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
