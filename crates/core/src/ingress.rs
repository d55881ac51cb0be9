//! The front of the request path: method and path, body limit, the few
//! fields routing needs, and the route.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use switchyard_policy_host::CallContext;
use switchyard_wire::{RequestPeek, WireError};

use crate::gateway::Shared;
use crate::{ResponseBody, exchange, respond};

pub(crate) const CHAT_PATH: &str = "/v1/chat/completions";

/// A client gets this long to send its whole request body.
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

pub(crate) async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<ResponseBody> {
    let started = tokio::time::Instant::now();
    match (req.method(), req.uri().path()) {
        (&Method::POST, CHAT_PATH) => chat(shared, req, started).await,
        (_, CHAT_PATH) => respond::method_not_allowed(req.method(), CHAT_PATH),
        (&Method::GET, "/healthz") => Response::new(respond::full(Bytes::from_static(b"ok\n"))),
        (&Method::GET, "/v1/models") => {
            let mut response = Response::new(respond::full(shared.models_list.clone()));
            response.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
            response
        }
        (method, path) => respond::not_found(method, path),
    }
}

async fn chat(shared: Arc<Shared>, req: Request<Incoming>, started: tokio::time::Instant) -> Response<ResponseBody> {
    let limit = shared.max_body_bytes;
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return respond::too_large(limit);
    }
    let (parts, body) = req.into_parts();
    let body = match tokio::time::timeout(BODY_READ_TIMEOUT, Limited::new(body, limit).collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return respond::too_large(limit);
        }
        Ok(Err(e)) => return respond::invalid_request(format!("could not read the request body: {e}"), None),
        Err(_) => return respond::body_timeout(BODY_READ_TIMEOUT),
    };
    let peek = match RequestPeek::parse(&body) {
        Ok(peek) => peek,
        Err(e @ WireError::MissingModel) => return respond::invalid_request(e.to_string(), Some("model")),
        Err(e @ WireError::BadStream) => return respond::invalid_request(e.to_string(), Some("stream")),
        Err(e) => return respond::invalid_request(e.to_string(), None),
    };
    let route = shared.routes_by_model.get(&peek.model).copied().or(shared.wildcard);
    let Some(route) = route else { return respond::unknown_model(&peek.model) };
    let call = CallContext::from_headers(parts.headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())));
    exchange::Exchange::new(shared, route, peek, body, call, started).run().await
}
