//! Each attempt runs under limits fitted to LLM traffic, set per route in the
//! config (or per request by the policy): connect, first token, idle, whole
//! answer. Streams' first-token and idle limits are exercised in
//! `stream_recovery.rs`; long answers that must not be cut, there too.

use std::time::{Duration, Instant};

use crate::*;

/// A listener whose accept queue is full: the kernel drops further SYNs, so
/// a connection attempt hangs as it would towards a host that is down.
async fn unreachable_listener() -> (String, Vec<tokio::net::TcpStream>, tokio::net::TcpListener) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    // Fill the accept queue (never accepted); further connects hang.
    for _ in 0..4 {
        match tokio::time::timeout(Duration::from_millis(200), tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => fillers.push(stream),
            _ => break,
        }
    }
    (format!("http://{addr}"), fillers, listener)
}

#[tokio::test]
async fn a_provider_that_cannot_be_reached_is_given_up_on_at_the_routes_connect_limit() {
    init_tracing();
    let (url, _fillers, _listener) = unreachable_listener().await;
    let backup = MockProvider::start("backup").await;
    // The provider's own connect timeout is 500 ms (the test harness's); the route asks for 100 ms.
    let config = two_providers(&url, &backup.url()).route_lines(&["connect_timeout_ms = 100"]);
    let gw = TestGateway::start(&config).await;
    let started = Instant::now();
    let r = post_chat(&gw.url(), "m").await;
    let took = started.elapsed();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-switchyard-provider"), "backup");
    assert!(
        took < Duration::from_millis(400),
        "took {took:?}: the provider's 500 ms connect timeout, not the route's 100 ms"
    );
    assert!(took >= Duration::from_millis(90), "took {took:?}: the primary did not hang, the test proves nothing");
}

#[tokio::test]
async fn a_non_streamed_answer_slower_than_the_routes_answer_limit_fails_over() {
    init_tracing();
    let primary =
        MockProvider::start_cycling("primary", vec![Reply::Delay(Duration::from_secs(5), Box::new(Reply::Ok))]).await;
    let backup = MockProvider::start("backup").await;
    let config = two_providers(&primary.url(), &backup.url()).route_lines(&["answer_timeout_ms = 300"]);
    let gw = TestGateway::start(&config).await;
    let started = Instant::now();
    let r = post_chat(&gw.url(), "m").await;
    assert_eq!((r.status.as_u16(), r.header("x-switchyard-provider")), (200, "backup"));
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}
