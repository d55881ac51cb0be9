//! The front of the request path: method and path (which also say the
//! client's API), body limit, the few fields routing needs, and the route.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Response, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use switchyard_policy_host::CallContext;
use switchyard_wire::anthropic::MessagesRequest;
use switchyard_wire::{Api, RequestPeek, WireError};

use crate::gateway::Shared;
use crate::{ResponseBody, exchange, respond};

/// Anthropic's token counter, passed to an Anthropic target (`count_tokens.rs`).
const COUNT_TOKENS_PATH: &str = "/v1/messages/count_tokens";

/// A client gets this long to send its whole request body.
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Client headers an Anthropic provider should see when the request reaches
/// it untranslated (never credentials).
const FORWARDED_TO_ANTHROPIC: [&str; 2] = ["anthropic-version", "anthropic-beta"];

/// The API a request that is not a chat request speaks, for its error:
/// Anthropic's clients send `anthropic-version` on every request.
fn api_of<B>(req: &Request<B>) -> Api {
    if req.headers().contains_key(crate::headers::ANTHROPIC_VERSION)
        || req.uri().path().starts_with(Api::Anthropic.chat_path())
    {
        Api::Anthropic
    } else {
        Api::OpenAi
    }
}

/// Longest client `x-request-id` kept as the request's id.
const MAX_REQUEST_ID: usize = 128;

/// The client's `x-request-id` when it is a sane token (1–128 of
/// `A-Z a-z 0-9 - _ . : / + =`), else a new random one.
fn request_id(headers: &http::HeaderMap) -> Arc<str> {
    let valid = |v: &&str| {
        (1..=MAX_REQUEST_ID).contains(&v.len())
            && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(&b))
    };
    match headers.get(crate::headers::REQUEST_ID).and_then(|v| v.to_str().ok()).filter(valid) {
        Some(id) => id.into(),
        None => format!("req_{:032x}", rand::random::<u128>()).into(),
    }
}

pub(crate) async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<ResponseBody> {
    let id = request_id(req.headers());
    let started = tokio::time::Instant::now();
    let chat = (req.method() == Method::POST)
        .then(|| [Api::OpenAi, Api::Anthropic].into_iter().find(|api| api.chat_path() == req.uri().path()))
        .flatten();
    let mut response = route(shared.clone(), req, id.clone()).await;
    if let Some(api) = chat
        && response.extensions().get::<switchyard_telemetry::access_log::Logged>().is_none()
    {
        let status = response.status().as_u16();
        switchyard_telemetry::access_log::refused_at_the_door(&shared.access_log, &id, api, status, started.elapsed());
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(crate::headers::REQUEST_ID, value);
    }
    response
}

async fn route(shared: Arc<Shared>, req: Request<Incoming>, id: Arc<str>) -> Response<ResponseBody> {
    let started = tokio::time::Instant::now();
    let chat = [Api::OpenAi, Api::Anthropic].into_iter().find(|api| api.chat_path() == req.uri().path());
    // Everything but the health check needs a gateway key (when there are any).
    let key = if req.uri().path() == "/healthz" {
        None
    } else {
        let api = chat.unwrap_or_else(|| api_of(&req));
        match shared.keys.authenticate(api, req.headers()) {
            Ok(key) => key,
            Err(refusal) => return respond::unauthorized(api, &refusal.to_string()),
        }
    };
    match (req.method(), chat, req.uri().path()) {
        (&Method::POST, Some(api), _) => serve(shared, req, api, started, id, key).await,
        (method, Some(api), path) => respond::method_not_allowed(api, method, path),
        (&Method::POST, None, COUNT_TOKENS_PATH) => match read_body(&shared, req, Api::Anthropic).await {
            Ok((parts, body)) => crate::count_tokens::serve(&shared, body, forwarded(&parts.headers)).await,
            Err(response) => response,
        },
        (&Method::GET, None, "/healthz") => Response::new(respond::full(Bytes::from_static(b"ok\n"))),
        (&Method::GET, None, "/v1/models") => {
            let mut response = Response::new(respond::full(shared.models.body(api_of(&req))));
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        (&Method::GET, None, path) if path.starts_with("/v1/models/") => {
            let (api, id) = (api_of(&req), &path["/v1/models/".len()..]);
            let Some(model) = shared.models.one(api, id) else { return respond::unknown_model(api, id) };
            let mut response = Response::new(respond::full(model));
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        (method, None, path) => respond::not_found(api_of(&req), method, path),
    }
}

/// The request's head and whole body, under `max_body_bytes` and the read
/// timeout; else the error answer for `client`.
async fn read_body(
    shared: &Shared,
    req: Request<Incoming>,
    client: Api,
) -> Result<(http::request::Parts, Bytes), Response<ResponseBody>> {
    let limit = shared.max_body_bytes;
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(respond::too_large(client, limit));
    }
    let (parts, body) = req.into_parts();
    match tokio::time::timeout(BODY_READ_TIMEOUT, Limited::new(body, limit).collect()).await {
        Ok(Ok(collected)) => Ok((parts, collected.to_bytes())),
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            Err(respond::too_large(client, limit))
        }
        Ok(Err(e)) => Err(respond::invalid_request(client, format!("could not read the request body: {e}"), None)),
        Err(_) => Err(respond::body_timeout(client, BODY_READ_TIMEOUT)),
    }
}

/// The client headers an Anthropic provider should see (never credentials).
fn forwarded(headers: &http::HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    FORWARDED_TO_ANTHROPIC
        .iter()
        .filter_map(|name| Some((HeaderName::from_static(name), headers.get(*name)?.clone())))
        .collect()
}

/// A chat request of `client`'s API: read, checked, routed, exchanged.
async fn serve(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    client: Api,
    started: tokio::time::Instant,
    id: Arc<str>,
    key: Option<Arc<switchyard_access::Tenant>>,
) -> Response<ResponseBody> {
    let (parts, body) = match read_body(&shared, req, client).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    let peek = match RequestPeek::parse(&body) {
        Ok(peek) => peek,
        Err(e @ WireError::MissingModel) => return respond::invalid_request(client, e.to_string(), Some("model")),
        Err(e @ WireError::BadStream) => return respond::invalid_request(client, e.to_string(), Some("stream")),
        Err(e) => return respond::invalid_request(client, e.to_string(), None),
    };
    // A Messages request is parsed whole here; the exchange reuses it when a
    // target needs it translated.
    let parsed = match client {
        Api::Anthropic => match check_messages_request(&body) {
            Ok(request) => Some(request),
            Err((message, param)) => return respond::invalid_request(client, message, param),
        },
        Api::OpenAi => None,
    };
    let route = shared.routes_by_model.get(&peek.model).copied().or(shared.wildcard);
    let Some(route) = route else { return respond::unknown_model(client, &peek.model) };
    // The key's limits: its routes, budgets, concurrency and rates.
    let admission = match &key {
        Some(tenant) => {
            let route_model = shared.routes[route].name.as_str();
            let now = (std::time::Instant::now(), time::OffsetDateTime::now_utc());
            let admitted = match &shared.shared_rates {
                Some(rates) => tenant.admit_shared(route_model, peek.estimated_input_tokens, now.0, now.1, rates).await,
                None => tenant.admit(route_model, peek.estimated_input_tokens, now.0, now.1),
            };
            match admitted {
                Ok(admission) => {
                    shared.metrics.key_request(&tenant.label(), "admitted");
                    Some(admission)
                }
                Err(denied) => {
                    shared.metrics.key_request(&tenant.label(), denied.reason());
                    return respond::denied(client, &denied, &tenant.name, route_model);
                }
            }
        }
        None => None,
    };
    let trace = shared.telemetry.traces.as_ref().map(|traces| {
        let route_name = shared.routes[route].name.as_str();
        traces.request(
            &parts.headers,
            format!("chat {route_name}"),
            vec![
                opentelemetry::KeyValue::new("switchyard.request_id", id.to_string()),
                opentelemetry::KeyValue::new("switchyard.route", route_name.to_owned()),
                opentelemetry::KeyValue::new(
                    "switchyard.client_api",
                    switchyard_telemetry::access_log::api_name(client),
                ),
                opentelemetry::KeyValue::new("gen_ai.request.model", peek.model.clone()),
                opentelemetry::KeyValue::new("switchyard.stream", peek.stream),
            ],
        )
    });
    let call = CallContext::from_headers(parts.headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())));
    let forward = match client {
        Api::Anthropic => forwarded(&parts.headers),
        Api::OpenAi => Vec::new(),
    };
    let closing = shared.closing.clone();
    let exchange = exchange::Exchange::new(shared, route, client, peek, body, call, started)
        .forwarding(forward)
        .parsed(parsed)
        .logged_as(id, key.map(|k| k.name.clone()))
        .admitted(admission)
        .traced(trace)
        .run();
    // Past the shutdown grace period, a request still waiting for a
    // provider gets a clean 503 (a stream already flowing ends in its relay).
    // `biased`: the branches in order, not at random (an answer ready when
    // the grace period ends is sent; and a simulation's run is repeatable).
    tokio::select! {
        biased;
        mut response = exchange => {
            response.extensions_mut().insert(switchyard_telemetry::access_log::Logged);
            response
        }
        () = closing.cancelled() => respond::shutting_down(client),
    }
}

/// A Messages API request is checked whole before any provider sees it, so
/// a malformed one gets the same clear 400 whichever API its targets speak.
fn check_messages_request(body: &[u8]) -> Result<MessagesRequest, (String, Option<&'static str>)> {
    let request: MessagesRequest = serde_json::from_slice(body)
        .map_err(|e| (format!("The request is not a valid Messages API request: {e}."), None))?;
    if request.messages.is_empty() {
        return Err(("messages: at least one message is required.".into(), Some("messages")));
    }
    if let Some((i, m)) = request.messages.iter().enumerate().find(|(_, m)| m.role != "user" && m.role != "assistant") {
        return Err((
            format!("messages.{i}.role: Input should be 'user' or 'assistant', not {:?}.", m.role),
            Some("messages"),
        ));
    }
    if request.max_tokens == 0 {
        return Err(("max_tokens: must be at least 1.".into(), Some("max_tokens")));
    }
    Ok(request)
}
