//! One run: the real gateway (`Gateway::simulated`: the same ingress,
//! exchange, policy host, breaker, retry budget and cache as `serve`) on a
//! single-threaded runtime whose clock is paused, so that time moves only
//! when every task waits for a timer — a provider's latency, a backoff, a
//! breaker's cool-down — and jumps straight to the next one. Clients and
//! providers talk to it over in-memory pipes in the real wire formats.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use switchyard_core::Gateway;
use switchyard_core::simulation::{Dial, Simulation};
use switchyard_mock::PlannedProvider;
use tokio::io::DuplexStream;
use tokio::time::Instant;

use crate::SimulateError;
use crate::gateway_config::{Prepared, simulated_url};
use crate::scenario::Scenario;
use crate::traffic::Planned;

/// Bytes an in-memory pipe buffers each way.
const PIPE: usize = 64 << 10;

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// The clients' idle keep-alive connections to the gateway, as an SDK keeps them.
#[derive(Clone, Default)]
struct Clients {
    idle: Arc<std::sync::Mutex<Vec<Sender>>>,
    gateway: Option<Arc<Gateway>>,
}

impl Clients {
    /// An idle connection, or a new one.
    async fn connection(&self) -> Option<Sender> {
        loop {
            let idle = self.idle.lock().unwrap().pop();
            let Some(mut sender) = idle else { break };
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
        let gateway = self.gateway.clone()?;
        let (ours, theirs) = tokio::io::duplex(PIPE);
        tokio::spawn(async move { gateway.serve_io(theirs).await });
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(ours)).await.ok()?;
        tokio::spawn(conn);
        Some(sender)
    }

    fn done_with(&self, sender: Sender) {
        self.idle.lock().unwrap().push(sender);
    }
}

/// How one client request ended.
#[derive(Clone, Debug)]
pub(crate) struct Outcome {
    pub at: Duration,
    pub stream: bool,
    pub status: u16,
    /// `x-switchyard-degraded` (`cached`, `fallback`).
    pub degraded: Option<String>,
    /// A stream that ended with an error event or broke off.
    pub broken: bool,
    /// A stream the gateway recovered after a break (its SSE comment).
    pub recovered: bool,
    /// Until the whole answer was read.
    pub latency: Duration,
    /// `x-switchyard-policy`.
    pub policy: Option<String>,
}

impl Outcome {
    /// Answered by a provider, whole.
    pub fn ok(&self) -> bool {
        self.status == 200 && !self.broken && self.degraded.is_none()
    }

    /// Answered whole, degraded.
    pub fn degraded_ok(&self) -> bool {
        self.status == 200 && !self.broken && self.degraded.is_some()
    }
}

/// What a run produced, before it is summed up.
pub(crate) struct Played {
    pub outcomes: Vec<Outcome>,
    /// Per scenario provider, every request it received.
    pub received: Vec<Vec<switchyard_mock::Received>>,
}

/// Connects the gateway's providers to their twins.
#[derive(Default)]
struct Twins {
    by_authority: OnceLock<HashMap<String, PlannedProvider>>,
}

impl Dial for Twins {
    fn dial(&self, authority: &str) -> std::io::Result<DuplexStream> {
        let refused = || std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let twin = self.by_authority.get().and_then(|m| m.get(authority)).ok_or_else(refused)?;
        if twin.refuses_now() {
            return Err(refused());
        }
        let (ours, theirs) = tokio::io::duplex(PIPE);
        twin.serve(theirs);
        Ok(ours)
    }
}

/// Runs `scenario` against `prepared`'s gateway with `seed`.
pub(crate) fn run(scenario: &Scenario, prepared: &Prepared, seed: u64) -> Result<Played, SimulateError> {
    // Paused from the start: the timer wheel's millisecond grid and the
    // run's start then line up the same way every time (a clock paused
    // later would start a real-time fraction of a millisecond off it, and
    // timers would round differently from run to run). Blocking work — the
    // policies compiling — holds the clock still while it runs. Timers
    // only, no I/O driver: nothing here touches a socket, and each jump of
    // the clock then costs no system call.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| SimulateError::Gateway(format!("no runtime: {e}")))?;
    runtime.block_on(play(scenario, prepared, seed))
}

async fn play(scenario: &Scenario, prepared: &Prepared, seed: u64) -> Result<Played, SimulateError> {
    let config = &prepared.config;
    let model = match &scenario.traffic.model {
        Some(m) => m.clone(),
        None => config.routes.first().map(|r| r.model.get_ref().clone()).unwrap_or_default(),
    };
    let twins = Arc::new(Twins::default());
    let gateway = Gateway::simulated(config, Simulation { dial: twins.clone(), seed })
        .await
        .map_err(|e| SimulateError::Gateway(e.to_string()))?;
    let clients = Clients { gateway: Some(Arc::new(gateway)), ..Clients::default() };
    let providers: Vec<(String, PlannedProvider)> = scenario
        .providers
        .iter()
        .enumerate()
        .map(|(i, plan)| {
            let authority = simulated_url(i).trim_start_matches("http://").to_owned();
            (authority, PlannedProvider::new(plan.clone(), seed))
        })
        .collect();
    let _ = twins.by_authority.set(providers.into_iter().collect());

    let planned = crate::traffic::plan(&scenario.traffic, scenario.duration, seed);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; planned.len()];
    for request in planned {
        tokio::time::sleep_until(start + request.at).await;
        let (clients, model) = (clients.clone(), model.clone());
        tasks.spawn(async move { (request.id, ask(&clients, &model, &request, start).await) });
        while let Some(done) = tasks.try_join_next() {
            let (id, outcome) = done.map_err(|e| SimulateError::Gateway(format!("a client task failed: {e}")))?;
            outcomes[id as usize] = Some(outcome);
        }
    }
    while let Some(done) = tasks.join_next().await {
        let (id, outcome) = done.map_err(|e| SimulateError::Gateway(format!("a client task failed: {e}")))?;
        outcomes[id as usize] = Some(outcome);
    }
    let by_authority = twins.by_authority.get().expect("set above");
    let received = (0..scenario.providers.len())
        .map(|i| by_authority[simulated_url(i).trim_start_matches("http://")].received())
        .collect();
    Ok(Played { outcomes: outcomes.into_iter().flatten().collect(), received })
}

/// The request `r` as its client sends it.
fn request(model: &str, r: &Planned) -> Request<Full<Bytes>> {
    // The prompt is plain words (no character JSON escapes) and the model a
    // config name: written out directly, not through a serializer.
    let model = serde_json::Value::from(model);
    let (path, extra) =
        if r.anthropic { ("/v1/messages", r#""max_tokens":256,"#) } else { ("/v1/chat/completions", "") };
    let body = format!(
        r#"{{"model":{model},{extra}"messages":[{{"role":"user","content":"{}"}}],"stream":{}}}"#,
        r.prompt, r.stream
    );
    let mut req = Request::post(path)
        .header(header::HOST, "switchyard")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("a valid request");
    if r.anthropic {
        req.headers_mut().insert("anthropic-version", http::HeaderValue::from_static("2023-06-01"));
    }
    req
}

/// One client: connect, ask, read the whole answer.
async fn ask(clients: &Clients, model: &str, r: &Planned, start: Instant) -> Outcome {
    let sent = Instant::now();
    let mut outcome = Outcome {
        at: sent - start,
        stream: r.stream,
        status: 0,
        degraded: None,
        broken: false,
        recovered: false,
        latency: Duration::ZERO,
        policy: None,
    };
    let Some(mut sender) = clients.connection().await else {
        return outcome;
    };
    let Ok(response) = sender.send_request(request(model, r)).await else {
        outcome.latency = sent.elapsed();
        return outcome;
    };
    outcome.status = response.status().as_u16();
    let text = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    outcome.degraded = text("x-switchyard-degraded");
    outcome.policy = text("x-switchyard-policy");
    let body = response.into_body().collect().await.map(|b| b.to_bytes());
    outcome.latency = sent.elapsed();
    if body.is_ok() {
        clients.done_with(sender);
    }
    match body {
        Err(_) => outcome.broken = true,
        Ok(body) if r.stream && outcome.status == 200 => {
            let has = |needle: &[u8]| memchr::memmem::find(&body, needle).is_some();
            let ended = if r.anthropic { has(b"event: message_stop") } else { has(b"data: [DONE]") };
            let errored = has(b"event: error") || has(b"data: {\"error\"");
            outcome.broken = !ended || errored;
            outcome.recovered = has(b": switchyard: the stream broke");
        }
        Ok(_) => {}
    }
    outcome
}
