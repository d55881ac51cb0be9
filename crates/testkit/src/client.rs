//! A plain HTTP/1 client for talking to the gateway the way an SDK would.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn client() -> HttpClient {
    // One pool per runtime would be ideal; tests each run their own runtime,
    // and a pooled connection must not outlive it, so build one per call.
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    Client::builder(TokioExecutor::new()).pool_max_idle_per_host(0).build(http)
}

/// A whole answer.
#[derive(Debug)]
pub struct ChatResponse {
    /// HTTP status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// Response body.
    pub body: String,
}

impl ChatResponse {
    /// A header's value, or "" when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// The body as JSON (panics if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// A chat-completions body for `model`.
pub fn chat_body(model: &str, stream: bool) -> String {
    serde_json::json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "Hello?"}]})
        .to_string()
}

/// A Messages API body for `model`, as Anthropic's SDK sends it.
pub fn messages_body(model: &str, stream: bool) -> String {
    serde_json::json!({"model": model, "max_tokens": 256, "stream": stream,
        "messages": [{"role": "user", "content": "Hello?"}]})
    .to_string()
}

/// The headers Anthropic's SDK sends (a client key the gateway must never pass on).
pub const ANTHROPIC_CLIENT_HEADERS: [(&str, &str); 2] =
    [("anthropic-version", "2023-06-01"), ("x-api-key", "sk-ant-client-secret")];

/// POSTs a Messages request for `model` to `/v1/messages` and reads the whole answer.
pub async fn post_messages(url: &str, model: &str) -> ChatResponse {
    post_raw(url, "/v1/messages", messages_body(model, false), &ANTHROPIC_CLIENT_HEADERS).await
}

/// POSTs a streaming Messages request for `model` and returns once headers arrive.
pub async fn post_messages_stream(url: &str, model: &str) -> StreamingResponse {
    post_stream(url, "/v1/messages", messages_body(model, true), &ANTHROPIC_CLIENT_HEADERS).await
}

/// POSTs `body` to `url` + `path` with extra headers and reads the whole answer.
pub async fn post_raw(url: &str, path: &str, body: impl Into<Bytes>, headers: &[(&str, &str)]) -> ChatResponse {
    let mut req = Request::post(format!("{url}{path}")).header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response =
        client().request(req.body(Full::new(body.into())).expect("request")).await.expect("gateway answered");
    let (head, body) = response.into_parts();
    let body = body.collect().await.expect("read body").to_bytes();
    ChatResponse { status: head.status, headers: head.headers, body: String::from_utf8_lossy(&body).into() }
}

/// GETs `path` and reads the whole answer.
pub async fn get(url: &str, path: &str) -> ChatResponse {
    get_with(url, path, &[]).await
}

/// GETs `path` with extra headers and reads the whole answer.
pub async fn get_with(url: &str, path: &str, headers: &[(&str, &str)]) -> ChatResponse {
    let mut req = Request::get(format!("{url}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::new())).expect("request");
    let response = client().request(req).await.expect("gateway answered");
    let (head, body) = response.into_parts();
    let body = body.collect().await.expect("read body").to_bytes();
    ChatResponse { status: head.status, headers: head.headers, body: String::from_utf8_lossy(&body).into() }
}

/// POSTs a chat request for `model` and reads the whole answer.
pub async fn post_chat(url: &str, model: &str) -> ChatResponse {
    post_raw(url, "/v1/chat/completions", chat_body(model, false), &[]).await
}

/// A streamed answer, read event by event.
pub struct StreamingResponse {
    /// HTTP status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    body: Incoming,
}

impl StreamingResponse {
    /// A response header as text (empty when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// The next chunk of bytes, or `None` at the end; panics after `patience`.
    pub async fn next_chunk(&mut self, patience: Duration) -> Option<Bytes> {
        loop {
            let frame = tokio::time::timeout(patience, self.body.frame()).await.expect("a chunk within patience")?;
            if let Ok(data) = frame.expect("body frame").into_data() {
                return Some(data);
            }
        }
    }

    /// Everything left, as text.
    pub async fn rest(mut self, patience: Duration) -> String {
        let mut out = String::new();
        while let Some(chunk) = self.next_chunk(patience).await {
            out.push_str(&String::from_utf8_lossy(&chunk));
        }
        out
    }
}

/// POSTs a streaming chat request for `model` and returns once headers arrive.
pub async fn post_chat_stream(url: &str, model: &str) -> StreamingResponse {
    post_stream(url, "/v1/chat/completions", chat_body(model, true), &[]).await
}

/// POSTs `body` to `url` + `path` and returns once the headers arrive.
pub async fn post_stream(url: &str, path: &str, body: String, headers: &[(&str, &str)]) -> StreamingResponse {
    let mut req = Request::post(format!("{url}{path}")).header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body))).expect("request");
    let response = client().request(req).await.expect("gateway answered");
    let (head, body) = response.into_parts();
    StreamingResponse { status: head.status, headers: head.headers, body }
}
