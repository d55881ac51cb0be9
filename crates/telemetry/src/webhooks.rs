//! Incident webhooks (`[[webhooks]]`): each event a webhook wants is POSTed
//! to it as JSON (the event's fields and a chat-style `text`), off the
//! request path. Each webhook has a bounded queue (a full one drops the
//! newest event, counted) and one sender that retries a failed POST with
//! backoff (1, 2, 4, 8 s; a 4xx other than 408/429 is not retried). The URL,
//! which for chat tools is itself a secret, is never logged.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::Telemetry;
use crate::TelemetryError;
use crate::events::Event;

/// Events waiting per webhook before new ones are dropped.
const QUEUE: usize = 256;
/// Tries per event.
const TRIES: u32 = 5;
/// One POST's limit.
const POST_TIMEOUT: Duration = Duration::from_secs(5);

/// The HTTP client telemetry posts with (webhooks, trace export): HTTP/1.1,
/// `http` or `https` (rustls), a 3 s connect limit, pooled connections.
pub(crate) type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The running webhook senders; dropping stops them.
pub struct Webhooks(Vec<JoinHandle<()>>);

impl Drop for Webhooks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

struct Hook {
    /// `webhook N` (never the URL: it may be a secret).
    name: String,
    url: http::Uri,
    kinds: HashSet<String>,
}

pub(crate) fn client(tls: rustls::ClientConfig) -> HttpClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(3)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new()).pool_timer(TokioTimer::new()).build(https)
}

/// The body a webhook gets for `event`.
pub fn body(event: &Event) -> Bytes {
    let mut value = serde_json::to_value(event).unwrap_or_default();
    value["text"] = serde_json::Value::String(event.text());
    value["source"] = serde_json::Value::String("switchyard".into());
    Bytes::from(value.to_string())
}

impl Webhooks {
    /// Starts a sender per configured webhook (none: nothing runs); `env`
    /// reads `url_env`, `tls` is the client TLS config for `https` URLs.
    pub fn start(
        config: &[switchyard_config::Webhook],
        env: &dyn Fn(&str) -> Option<String>,
        tls: rustls::ClientConfig,
        telemetry: &Arc<Telemetry>,
    ) -> Result<Webhooks, TelemetryError> {
        if config.is_empty() {
            return Ok(Webhooks(Vec::new()));
        }
        let client = client(tls);
        let mut tasks = Vec::new();
        for (i, hook) in config.iter().enumerate() {
            let name = format!("webhook {}", i + 1);
            let url = match (&hook.url, &hook.url_env) {
                (Some(url), _) => url.clone(),
                (None, Some(var)) => env(var).ok_or_else(|| TelemetryError::WebhookUrl(var.clone()))?,
                (None, None) => continue,
            };
            let url: http::Uri = url.parse().map_err(|_| TelemetryError::WebhookBadUrl(name.clone()))?;
            let kinds = match &hook.events {
                Some(kinds) => kinds.iter().cloned().collect(),
                None => switchyard_config::INCIDENT_KINDS.iter().map(|k| (*k).to_owned()).collect(),
            };
            let hook = Arc::new(Hook { name, url, kinds });
            let (tx, rx) = mpsc::channel::<Arc<Event>>(QUEUE);
            tasks.push(tokio::spawn(send_all(hook.clone(), client.clone(), rx, Arc::downgrade(telemetry))));
            tasks.push(tokio::spawn(queue(hook, telemetry.events.subscribe(), tx, Arc::downgrade(telemetry))));
        }
        Ok(Webhooks(tasks))
    }
}

/// Takes the events `hook` wants into its queue.
async fn queue(
    hook: Arc<Hook>,
    mut events: tokio::sync::broadcast::Receiver<Arc<Event>>,
    tx: mpsc::Sender<Arc<Event>>,
    telemetry: std::sync::Weak<Telemetry>,
) {
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                if let Some(t) = telemetry.upgrade() {
                    (0..n).for_each(|_| t.registry.webhook("dropped"));
                }
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        if !hook.kinds.contains(event.kind) {
            continue;
        }
        if tx.try_send(event).is_err() {
            tracing::warn!(webhook = %hook.name, "webhook queue full: event dropped");
            if let Some(t) = telemetry.upgrade() {
                t.registry.webhook("dropped");
            }
        }
    }
}

/// Posts each queued event, in order, with retries.
async fn send_all(
    hook: Arc<Hook>,
    client: HttpClient,
    mut rx: mpsc::Receiver<Arc<Event>>,
    telemetry: std::sync::Weak<Telemetry>,
) {
    while let Some(event) = rx.recv().await {
        let body = body(&event);
        let mut outcome = "failed";
        for attempt in 0..TRIES {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_secs(1 << (attempt - 1))).await;
            }
            match post(&client, &hook.url, body.clone()).await {
                Ok(status) if status.is_success() => {
                    outcome = "delivered";
                    break;
                }
                Ok(status) => {
                    tracing::warn!(webhook = %hook.name, %status, kind = event.kind, "webhook refused the event");
                    let retry = status.is_server_error()
                        || status == StatusCode::TOO_MANY_REQUESTS
                        || status == StatusCode::REQUEST_TIMEOUT;
                    if !retry {
                        break;
                    }
                }
                Err(why) => tracing::warn!(webhook = %hook.name, kind = event.kind, "webhook POST failed: {why}"),
            }
        }
        if let Some(t) = telemetry.upgrade() {
            t.registry.webhook(outcome);
        }
    }
}

async fn post(client: &HttpClient, url: &http::Uri, body: Bytes) -> Result<StatusCode, String> {
    let request = Request::builder()
        .method(Method::POST)
        .uri(url.clone())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, "switchyard-webhooks")
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(POST_TIMEOUT, client.request(request)).await {
        Ok(Ok(response)) => Ok(response.status()),
        // The error may name the host; never the whole URL.
        Ok(Err(e)) => Err(if e.is_connect() { "could not connect".into() } else { "the request failed".into() }),
        Err(_) => Err(format!("no answer within {POST_TIMEOUT:?}")),
    }
}
