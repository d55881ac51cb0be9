//! One attempt at one target: connect (pooled, keep-alive, TCP_NODELAY),
//! send, wait for the answer under the attempt's limits, and classify it.
//! A stream is read up to its first content-bearing event (its commit
//! point): a preamble followed by a stall, a cut or an error event is an
//! ordinary failed attempt the client never sees.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

use crate::dial::{Connector, Dial};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use switchyard_wire::translate::stream::StreamTranslator;
use switchyard_wire::{Api, OutcomeKind, classify_status, parse_retry_after};
use tokio::time::Instant;

use crate::limits::Limits;

/// Largest error or non-streamed answer body the gateway reads from a provider.
const MAX_UPSTREAM_BODY: usize = 64 << 20;

/// A provider key; never printed.
pub(crate) struct Secret(HeaderValue);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// One upstream API endpoint with its own connection pool.
pub(crate) struct Provider {
    pub name: std::sync::Arc<str>,
    /// The API it speaks; requests and answers are translated when the client speaks the other.
    pub api: Api,
    chat_url: http::Uri,
    models_url: http::Uri,
    /// Anthropic's token counter (`/v1/messages/count_tokens`).
    count_tokens_url: http::Uri,
    authorization: Option<Secret>,
    /// The connector's own connect timeout; an attempt's limit may shorten it.
    connect_timeout: Duration,
    /// Every configured secret, scrubbed out of the error bodies it relays.
    secrets: std::sync::Arc<crate::secrets::Secrets>,
    /// One connection pool per serving thread (and one for the rest), so a
    /// request's upstream connection lives on the thread serving it.
    clients: Box<[Client<Connector, Full<Bytes>>]>,
}

thread_local! {
    /// Which serving thread this is (`crate::server`), if it is one.
    pub(crate) static SERVING_THREAD: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

impl Provider {
    /// The connection pool of the thread asking.
    fn client(&self) -> &Client<Connector, Full<Bytes>> {
        let last = self.clients.len() - 1;
        &self.clients[SERVING_THREAD.get().map_or(last, |i| i.min(last))]
    }

    /// Adds the credentials (`Authorization: Bearer`, or Anthropic's
    /// `x-api-key` and `anthropic-version`).
    fn authorize(&self, headers: &mut http::HeaderMap) {
        let anthropic = self.api == Api::Anthropic;
        if anthropic {
            headers.insert(crate::headers::ANTHROPIC_VERSION, HeaderValue::from_static("2023-06-01"));
        }
        if let Some(Secret(auth)) = &self.authorization {
            let name = if anthropic { http::HeaderName::from_static("x-api-key") } else { header::AUTHORIZATION };
            headers.insert(name, auth.clone());
        }
    }

    /// A JSON POST of `body` to `url` with the provider's credentials and the
    /// `forward`ed client headers.
    fn post(
        &self,
        url: &http::Uri,
        body: Bytes,
        accept: &'static str,
        forward: &[(http::HeaderName, HeaderValue)],
    ) -> Request<Full<Bytes>> {
        let mut req = Request::post(url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, accept)
            .header(header::USER_AGENT, concat!("switchyard/", env!("CARGO_PKG_VERSION")))
            .body(Full::new(body))
            .expect("a request from valid parts");
        self.authorize(req.headers_mut());
        for (name, value) in forward {
            req.headers_mut().insert(name, value.clone());
        }
        req
    }

    /// A provider at `base_url`; `extra_roots` (PEM) are trusted besides the
    /// bundled public roots. With `dial`, it is reached over in-memory pipes
    /// instead of the network (a simulation).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        api: Api,
        base_url: &str,
        key: Option<String>,
        connect_timeout: Duration,
        extra_roots: Option<&[u8]>,
        secrets: std::sync::Arc<crate::secrets::Secrets>,
        dial: Option<std::sync::Arc<dyn Dial>>,
    ) -> Result<Provider, String> {
        let base = base_url.trim_end_matches('/');
        let v1 = if base.ends_with("/v1") { base.to_owned() } else { format!("{base}/v1") };
        let path = api.chat_path().trim_start_matches("/v1");
        let chat_url: http::Uri = format!("{v1}{path}").parse().map_err(|e| format!("base_url {base_url:?}: {e}"))?;
        let count_tokens_url: http::Uri =
            format!("{v1}/messages/count_tokens").parse().map_err(|e| format!("base_url {base_url:?}: {e}"))?;
        let models_url: http::Uri =
            format!("{v1}/models").parse().map_err(|e| format!("base_url {base_url:?}: {e}"))?;
        let authorization = match key {
            Some(key) => {
                let value = match api {
                    Api::Anthropic => key.trim().to_owned(),
                    Api::OpenAi => format!("Bearer {}", key.trim()),
                };
                let mut v = HeaderValue::from_str(&value)
                    .map_err(|_| "the API key contains characters a header cannot carry".to_owned())?;
                v.set_sensitive(true);
                Some(Secret(v))
            }
            None => None,
        };
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        http.set_connect_timeout(Some(connect_timeout));
        http.set_keepalive(Some(Duration::from_secs(60)));
        // HTTP/2 when the provider offers it over TLS (ALPN), HTTP/1.1 otherwise.
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(extra_roots)?)
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http);
        let connector = match dial {
            Some(dial) => Connector::Memory(dial),
            None => Connector::Net(https),
        };
        let clients = (0..=crate::server::serving_threads())
            .map(|_| {
                Client::builder(TokioExecutor::new())
                    .pool_timer(TokioTimer::new())
                    .pool_idle_timeout(Duration::from_secs(90))
                    .build(connector.clone())
            })
            .collect();
        Ok(Provider {
            name: name.into(),
            api,
            chat_url,
            models_url,
            count_tokens_url,
            authorization,
            connect_timeout,
            secrets,
            clients,
        })
    }
}

pub(crate) fn tls_config(extra_roots: Option<&[u8]>) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(pem) = extra_roots {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| format!("ca_file: {e}"))?;
            roots.add(cert).map_err(|e| format!("ca_file: {e}"))?;
            added += 1;
        }
        if added == 0 {
            return Err("ca_file holds no PEM certificate".into());
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// What one attempt produced.
pub(crate) struct Attempt {
    pub kind: OutcomeKind,
    pub status: Option<StatusCode>,
    pub retry_after: Option<Duration>,
    pub elapsed: Duration,
    /// An answer that can be handed to the client as it is, if there was one.
    pub answer: Option<Answer>,
    /// Why it failed, for logs and 502 messages (never contains secrets).
    pub detail: String,
}

/// An upstream answer ready to relay.
pub(crate) struct Answer {
    pub head: http::response::Parts,
    pub body: AnswerBody,
}

pub(crate) enum AnswerBody {
    /// Read whole (non-streamed answers and errors).
    Full(Bytes),
    /// A stream whose first content-bearing event has arrived; the rest is still upstream.
    Stream {
        /// Everything up to and including the first content-bearing event
        /// (the preamble held until then), maybe with the start of the next.
        first: Bytes,
        /// The rest, still upstream.
        rest: Incoming,
        /// Set when the stream must be translated for the client on its way.
        translate: Option<Box<StreamTranslator>>,
    },
}

impl Attempt {
    fn failed(kind: OutcomeKind, started: Instant, detail: String) -> Attempt {
        Attempt { kind, status: None, retry_after: None, elapsed: started.elapsed(), answer: None, detail }
    }
}

fn retry_after(head: &http::response::Parts) -> Option<Duration> {
    let get = |name: &str| head.headers.get(name).and_then(|v| v.to_str().ok());
    parse_retry_after(get("retry-after-ms"), get("retry-after"), SystemTime::now())
}

/// Most preamble bytes held before a stream commits anyway.
const MAX_PREAMBLE: usize = 64 << 10;

/// How reading a stream up to its commit point ended.
enum Commit {
    /// The first content-bearing event (or the answer's end) arrived.
    Committed(Bytes),
    /// The provider's error event came first.
    Error(OutcomeKind, String),
    /// The stream ended or broke first.
    Broken(String),
}

/// Reads a stream of `api` until its first content-bearing event, holding
/// the preamble (see `switchyard_wire::stream::first_token`).
async fn until_first_token(api: Api, body: &mut Incoming) -> Commit {
    use switchyard_wire::stream::first_token::{EventClass, classify};
    let mut held = Vec::new();
    let mut reader = switchyard_wire::sse::EventReader::default();
    while let Some(frame) = body.frame().await {
        let data = match frame {
            Ok(frame) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue,
            },
            Err(e) => return Commit::Broken(format!("the stream broke before its first token: {e}")),
        };
        held.extend_from_slice(&data);
        for event in reader.feed(&data) {
            match classify(api, &event) {
                EventClass::Preamble => {}
                EventClass::Content | EventClass::End => return Commit::Committed(Bytes::from(held)),
                EventClass::Error(kind, message) => return Commit::Error(kind, message),
            }
        }
        if held.len() > MAX_PREAMBLE {
            return Commit::Committed(Bytes::from(held));
        }
    }
    match held.is_empty() {
        true => Commit::Broken("the stream ended before its first event".into()),
        false => Commit::Broken("the stream ended before its first token".into()),
    }
}

/// Sends the request, giving up when no connection was made within
/// `connect` (when that is shorter than the provider's own connect timeout).
async fn send(
    provider: &Provider,
    mut req: Request<Full<Bytes>>,
    connect: Option<Duration>,
) -> Result<Response<Incoming>, (OutcomeKind, String)> {
    let classify = |e: hyper_util::client::legacy::Error| match e.is_connect() {
        true => (OutcomeKind::ConnectError, format!("could not connect: {}", source_chain(&e))),
        false => (OutcomeKind::Reset, format!("connection failed: {}", source_chain(&e))),
    };
    let Some(limit) = connect.filter(|&c| c < provider.connect_timeout) else {
        return provider.client().request(req).await.map_err(classify);
    };
    let captured = hyper_util::client::legacy::connect::capture_connection(&mut req);
    let request = provider.client().request(req);
    tokio::pin!(request);
    tokio::select! {
        biased; // an answer ready at the limit counts
        result = &mut request => result.map_err(classify),
        () = tokio::time::sleep(limit) => {
            if captured.connection_metadata().is_none() {
                return Err((OutcomeKind::ConnectError, format!("could not connect within {} ms", limit.as_millis())));
            }
            request.await.map_err(classify)
        }
    }
}

/// Sends `body` to `provider` and waits for an answer under `limits`: the
/// full body for a non-streamed request or an error, a stream up to its
/// first content-bearing event, so that nothing has reached the client
/// while a retry is still possible. `forward` are client headers meant for
/// the provider (`anthropic-version`, `anthropic-beta`); they never carry
/// credentials.
pub(crate) async fn attempt(
    provider: &Provider,
    body: Bytes,
    streaming: bool,
    limits: &Limits,
    forward: &[(http::HeaderName, HeaderValue)],
) -> Attempt {
    let started = Instant::now();
    let accept = if streaming { "text/event-stream" } else { "application/json" };
    let req = provider.post(&provider.chat_url, body, accept, forward);
    let first_token_by = started + limits.first_token;
    let answer_by = started + if streaming { limits.first_token } else { limits.answer.max(limits.first_token) };
    let response = match tokio::time::timeout_at(first_token_by, send(provider, req, limits.connect)).await {
        Ok(Ok(response)) => response,
        Ok(Err((kind, detail))) => return Attempt::failed(kind, started, detail),
        Err(_) => {
            let ms = limits.first_token.as_millis();
            let what = if streaming { "no response headers" } else { "no answer" };
            return Attempt::failed(OutcomeKind::Timeout, started, format!("{what} within {ms} ms"));
        }
    };
    let (head, mut incoming) = response.into_parts();
    let status = head.status;
    let retry_after = retry_after(&head);
    let base = |kind, answer, detail| Attempt {
        kind,
        status: Some(status),
        retry_after,
        elapsed: started.elapsed(),
        answer,
        detail,
    };
    if status.is_success() && streaming {
        let api = provider.api;
        return match tokio::time::timeout_at(first_token_by, until_first_token(api, &mut incoming)).await {
            Ok(Commit::Committed(first)) => base(
                OutcomeKind::Success,
                Some(Answer { head, body: AnswerBody::Stream { first, rest: incoming, translate: None } }),
                String::new(),
            ),
            Ok(Commit::Error(kind, message)) => {
                let message = provider.secrets.scrub(Bytes::from(message));
                let message = String::from_utf8_lossy(&message);
                base(kind, None, format!("the stream carried an error event before its first token: {message}"))
            }
            Ok(Commit::Broken(detail)) => base(OutcomeKind::Reset, None, detail),
            Err(_) => base(
                OutcomeKind::Timeout,
                None,
                format!("no first token within {} ms (headers came)", limits.first_token.as_millis()),
            ),
        };
    }
    let read = Limited::new(incoming, MAX_UPSTREAM_BODY).collect();
    let bytes = match tokio::time::timeout_at(answer_by, read).await {
        // An error body may echo the request's key: it never reaches the client.
        Ok(Ok(c)) if !status.is_success() => provider.secrets.scrub(c.to_bytes()),
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(e)) => return base(OutcomeKind::Reset, None, format!("the answer broke off: {e}")),
        Err(_) => {
            let ms = (answer_by - started).as_millis();
            return base(OutcomeKind::Timeout, None, format!("the whole answer did not come within {ms} ms"));
        }
    };
    let kind = classify_status(status.as_u16(), &bytes);
    if kind == OutcomeKind::Success && serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_err() {
        return base(OutcomeKind::InvalidResponse, None, "the answer is not JSON".into());
    }
    let detail = if kind == OutcomeKind::Success { String::new() } else { format!("answered {}", status_text(status)) };
    base(kind, Some(Answer { head, body: AnswerBody::Full(bytes) }), detail)
}

/// `503 Service Unavailable`, `529 Overloaded` (Anthropic's), or the bare
/// number for a status with no standard name.
pub(crate) fn status_text(status: StatusCode) -> String {
    match (status.as_u16(), status.canonical_reason()) {
        (529, _) => "529 Overloaded".to_owned(),
        (code, Some(reason)) => format!("{code} {reason}"),
        (code, None) => code.to_string(),
    }
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// An active health check: `GET /v1/models`, answered 2xx within `timeout`.
pub(crate) async fn list_models(provider: &Provider, timeout: Duration) -> bool {
    let mut req = Request::get(provider.models_url.clone())
        .header(header::USER_AGENT, concat!("switchyard/", env!("CARGO_PKG_VERSION")))
        .body(Full::new(Bytes::new()))
        .expect("a request from valid parts");
    provider.authorize(req.headers_mut());
    let check = async {
        let response = provider.client().request(req).await.ok()?;
        let ok = response.status().is_success();
        response.into_body().collect().await.ok()?;
        Some(ok)
    };
    matches!(tokio::time::timeout(timeout, check).await, Ok(Some(true)))
}

/// Asks an Anthropic provider to count the tokens of a Messages request
/// (`body`, already naming the provider's model): its status, content type
/// and body, or why there was no answer.
pub(crate) async fn count_tokens(
    provider: &Provider,
    body: Bytes,
    forward: &[(http::HeaderName, HeaderValue)],
    timeout: Duration,
) -> Result<(StatusCode, Bytes), String> {
    let req = provider.post(&provider.count_tokens_url, body, "application/json", forward);
    let ask = async {
        let response = provider.client().request(req).await.map_err(|e| source_chain(&e))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_UPSTREAM_BODY).collect().await.map_err(|e| e.to_string())?;
        Ok((status, provider.secrets.scrub(body.to_bytes())))
    };
    tokio::time::timeout(timeout, ask).await.map_err(|_| format!("no answer within {} ms", timeout.as_millis()))?
}

/// An attempt that never left: the request could not be made for this
/// provider (e.g. it cannot be translated). Answered as a 400 the client
/// sees, in its API's format.
pub(crate) fn refused(why: String, client: Api) -> Attempt {
    let (head, ()) = Response::builder()
        .status(StatusCode::BAD_REQUEST)
        .header(header::CONTENT_TYPE, "application/json")
        .body(())
        .expect("a response from valid parts")
        .into_parts();
    let error =
        switchyard_wire::openai_error::OpenAiError::invalid_request(why.clone(), Some("untranslatable_request"), None);
    let body = client.error_body(400, &error);
    Attempt {
        kind: OutcomeKind::InvalidRequest,
        status: Some(StatusCode::BAD_REQUEST),
        retry_after: None,
        elapsed: Duration::ZERO,
        answer: Some(Answer { head, body: AnswerBody::Full(body) }),
        detail: why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_named_anthropics_529_included() {
        assert_eq!(status_text(StatusCode::SERVICE_UNAVAILABLE), "503 Service Unavailable");
        assert_eq!(status_text(StatusCode::from_u16(529).unwrap()), "529 Overloaded");
        assert_eq!(status_text(StatusCode::from_u16(599).unwrap()), "599");
    }
}
