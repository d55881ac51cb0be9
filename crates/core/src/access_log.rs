//! The access log: one JSON line per request, written by a thread of its
//! own so the request path only hands a finished line over (never waits for
//! a disk or a slow pipe: when the hand-over queue is full, the line is
//! dropped and counted). A line says who asked (request id, client API),
//! what (route, model), who decided (`policy@version`), every attempt (target,
//! outcome, status, duration), how it ended (status, degraded, latency, time to
//! first token, tokens, stream recoveries). Never a key, never a body.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_config::AccessLogTarget;
use switchyard_policy_host::OutcomeKind;
use switchyard_wire::Api;
use switchyard_wire::usage::Usage;

/// Lines waiting for the writer before new ones are dropped.
const QUEUE: usize = 16 * 1024;

/// Where access lines go; cheap to share.
pub(crate) struct AccessLog {
    tx: Option<Mutex<SyncSender<Vec<u8>>>>,
    dropped: AtomicU64,
}

impl AccessLog {
    /// The log `target` asks for, with its writer thread.
    pub fn open(target: &AccessLogTarget) -> std::io::Result<Arc<AccessLog>> {
        let out: Box<dyn Write + Send> = match target {
            AccessLogTarget::Off => return Ok(Arc::new(AccessLog { tx: None, dropped: AtomicU64::new(0) })),
            AccessLogTarget::Stdout => Box::new(std::io::stdout()),
            AccessLogTarget::File(path) => Box::new(std::fs::OpenOptions::new().create(true).append(true).open(path)?),
        };
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(QUEUE);
        std::thread::Builder::new().name("access-log".into()).spawn(move || {
            let mut out = std::io::BufWriter::new(out);
            while let Ok(line) = rx.recv() {
                let _ = out.write_all(&line);
                // Flush once the queue is empty: a burst is one write.
                while let Ok(line) = rx.try_recv() {
                    let _ = out.write_all(&line);
                }
                let _ = out.flush();
            }
        })?;
        Ok(Arc::new(AccessLog { tx: Some(Mutex::new(tx)), dropped: AtomicU64::new(0) }))
    }

    /// Whether lines are written at all (a record is built only then).
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    fn write(&self, line: Vec<u8>) {
        let Some(tx) = &self.tx else { return };
        let sent = tx.lock().unwrap_or_else(|p| p.into_inner()).try_send(line);
        if let Err(TrySendError::Full(_)) = sent {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(dropped, "access log lines dropped: the writer cannot keep up");
            }
        }
    }
}

/// Marks a response whose request the exchange logged (so the door does not).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Logged;

/// The line of a chat request refused at the door (bad body, unknown
/// model, too large, ...): no route, no attempts.
pub(crate) fn refused_at_the_door(log: &AccessLog, request_id: &str, api: Api, status: u16, latency: Duration) {
    if !log.enabled() {
        return;
    }
    let line = json!({
        "time": now_rfc3339(),
        "request_id": request_id,
        "api": api_name(api),
        "route": null,
        "status": status,
        "attempts": [],
        "latency_ms": (latency.as_secs_f64() * 1e4).round() / 10.0,
    });
    let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
    bytes.push(b'\n');
    log.write(bytes);
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn api_name(api: Api) -> &'static str {
    match api {
        Api::OpenAi => "openai",
        Api::Anthropic => "anthropic",
    }
}

/// One attempt, as the access log shows it.
struct AttemptLine {
    target: String,
    outcome: &'static str,
    status: Option<u16>,
    ms: f64,
}

/// How an outcome kind is named in the log (as in the policy world).
pub(crate) fn outcome_name(kind: OutcomeKind) -> &'static str {
    match kind {
        OutcomeKind::Success => "success",
        OutcomeKind::ConnectError => "connect-error",
        OutcomeKind::Timeout => "timeout",
        OutcomeKind::Reset => "reset",
        OutcomeKind::RateLimited => "rate-limited",
        OutcomeKind::Overloaded => "overloaded",
        OutcomeKind::ServerError => "server-error",
        OutcomeKind::Auth => "auth",
        OutcomeKind::ContextTooLong => "context-too-long",
        OutcomeKind::ContentFiltered => "content-filtered",
        OutcomeKind::InvalidRequest => "invalid-request",
        OutcomeKind::InvalidResponse => "invalid-response",
    }
}

/// One request's line, filled in as it goes; written once, by [`Record::finish`].
pub(crate) struct Record {
    log: Arc<AccessLog>,
    request_id: Arc<str>,
    api: Api,
    route: String,
    model: String,
    stream: bool,
    attempts: Vec<AttemptLine>,
    first_token: Option<Duration>,
    recoveries: Vec<Value>,
    written: bool,
}

/// How the request ended, for [`Record::finish`].
pub(crate) struct Ending<'a> {
    pub status: u16,
    pub policy: Option<&'a str>,
    pub provider: Option<&'a str>,
    pub degraded: Option<&'static str>,
    pub latency: Duration,
    pub usage: Usage,
    /// A stream's end: `complete`, `error`, or `client-gone`.
    pub stream_end: Option<&'static str>,
}

impl Record {
    pub fn new(log: Arc<AccessLog>, request_id: Arc<str>, api: Api, route: &str, model: &str, stream: bool) -> Self {
        Record {
            log,
            request_id,
            api,
            route: route.to_owned(),
            model: model.to_owned(),
            stream,
            attempts: Vec::new(),
            first_token: None,
            recoveries: Vec::new(),
            written: false,
        }
    }

    pub fn attempt(&mut self, target: String, kind: OutcomeKind, status: Option<u16>, took: Duration) {
        let ms = (took.as_secs_f64() * 1e4).round() / 10.0;
        self.attempts.push(AttemptLine { target, outcome: outcome_name(kind), status, ms });
    }

    /// A stream's first content reached the client after `at` (from the request's start).
    pub fn first_token(&mut self, at: Duration) {
        self.first_token.get_or_insert(at);
    }

    /// A stream broke (`kind`) and was recovered by `how` on `target`, or not (`how` = `end`).
    pub fn recovery(&mut self, kind: &str, how: &str, target: Option<String>) {
        self.recoveries.push(json!({"break": kind, "recovery": how, "target": target}));
    }

    pub fn finish(&mut self, ending: Ending<'_>) {
        if self.written || !self.log.enabled() {
            return;
        }
        self.written = true;
        let ms = |d: Duration| (d.as_secs_f64() * 1e4).round() / 10.0;
        let time = now_rfc3339();
        let attempts: Vec<Value> = self
            .attempts
            .iter()
            .map(|a| json!({"target": a.target, "outcome": a.outcome, "status": a.status, "ms": a.ms}))
            .collect();
        let mut line = json!({
            "time": time,
            "request_id": &*self.request_id,
            "api": api_name(self.api),
            "route": self.route,
            "model": self.model,
            "stream": self.stream,
            "policy": ending.policy,
            "provider": ending.provider,
            "attempts": attempts,
            "status": ending.status,
            "degraded": ending.degraded,
            "latency_ms": ms(ending.latency),
            "first_token_ms": self.first_token.map(ms).or((!self.stream).then(|| ms(ending.latency))),
            "tokens_in": ending.usage.input,
            "tokens_out": ending.usage.output,
        });
        if self.stream {
            line["stream_end"] = json!(ending.stream_end);
            line["recoveries"] = json!(self.recoveries);
        }
        let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
        bytes.push(b'\n');
        self.log.write(bytes);
    }
}
