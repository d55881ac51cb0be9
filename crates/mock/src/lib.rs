//! Mock LLM providers on loopback that speak OpenAI's chat-completions wire
//! or Anthropic's Messages wire (JSON and SSE, see `dialect`) and play a
//! script of replies: healthy answers, tool calls, error statuses with
//! Retry-After, hangs, streams that finish, break or stall. Like the real
//! APIs, they refuse a malformed request with a 400.
//! `switchyard demo` runs two of them; the tests and the bench use them as
//! the providers whose outages the gateway must ride out.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod answer;
mod dialect;
mod plan;
mod reply;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

pub use plan::{Fault, FaultKind, ProviderPlan, Received, parse_span};
use reply::Script;
pub use reply::{Reply, StreamEnd};

/// Requests whose details a mock keeps for [`MockProvider::seen`].
pub const SEEN_KEPT: usize = 10_000;

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
    /// A scenario's plan, played instead of the script.
    playing: Option<plan::Playing>,
}

impl State {
    fn new(name: &str, cycle: Vec<Reply>, playing: Option<plan::Playing>) -> State {
        State {
            name: name.to_owned(),
            anthropic: std::sync::atomic::AtomicBool::new(false),
            script: Mutex::new(Script { queue: VecDeque::new(), cycle, next_in_cycle: 0 }),
            received: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
            inflight: AtomicUsize::new(0),
            max_inflight: AtomicUsize::new(0),
            playing,
        }
    }
}

/// Serves one connection of `state`'s provider over `io`.
async fn serve<I>(state: Arc<State>, io: I)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    state.connections.fetch_add(1, Ordering::SeqCst);
    let service = service_fn(move |req| answer::answer(state.clone(), req));
    let _ = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(io), service).await;
}

/// A provider playing a scenario's [`ProviderPlan`] over connections it is
/// handed (`switchyard simulate`'s in-memory pipes), in the runtime's time
/// (virtual, when the runtime's clock is paused).
pub struct PlannedProvider {
    state: Arc<State>,
}

impl PlannedProvider {
    /// A provider playing `plan`; `seed` decides which requests its faults hit.
    pub fn new(plan: ProviderPlan, seed: u64) -> PlannedProvider {
        let name = plan.name.clone();
        let anthropic = plan.api == "anthropic";
        let state = State::new(&name, vec![Reply::Ok], Some(plan::Playing::new(plan, seed)));
        state.anthropic.store(anthropic, Ordering::SeqCst);
        PlannedProvider { state: Arc::new(state) }
    }

    /// Serves one connection over `io` (a task of its own).
    pub fn serve<I>(&self, io: I)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        tokio::spawn(serve(self.state.clone(), io));
    }

    /// Whether a new connection now is refused.
    pub fn refuses_now(&self) -> bool {
        self.playing().plan.refuses_all(self.playing().born.elapsed())
    }

    /// The plan it plays.
    pub fn plan(&self) -> &ProviderPlan {
        &self.playing().plan
    }

    /// Every request it received, in order.
    pub fn received(&self) -> Vec<Received> {
        self.playing().received.lock().unwrap().clone()
    }

    fn playing(&self) -> &plan::Playing {
        self.state.playing.as_ref().expect("a planned provider plays a plan")
    }
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
        Self::serve_state(Arc::new(State::new(name, cycle, None)), 0, tls).await.expect("bind mock provider")
    }

    /// Serves `plan` on `127.0.0.1:PORT` (its `port`, or any free one) in
    /// real time: `switchyard mock --scenario`.
    pub async fn start_planned(plan: ProviderPlan, seed: u64) -> std::io::Result<MockProvider> {
        let (name, port, anthropic) = (plan.name.clone(), plan.port, plan.api == "anthropic");
        let state = State::new(&name, vec![Reply::Ok], Some(plan::Playing::new(plan, seed)));
        state.anthropic.store(anthropic, Ordering::SeqCst);
        Self::serve_state(Arc::new(state), port, None).await
    }

    async fn serve_state(
        state: Arc<State>,
        port: u16,
        tls: Option<(tokio_rustls::TlsAcceptor, String)>,
    ) -> std::io::Result<MockProvider> {
        // A deep accept queue: a provider accepts what it is sent, and a
        // bench that opens thousands of connections a second must measure
        // the gateway, not the mock's backlog (SYNs dropped, retried 1 s on).
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(std::net::SocketAddr::from(([127, 0, 0, 1], port)))?;
        let listener = socket.listen(4096)?;
        let addr = listener.local_addr()?;
        let serving = state.clone();
        let (acceptor, ca_pem) = match tls {
            Some((acceptor, pem)) => (Some(acceptor), Some(pem)),
            None => (None, None),
        };
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let _ = stream.set_nodelay(true);
                let state = serving.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match acceptor {
                        Some(acceptor) => {
                            if let Ok(tls) = acceptor.accept(stream).await {
                                serve(state, tls).await;
                            }
                        }
                        None => serve(state, stream).await,
                    }
                });
            }
        });
        Ok(MockProvider { addr, state, task, ca_pem })
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
