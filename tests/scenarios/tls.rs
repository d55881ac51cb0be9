//! Providers over https: rustls with the bundled public roots plus a
//! provider's own `ca_file`, HTTP/2 when the provider offers it.

use std::time::Duration;

use crate::*;

#[tokio::test]
async fn https_provider_with_a_private_ca_is_reached_over_http2() {
    init_tracing();
    let secure = MockProvider::start_tls("secure", vec![Reply::Ok]).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, secure.ca_pem().unwrap()).unwrap();
    let config =
        ConfigBuilder::new().provider_with_ca("secure", &secure.tls_url(), &ca).route("m", None, 5000, &["secure"]);
    let gw = TestGateway::start(&config).await;

    let r = post_chat(&gw.url(), "m").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["choices"][0]["message"]["content"], "Hello from secure");
    let stream = post_chat_stream(&gw.url(), "m").await;
    let text = stream.rest(Duration::from_secs(5)).await;
    assert!(text.contains("secure") && text.trim_end().ends_with("data: [DONE]"), "{text}");

    let seen = secure.seen();
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter().all(|s| s.version == http::Version::HTTP_2),
        "{:?}",
        seen.iter().map(|s| s.version).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn https_provider_with_an_untrusted_certificate_fails_over() {
    init_tracing();
    let untrusted = MockProvider::start_tls("untrusted", vec![Reply::Ok]).await;
    let backup = MockProvider::start("backup").await;
    let gw = TestGateway::start(&two_providers(&untrusted.tls_url(), &backup.url())).await;
    let r = post_chat(&gw.url(), "m").await;
    assert_eq!(
        (r.status.as_u16(), r.header("x-switchyard-provider"), r.header("x-switchyard-attempts")),
        (200, "backup", "2")
    );
    // The TLS handshake failed: the untrusted provider never saw a request.
    assert_eq!(untrusted.received(), 0);
}
