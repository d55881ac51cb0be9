//! The admin listener (`admin_listen`, off unless configured): `GET
//! /metrics` (Prometheus, OpenMetrics text), `GET /healthz`, the live status
//! page (`GET /status`, which polls `GET /status.json`), and the JSON admin
//! API — `GET /admin/targets`, `/admin/routes`, `/admin/policies`,
//! `/admin/events`, `/admin/keys` (usage and limits per gateway key),
//! `/admin/quotas` (provider quotas and route queues); `POST /admin/breaker` (force a target's breaker open or
//! closed for maintenance, or give it back to traffic) and `POST
//! /admin/reload`. When an admin token is configured every request must
//! carry it, as `Authorization: Bearer` or as a Basic password (so a
//! browser can open the status page), compared in constant time; the config
//! refuses a non-loopback `admin_listen` without one.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use switchyard_policy_host::BreakerState;
use tokio::net::TcpListener;

use crate::gateway::{Live, Shared};
use crate::{ResponseBody, respond};

/// Equal without telling, by its timing, how much of `given` matched.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, &b) in expected.iter().enumerate() {
        diff |= b ^ given.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

fn answer(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<ResponseBody> {
    let mut response = Response::new(respond::full(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<ResponseBody> {
    answer(status, "application/json", value.to_string())
}

fn error(status: StatusCode, message: &str, kind: &str) -> Response<ResponseBody> {
    json(status, &serde_json::json!({"error": {"message": message, "type": kind}}))
}

pub(crate) fn breaker_name(state: BreakerState) -> &'static str {
    match state {
        BreakerState::Closed => "closed",
        BreakerState::HalfOpen => "half-open",
        BreakerState::Open => "open",
    }
}

/// Every target's health, as `GET /admin/targets` shows it.
pub(crate) fn target_json(shared: &Shared, index: u32) -> serde_json::Value {
    let t = &shared.topology.targets[index as usize];
    let h = shared.health.get(index);
    serde_json::json!({
        "target": format!("{}/{}", t.provider, t.model),
        "provider": t.provider,
        "model": t.model,
        "breaker": h.as_ref().map(|h| breaker_name(h.breaker)),
        "forced": shared.health.forced(index).map(breaker_name),
        "inflight": h.as_ref().map(|h| h.inflight),
        "ewma_latency_ms": h.as_ref().map(|h| h.ewma_latency_ms),
        "latency_p95_ms": h.as_ref().map(|h| h.latency_p95_ms),
        "error_rate": h.as_ref().map(|h| h.error_rate),
        "consecutive_failures": h.as_ref().map(|h| h.consecutive_failures),
        "retry_after_ms": h.as_ref().and_then(|h| h.retry_after_ms),
    })
}

fn targets(shared: &Shared) -> serde_json::Value {
    (0..shared.topology.targets.len() as u32).map(|i| target_json(shared, i)).collect()
}

pub(crate) fn routes(shared: &Shared) -> serde_json::Value {
    let routes: Vec<serde_json::Value> = shared
        .routes
        .iter()
        .map(|r| {
            let info = &shared.topology.routes[r.index as usize];
            let targets: Vec<String> = info
                .targets
                .iter()
                .map(|&t| {
                    let t = &shared.topology.targets[t as usize];
                    format!("{}/{}", t.provider, t.model)
                })
                .collect();
            serde_json::json!({
                "route": info.model,
                "policy": r.policy,
                "serving": shared.policies.current(&r.policy).map(|v| v.label().to_string()),
                "timeout_ms": r.timeout.as_millis() as u64,
                "targets": targets,
            })
        })
        .collect();
    serde_json::Value::Array(routes)
}

/// `POST /admin/breaker` `{"target": "provider/model", "state": "open" | "closed" | "auto"}`.
fn force_breaker(shared: &Shared, body: &[u8]) -> Response<ResponseBody> {
    let Ok(ask) = serde_json::from_slice::<serde_json::Value>(body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "The body must be JSON: {\"target\": \"provider/model\", \"state\": \"open\"}.",
            "invalid_request_error",
        );
    };
    let wanted = ask["target"].as_str().unwrap_or_default();
    let index = shared.topology.targets.iter().position(|t| format!("{}/{}", t.provider, t.model) == wanted);
    let Some(index) = index else {
        return error(StatusCode::NOT_FOUND, "No such target (see GET /admin/targets).", "not_found_error");
    };
    let state = match ask["state"].as_str() {
        Some("open") => Some(BreakerState::Open),
        Some("closed") => Some(BreakerState::Closed),
        Some("auto") => None,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "state must be \"open\", \"closed\" or \"auto\".",
                "invalid_request_error",
            );
        }
    };
    shared.health.force(index as u32, state);
    tracing::warn!(
        target = wanted,
        state = ask["state"].as_str().unwrap_or_default(),
        "breaker forced from the admin API"
    );
    json(StatusCode::OK, &target_json(shared, index as u32))
}

/// The token the request carries: a Bearer token, or a Basic password.
fn given_token(req: &Request<Incoming>) -> Vec<u8> {
    use base64::Engine;
    let given = req.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes()).unwrap_or_default();
    if let Some(bearer) = given.strip_prefix(b"Bearer ") {
        return bearer.to_vec();
    }
    let basic = given.strip_prefix(b"Basic ").unwrap_or_default();
    let decoded = base64::engine::general_purpose::STANDARD.decode(basic).unwrap_or_default();
    match decoded.iter().position(|&b| b == b':') {
        Some(colon) => decoded[colon + 1..].to_vec(),
        None => Vec::new(),
    }
}

async fn handle(live: Arc<Live>, token: Option<Arc<str>>, req: Request<Incoming>) -> Response<ResponseBody> {
    if let Some(token) = token.as_deref()
        && !same_secret(&given_token(&req), token.as_bytes())
    {
        let message = "The admin API needs the admin token (Authorization: Bearer ..., or as the Basic password).";
        let mut response = error(StatusCode::UNAUTHORIZED, message, "authentication_error");
        let challenge = if req.uri().path() == "/status" { "Basic realm=\"switchyard\"" } else { "Bearer" };
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        return response;
    }
    let shared = live.shared();
    match (req.method().clone(), req.uri().path()) {
        (Method::GET, "/metrics") => {
            let text = shared.metrics.render(
                shared.budget.remaining(),
                &shared.policies.slots(),
                shared.policies.shadow_reports(),
            );
            // OpenMetrics to a scraper that asks for it; the classic text otherwise.
            let accept = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
            if accept.contains("application/openmetrics-text") {
                answer(StatusCode::OK, "application/openmetrics-text; version=1.0.0; charset=utf-8", text)
            } else {
                answer(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    switchyard_telemetry::metrics::classic_text(&text),
                )
            }
        }
        (Method::GET, "/status") => {
            let mut page = answer(StatusCode::OK, "text/html; charset=utf-8", crate::status::PAGE);
            let csp = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:";
            page.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
            page
        }
        (Method::GET, "/status.json") => json(StatusCode::OK, &crate::status::snapshot(&shared)),
        (Method::GET, "/admin/policies") => json(StatusCode::OK, &crate::status::policies(&shared)),
        (Method::GET, "/admin/events") => {
            let query = req.uri().query().unwrap_or_default();
            let param = |name: &str| {
                query.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse::<u64>().ok())
            };
            let events =
                shared.telemetry.events.since(param("after").unwrap_or(0), param("limit").unwrap_or(100) as usize);
            let events: Vec<&switchyard_telemetry::events::Event> = events.iter().map(|e| &**e).collect();
            json(StatusCode::OK, &serde_json::to_value(&events).unwrap_or_default())
        }
        (Method::POST, "/admin/reload") => match crate::reload::from_file(&live).await {
            Ok(reloaded) => json(StatusCode::OK, &serde_json::json!({"reloaded": true, "changes": reloaded})),
            Err(crate::reload::ReloadError::NoConfigFile) => error(
                StatusCode::CONFLICT,
                "The gateway was started without a config file: nothing to reload.",
                "invalid_request_error",
            ),
            Err(e) => error(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("The new config was refused; the running one keeps serving. {e}"),
                "invalid_config",
            ),
        },
        (Method::GET, "/healthz") => answer(StatusCode::OK, "text/plain", "ok\n"),
        (Method::GET, "/admin/targets") => json(StatusCode::OK, &targets(&shared)),
        (Method::GET, "/admin/keys") => json(StatusCode::OK, &crate::usage::keys(&shared)),
        (Method::GET, "/admin/quotas") => json(StatusCode::OK, &crate::usage::quotas(&shared)),
        (Method::GET, "/admin/routes") => json(StatusCode::OK, &routes(&shared)),
        (Method::POST, "/admin/breaker") => match Limited::new(req.into_body(), MAX_ADMIN_BODY).collect().await {
            Ok(body) => force_breaker(&shared, &body.to_bytes()),
            Err(_) => {
                error(StatusCode::BAD_REQUEST, "The body could not be read (64 KiB at most).", "invalid_request_error")
            }
        },
        _ => error(StatusCode::NOT_FOUND, "No such admin endpoint.", "not_found_error"),
    }
}

/// Largest admin request body read.
const MAX_ADMIN_BODY: usize = 64 << 10;

/// Serves the admin endpoints on `listener` until the task is dropped.
pub(crate) async fn serve(live: Arc<Live>, listener: TcpListener, token: Option<String>) {
    let token: Option<Arc<str>> = token.map(Into::into);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let (live, token) = (live.clone(), token.clone());
        let service = service_fn(move |req| {
            let (live, token) = (live.clone(), token.clone());
            async move { Ok::<_, std::convert::Infallible>(handle(live, token, req).await) }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30))
            .serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"tok", b"tok"));
        assert!(!same_secret(b"to", b"tok") && !same_secret(b"tokk", b"tok") && !same_secret(b"", b"tok"));
        assert!(!same_secret(b"tik", b"tok"));
    }
}
