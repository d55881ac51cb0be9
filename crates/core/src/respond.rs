//! The only place errors become client responses: in the client's API's
//! error format (OpenAI's or Anthropic's), `Retry-After` where waiting helps,
//! and the `x-switchyard-*` headers on every answer. Messages never contain
//! secrets.

use std::sync::Arc;
use switchyard_wire::text::truncate;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use switchyard_wire::Api;
use switchyard_wire::openai_error::OpenAiError;

use crate::{ResponseBody, headers};

/// What every answer says about how it was made.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    pub provider: Option<Arc<str>>,
    pub attempts: u32,
    pub policy: Option<Arc<str>>,
    pub degraded: Option<&'static str>,
}

impl Meta {
    pub fn none() -> Self {
        Meta { provider: None, attempts: 0, policy: None, degraded: None }
    }
}

pub(crate) fn full(bytes: Bytes) -> ResponseBody {
    Full::new(bytes).map_err(|never| match never {}).boxed_unsync()
}

fn value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// Adds the `x-switchyard-*` headers.
pub(crate) fn stamp(response: &mut Response<ResponseBody>, meta: &Meta) {
    let h = response.headers_mut();
    h.insert(headers::PROVIDER, value(meta.provider.as_deref().unwrap_or("none")));
    h.insert(headers::ATTEMPTS, HeaderValue::from(meta.attempts));
    h.insert(headers::POLICY, value(meta.policy.as_deref().unwrap_or("none")));
    if let Some(d) = meta.degraded {
        h.insert(headers::DEGRADED, HeaderValue::from_static(d));
    }
}

/// An error answer in `api`'s format.
pub(crate) fn error(
    api: Api,
    status: StatusCode,
    err: &OpenAiError,
    meta: &Meta,
    retry_after_secs: Option<u64>,
) -> Response<ResponseBody> {
    let mut response = Response::new(full(api.error_body(status.as_u16(), err)));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(secs) = retry_after_secs {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
    stamp(&mut response, meta);
    response
}

/// 400 about the request body.
pub(crate) fn invalid_request(
    api: Api,
    message: impl Into<String>,
    param: Option<&'static str>,
) -> Response<ResponseBody> {
    error(api, StatusCode::BAD_REQUEST, &OpenAiError::invalid_request(message, None, param), &Meta::none(), None)
}

/// 404 for a model no route serves.
pub(crate) fn unknown_model(api: Api, model: &str) -> Response<ResponseBody> {
    let message = format!("The model `{}` does not exist or you do not have access to it.", truncate(model, 200));
    error(
        api,
        StatusCode::NOT_FOUND,
        &OpenAiError::invalid_request(message, Some("model_not_found"), Some("model")),
        &Meta::none(),
        None,
    )
}

/// 413 for a body over `max_body_bytes`.
pub(crate) fn too_large(api: Api, limit: usize) -> Response<ResponseBody> {
    let message = format!("The request body is larger than this gateway accepts ({limit} bytes).");
    error(
        api,
        StatusCode::PAYLOAD_TOO_LARGE,
        &OpenAiError::invalid_request(message, Some("request_too_large"), None),
        &Meta::none(),
        None,
    )
}

/// 408 for a body that did not arrive in time.
pub(crate) fn body_timeout(api: Api, limit: std::time::Duration) -> Response<ResponseBody> {
    let message = format!("The request body did not arrive within {} s.", limit.as_secs());
    error(
        api,
        StatusCode::REQUEST_TIMEOUT,
        &OpenAiError::invalid_request(message, Some("request_timeout"), None),
        &Meta::none(),
        None,
    )
}

/// 404 / 405 for paths and methods the gateway does not serve.
pub(crate) fn not_found(api: Api, method: &http::Method, path: &str) -> Response<ResponseBody> {
    let message = format!("Unknown request URL: {method} {}.", truncate(path, 200));
    error(
        api,
        StatusCode::NOT_FOUND,
        &OpenAiError::invalid_request(message, Some("unknown_url"), None),
        &Meta::none(),
        None,
    )
}

/// 405 for a known path with the wrong method.
pub(crate) fn method_not_allowed(api: Api, method: &http::Method, path: &str) -> Response<ResponseBody> {
    let message = format!("{method} is not allowed on {path}; use POST.");
    let mut r = error(
        api,
        StatusCode::METHOD_NOT_ALLOWED,
        &OpenAiError::invalid_request(message, Some("method_not_allowed"), None),
        &Meta::none(),
        None,
    );
    r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
    r
}

/// 503 with `Retry-After`: every target failed, or the policy gave up.
/// 401: no gateway key, or not a valid one (`message` says which).
pub(crate) fn unauthorized(api: Api, message: &str) -> Response<ResponseBody> {
    let err = OpenAiError::invalid_request(message, Some("invalid_api_key"), None);
    error(api, StatusCode::UNAUTHORIZED, &err, &Meta::none(), None)
}

/// 429: the gateway key is over its `requests_per_minute`; the rate-limit
/// headers are the client's API's own (`x-ratelimit-*-requests` for OpenAI
/// A gateway key's request refused by its limits: 403 for a route it may
/// not use, 429 with `Retry-After` for a limit (and the API's own
/// rate-limit headers for a rate), the quota error for a spent budget.
pub(crate) fn denied(api: Api, denied: &switchyard_access::Denied, key: &str, route: &str) -> Response<ResponseBody> {
    use switchyard_access::Denied;
    let retry = denied.retry_after().map(|d| d.as_secs_f64().ceil().max(1.0) as u64);
    let (status, err, rate) = match denied {
        Denied::Route => (
            StatusCode::FORBIDDEN,
            OpenAiError {
                message: format!("The gateway key {key:?} may not use the model {route:?}."),
                kind: "permission_error",
                code: Some("model_not_allowed"),
                param: Some("model"),
            },
            None,
        ),
        Denied::Concurrency(max) => (
            StatusCode::TOO_MANY_REQUESTS,
            OpenAiError {
                message: format!(
                    "The gateway key {key:?} may have {max} requests in flight at once; retry when one has ended."
                ),
                kind: "requests",
                code: Some("rate_limit_exceeded"),
                param: None,
            },
            None,
        ),
        Denied::Requests(limited) => (
            StatusCode::TOO_MANY_REQUESTS,
            OpenAiError {
                message: format!(
                    "The gateway key {key:?} may make {} requests per minute; retry after {} s.",
                    limited.per_minute,
                    retry.unwrap_or(1)
                ),
                kind: "requests",
                code: Some("rate_limit_exceeded"),
                param: None,
            },
            Some(("requests", limited)),
        ),
        Denied::Tokens(limited) => (
            StatusCode::TOO_MANY_REQUESTS,
            OpenAiError {
                message: format!(
                    "The gateway key {key:?} may use {} tokens per minute; retry after {} s.",
                    limited.per_minute,
                    retry.unwrap_or(1)
                ),
                kind: "tokens",
                code: Some("rate_limit_exceeded"),
                param: None,
            },
            Some(("tokens", limited)),
        ),
        Denied::Budget(spent) => {
            let budget = match spent.what {
                "spend" => format!("${:.2}", spent.limit),
                _ => format!("{} tokens", spent.limit),
            };
            (
                StatusCode::TOO_MANY_REQUESTS,
                OpenAiError {
                    message: format!(
                        "The gateway key {key:?} has used its {} budget of {budget}; it starts again in {} s.",
                        spent.window,
                        retry.unwrap_or(1)
                    ),
                    kind: "insufficient_quota",
                    code: Some("insufficient_quota"),
                    param: None,
                },
                None,
            )
        }
    };
    let mut response = error(api, status, &err, &Meta::none(), retry);
    if let Some((what, limited)) = rate {
        rate_limit_headers(api, response.headers_mut(), what, limited);
    }
    response
}

/// The API's own rate-limit headers for a spent `what` (`requests`, `tokens`) rate.
fn rate_limit_headers(
    api: Api,
    headers: &mut http::HeaderMap,
    what: &'static str,
    limited: &switchyard_access::rate::Limited,
) {
    let reset_secs = limited.reset.as_secs_f64().ceil() as u64;
    let name = |pattern: &str| http::HeaderName::try_from(pattern.replace('*', what)).ok();
    let mut set = |pattern: &str, value: HeaderValue| {
        if let Some(name) = name(pattern) {
            headers.insert(name, value);
        }
    };
    match api {
        Api::OpenAi => {
            set("x-ratelimit-limit-*", HeaderValue::from(limited.per_minute));
            set("x-ratelimit-remaining-*", HeaderValue::from(0u32));
            set("x-ratelimit-reset-*", value(&format!("{reset_secs}s")));
        }
        Api::Anthropic => {
            set("anthropic-ratelimit-*-limit", HeaderValue::from(limited.per_minute));
            set("anthropic-ratelimit-*-remaining", HeaderValue::from(0u32));
            let at = time::OffsetDateTime::now_utc() + limited.reset;
            let at = at.replace_nanosecond(0).unwrap_or(at);
            if let Ok(v) = at.format(&time::format_description::well_known::Rfc3339) {
                set("anthropic-ratelimit-*-reset", value(&v));
            }
        }
    }
}

/// A request shed while waiting for a provider's quota: 429 when its
/// route's queue was full, 503 when its wait ran out; `Retry-After` both.
pub(crate) fn shed(api: Api, shed: switchyard_access::gate::Shed, meta: &Meta) -> Response<ResponseBody> {
    use switchyard_access::gate::Shed;
    let (status, retry_after, err) = match shed {
        Shed::QueueFull { retry_after } => (
            StatusCode::TOO_MANY_REQUESTS,
            retry_after,
            OpenAiError {
                message: "Too many requests are waiting for this model's provider; retry later.".into(),
                kind: "requests",
                code: Some("queue_full"),
                param: None,
            },
        ),
        Shed::Expired { retry_after } => (
            StatusCode::SERVICE_UNAVAILABLE,
            retry_after,
            OpenAiError::server(
                "The provider's rate limit left no room for this request within its wait; retry later.",
                "queue_wait_expired",
            ),
        ),
    };
    let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
    error(api, status, &err, meta, Some(secs))
}

/// The gateway is shutting down and its grace period is over.
pub(crate) fn shutting_down(api: Api) -> Response<ResponseBody> {
    error(
        api,
        StatusCode::SERVICE_UNAVAILABLE,
        &OpenAiError::server("The gateway is shutting down; retry on another instance.", "gateway_shutting_down"),
        &Meta::none(),
        Some(1),
    )
}

pub(crate) fn unavailable(
    api: Api,
    retry_after_ms: u64,
    message: impl Into<String>,
    meta: &Meta,
) -> Response<ResponseBody> {
    let secs = retry_after_ms.div_ceil(1000).max(1);
    error(
        api,
        StatusCode::SERVICE_UNAVAILABLE,
        &OpenAiError::server(message, "all_providers_unavailable"),
        meta,
        Some(secs),
    )
}

/// 502 / 504 when the policy accepted a failure that has no HTTP answer to pass on.
pub(crate) fn upstream_failed(
    api: Api,
    status: StatusCode,
    message: impl Into<String>,
    meta: &Meta,
) -> Response<ResponseBody> {
    let code = if status == StatusCode::GATEWAY_TIMEOUT { "upstream_timeout" } else { "upstream_error" };
    error(api, status, &OpenAiError::server(message, code), meta, None)
}
