//! The admin listener (`admin_listen`, off unless configured): `GET
//! /metrics` (Prometheus, OpenMetrics text) and `GET /healthz`. When an admin
//! token is configured every request must carry it as `Authorization: Bearer`
//! (compared in constant time); the config refuses a non-loopback
//! `admin_listen` without one.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::gateway::Shared;
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

fn handle(shared: &Shared, token: Option<&str>, req: &Request<Incoming>) -> Response<ResponseBody> {
    if let Some(token) = token {
        let given = req.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes()).unwrap_or_default();
        let given = given.strip_prefix(b"Bearer ").unwrap_or_default();
        if !same_secret(given, token.as_bytes()) {
            let body = r#"{"error":{"message":"The admin API needs the admin token (Authorization: Bearer ...).","type":"authentication_error"}}"#;
            let mut response = answer(StatusCode::UNAUTHORIZED, "application/json", body);
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => answer(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            shared.metrics.render(),
        ),
        (&Method::GET, "/healthz") => answer(StatusCode::OK, "text/plain", "ok\n"),
        _ => answer(
            StatusCode::NOT_FOUND,
            "application/json",
            r#"{"error":{"message":"No such admin endpoint.","type":"not_found_error"}}"#,
        ),
    }
}

/// Serves the admin endpoints on `listener` until the task is dropped.
pub(crate) async fn serve(shared: Arc<Shared>, listener: TcpListener, token: Option<String>) {
    let token: Option<Arc<str>> = token.map(Into::into);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let (shared, token) = (shared.clone(), token.clone());
        let service = service_fn(move |req| {
            let response = handle(&shared, token.as_deref(), &req);
            async move { Ok::<_, std::convert::Infallible>(response) }
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
