//! The access log: one JSON line per request, written by a thread of its
//! own so the request path only hands a finished line over (never waits for
//! a disk or a slow pipe: when the hand-over queue is full, the line is
//! dropped and counted). A line says who asked (request id, client API),
//! what (route, model), who decided (`policy@version`), every attempt (target,
//! outcome, status, duration), how it ended (status, degraded, latency, time to
//! first token, tokens, stream recoveries). Never a key, never a body.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_config::AccessLogTarget;
use switchyard_policy_host::OutcomeKind;
use switchyard_wire::Api;
use switchyard_wire::usage::Usage;

/// Bytes of lines waiting for the writer before new ones are dropped.
const MAX_PENDING: usize = 8 << 20;
/// How often the writer takes what is pending.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// Where access lines go; cheap to share. Requests append their line to a
/// buffer (a lock and a copy, no wake-up while the writer is busy); the
/// writer thread takes the buffer every [`FLUSH_EVERY`] and writes it in
/// one go. With nothing to write it sleeps until a line comes, so an idle
/// gateway does not wake for it.
pub struct AccessLog {
    pending: Option<Arc<Mutex<Vec<u8>>>>,
    /// Where lines go; the writer thread and [`AccessLog::flush`] share it.
    out: Option<Arc<Mutex<Box<dyn Write + Send>>>>,
    dropped: AtomicU64,
    /// The writer thread, and whether it sleeps for want of lines.
    writer: Option<(std::thread::Thread, Arc<std::sync::atomic::AtomicBool>)>,
}

/// Takes what is pending (swapping in `batch`'s buffer) and writes it;
/// whether there was anything.
fn write_pending(pending: &Mutex<Vec<u8>>, out: &Mutex<Box<dyn Write + Send>>, batch: &mut Vec<u8>) -> bool {
    // The output lock first: a flush and the writer thread write in order.
    let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
    std::mem::swap(batch, &mut *pending.lock().unwrap_or_else(|p| p.into_inner()));
    if batch.is_empty() {
        return false;
    }
    let _ = out.write_all(batch);
    let _ = out.flush();
    batch.clear();
    true
}

impl AccessLog {
    /// The log `target` asks for, with its writer thread.
    pub fn open(target: &AccessLogTarget) -> Result<Arc<AccessLog>, crate::TelemetryError> {
        Self::open_io(target).map_err(crate::TelemetryError::AccessLog)
    }

    fn open_io(target: &AccessLogTarget) -> std::io::Result<Arc<AccessLog>> {
        let out: Box<dyn Write + Send> = match target {
            AccessLogTarget::Off => {
                return Ok(Arc::new(AccessLog { pending: None, out: None, dropped: AtomicU64::new(0), writer: None }));
            }
            AccessLogTarget::Stdout => Box::new(std::io::stdout()),
            AccessLogTarget::File(path) => Box::new(std::fs::OpenOptions::new().create(true).append(true).open(path)?),
        };
        let pending = Arc::new(Mutex::new(Vec::with_capacity(64 << 10)));
        let out = Arc::new(Mutex::new(out));
        let sleeping = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (writer_pending, writer_out, writer_sleeping) = (pending.clone(), out.clone(), sleeping.clone());
        let (alive_tx, alive_rx) = std::sync::mpsc::channel::<std::sync::Weak<AccessLog>>();
        let thread = std::thread::Builder::new().name("access-log".into()).spawn(move || {
            let Ok(alive) = alive_rx.recv() else { return };
            let (pending, out, sleeping) = (writer_pending, writer_out, writer_sleeping);
            let mut batch = Vec::with_capacity(64 << 10);
            loop {
                std::thread::sleep(FLUSH_EVERY);
                let wrote = write_pending(&pending, &out, &mut batch);
                let empty = || pending.lock().unwrap_or_else(|p| p.into_inner()).is_empty();
                // The gateway is gone and everything it logged is written.
                if alive.strong_count() == 0 && empty() {
                    return;
                }
                if !wrote {
                    // Nothing came for a whole turn: sleep until a line does
                    // (the first line after a quiet spell wakes this thread).
                    sleeping.store(true, Ordering::SeqCst);
                    if empty() && alive.strong_count() > 0 {
                        // (Dropping the log unparks it too, to end it.)
                        std::thread::park();
                    }
                    sleeping.store(false, Ordering::SeqCst);
                }
            }
        })?;
        let log = Arc::new(AccessLog {
            pending: Some(pending),
            out: Some(out),
            dropped: AtomicU64::new(0),
            writer: Some((thread.thread().clone(), sleeping)),
        });
        let _ = alive_tx.send(Arc::downgrade(&log));
        Ok(log)
    }

    /// Writes what is pending now (at shutdown: the process may exit before
    /// the writer thread's next turn).
    pub fn flush(&self) {
        if let (Some(pending), Some(out)) = (&self.pending, &self.out) {
            write_pending(pending, out, &mut Vec::new());
        }
    }

    /// Whether lines are written at all (a record is built only then).
    pub fn enabled(&self) -> bool {
        self.pending.is_some()
    }

    fn write(&self, line: &[u8]) {
        let Some(pending) = &self.pending else { return };
        let mut pending = pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.len() + line.len() > MAX_PENDING {
            drop(pending);
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(dropped, "access log lines dropped: the writer cannot keep up");
            }
            return;
        }
        pending.extend_from_slice(line);
        drop(pending);
        if let Some((thread, sleeping)) = &self.writer
            && sleeping.load(Ordering::SeqCst)
        {
            thread.unpark();
        }
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        // A sleeping writer wakes, writes what is left and ends.
        if let Some((thread, _)) = &self.writer {
            thread.unpark();
        }
    }
}

/// Marks a response whose request the exchange logged (so the door does not).
#[derive(Debug, Clone, Copy)]
pub struct Logged;

/// The line of a chat request refused at the door (bad body, unknown
/// model, too large, ...): no route, no attempts.
pub fn refused_at_the_door(log: &AccessLog, request_id: &str, api: Api, status: u16, latency: Duration) {
    if !log.enabled() {
        return;
    }
    let line = json!({
        "time": crate::now_rfc3339(),
        "request_id": request_id,
        "api": api_name(api),
        "route": null,
        "status": status,
        "attempts": [],
        "latency_ms": (latency.as_secs_f64() * 1e4).round() / 10.0,
    });
    let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
    bytes.push(b'\n');
    log.write(&bytes);
}

pub fn api_name(api: Api) -> &'static str {
    match api {
        Api::OpenAi => "openai",
        Api::Anthropic => "anthropic",
    }
}

/// One attempt, as the access log shows it.
#[derive(serde::Serialize)]
struct AttemptLine {
    target: String,
    outcome: &'static str,
    status: Option<u16>,
    ms: f64,
}

/// How an outcome kind is named in the log (as in the policy world).
pub fn outcome_name(kind: OutcomeKind) -> &'static str {
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
pub struct Record {
    log: Arc<AccessLog>,
    request_id: Arc<str>,
    api: Api,
    route: String,
    model: String,
    stream: bool,
    /// The gateway key's name (never the key).
    key: Option<Arc<str>>,
    attempts: Vec<AttemptLine>,
    first_token: Option<Duration>,
    recoveries: Vec<Value>,
    written: bool,
}

/// How the request ended, for [`Record::finish`].
pub struct Ending<'a> {
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
    pub fn new(
        log: Arc<AccessLog>,
        request_id: Arc<str>,
        api: Api,
        route: &str,
        model: &str,
        stream: bool,
        key: Option<Arc<str>>,
    ) -> Self {
        Record {
            log,
            request_id,
            api,
            route: route.to_owned(),
            model: model.to_owned(),
            stream,
            key,
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
        let latency_ms = ms(ending.latency);
        let line = Line {
            time: crate::now_rfc3339(),
            request_id: &self.request_id,
            api: api_name(self.api),
            route: &self.route,
            model: &self.model,
            key: self.key.as_deref(),
            stream: self.stream,
            policy: ending.policy,
            provider: ending.provider,
            attempts: &self.attempts,
            status: ending.status,
            degraded: ending.degraded,
            latency_ms,
            first_token_ms: self.first_token.map(ms).or((!self.stream).then_some(latency_ms)),
            tokens_in: ending.usage.input,
            tokens_out: ending.usage.output,
            stream_end: if self.stream { ending.stream_end } else { None },
            recoveries: self.stream.then_some(&self.recoveries),
        };
        let mut bytes = Vec::with_capacity(512);
        if serde_json::to_writer(&mut bytes, &line).is_ok() {
            bytes.push(b'\n');
            self.log.write(&bytes);
        }
    }
}

/// One line, serialized as it is (no intermediate JSON tree).
#[derive(serde::Serialize)]
struct Line<'a> {
    time: String,
    request_id: &'a str,
    api: &'static str,
    route: &'a str,
    model: &'a str,
    key: Option<&'a str>,
    stream: bool,
    policy: Option<&'a str>,
    provider: Option<&'a str>,
    attempts: &'a [AttemptLine],
    status: u16,
    degraded: Option<&'static str>,
    latency_ms: f64,
    first_token_ms: Option<f64>,
    tokens_in: Option<u64>,
    tokens_out: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_end: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recoveries: Option<&'a Vec<Value>>,
}
