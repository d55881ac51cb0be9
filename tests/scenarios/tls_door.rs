//! TLS at the door (`[tls]`): the gateway serves https with HTTP/2 or
//! HTTP/1.1 as ALPN chooses, picks up a renewed certificate without a
//! restart, and both official SDKs talk to it trusting a private CA. A
//! plain listener also takes HTTP/2 with prior knowledge (h2c).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::*;

/// A self-signed certificate for `127.0.0.1` and `localhost`: (cert PEM, key PEM, cert DER).
fn certificate() -> (String, String, Vec<u8>) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).expect("certificate");
    (certified.cert.pem(), certified.signing_key.serialize_pem(), certified.cert.der().to_vec())
}

fn write_certificate(dir: &Path, (cert, key, _): &(String, String, Vec<u8>)) {
    // As a renewal tool does: write beside, then rename over.
    for (name, pem) in [("gateway.pem", cert), ("gateway-key.pem", key)] {
        let tmp = dir.join(format!("{name}.new"));
        std::fs::write(&tmp, pem).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
}

fn tls_section(dir: &Path) -> String {
    format!(
        "[tls]\ncert_file = {:?}\nkey_file = {:?}",
        dir.join("gateway.pem").display().to_string(),
        dir.join("gateway-key.pem").display().to_string()
    )
}

/// A TLS connection to `addr` trusting `roots` (DER), offering `alpn`:
/// the stream, the protocol chosen and the certificate served.
async fn connect(
    addr: std::net::SocketAddr,
    roots: &[&[u8]],
    alpn: &[&[u8]],
) -> (tokio_rustls::client::TlsStream<tokio::net::TcpStream>, Option<Vec<u8>>, Vec<u8>) {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(rustls::pki_types::CertificateDer::from(root.to_vec())).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.expect("TLS handshake");
    let (_, session) = tls.get_ref();
    let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
    let served = session.peer_certificates().unwrap()[0].to_vec();
    (tls, alpn, served)
}

/// A gateway serving `[tls]` with a new certificate (written to `dir`) in
/// front of the mock `p`, route `m`: (gateway, provider, certificate).
async fn tls_gateway(dir: &Path) -> (TestGateway, MockProvider, (String, String, Vec<u8>)) {
    init_tracing();
    let provider = MockProvider::start("p").await;
    let cert = certificate();
    write_certificate(dir, &cert);
    let config =
        ConfigBuilder::new().top(&tls_section(dir)).provider("p", &provider.url()).route("m", None, 5000, &["p"]);
    (TestGateway::start(&config).await, provider, cert)
}

fn chat_request(authority: &str) -> http::Request<Full<Bytes>> {
    http::Request::post(format!("https://{authority}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(chat_body("m", false))))
        .unwrap()
}

/// Sends a chat request over HTTP/2 on `io`: (status, version, body).
async fn over_h2<I>(io: I, authority: &str) -> (u16, http::Version, String)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io)).await.expect("h2 handshake");
    tokio::spawn(conn);
    let response = send.send_request(chat_request(authority)).await.expect("h2 answer");
    let (head, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (head.status.as_u16(), head.version, String::from_utf8_lossy(&body).into())
}

#[tokio::test]
async fn https_at_the_door_speaks_http2_or_http11_by_alpn_and_serves_a_renewed_certificate_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, provider, first) = tls_gateway(dir.path()).await;
    let authority = gw.addr.to_string();

    // HTTP/2 by ALPN.
    let (tls, alpn, served) = connect(gw.addr, &[&first.2], &[b"h2", b"http/1.1"]).await;
    assert_eq!((alpn.as_deref(), served == first.2), (Some(&b"h2"[..]), true));
    let (status, version, body) = over_h2(tls, &authority).await;
    assert_eq!((status, version), (200, http::Version::HTTP_2), "{body}");
    assert!(body.contains("Hello from p"));

    // HTTP/1.1 for a client that offers only it.
    let (tls, alpn, _) = connect(gw.addr, &[&first.2], &[b"http/1.1"]).await;
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    let response = send.send_request(chat_request(&authority)).await.unwrap();
    assert_eq!((response.status().as_u16(), response.version()), (200, http::Version::HTTP_11));

    // Plain HTTP to the TLS port gets no answer.
    let plain = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::spawn(async move { post_chat(&format!("http://{authority}"), "m").await }),
    )
    .await
    .expect("the connection is closed, not left hanging");
    assert!(plain.is_err(), "no HTTP answer over a TLS port");

    // A renewed certificate is served to the next handshake.
    let renewed = certificate();
    write_certificate(dir.path(), &renewed);
    let mut now_served = Vec::new();
    for _ in 0..60 {
        now_served = connect(gw.addr, &[&first.2, &renewed.2], &[b"h2"]).await.2;
        if now_served == renewed.2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(now_served == renewed.2, "the renewed certificate is served within 6 s");
    // A half-written renewal (a key that does not fit) leaves the good one in service.
    std::fs::write(dir.path().join("gateway-key.pem"), certificate().1).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (tls, _, served) = connect(gw.addr, &[&renewed.2], &[b"h2"]).await;
    assert!(served == renewed.2);
    assert_eq!(over_h2(tls, &gw.addr.to_string()).await.0, 200);
    assert_eq!(provider.received(), 3);
}

#[tokio::test]
async fn both_official_sdks_talk_to_an_https_gateway_trusting_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, provider, cert) = tls_gateway(dir.path()).await;
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &cert.0).unwrap();
    let base_url = format!("https://{}", gw.addr);
    for sdk in ["openai", "anthropic"] {
        for stream in [false, true] {
            let r = sdk_call(serde_json::json!({
                "sdk": sdk, "base_url": base_url, "model": "m", "stream": stream,
                "ca_file": ca.display().to_string(),
            }))
            .await;
            assert_eq!(r["ok"], true, "{sdk} (stream: {stream}) over https: {r}");
        }
        // Without the CA the SDK refuses the certificate.
        let r = sdk_call(serde_json::json!({"sdk": sdk, "base_url": base_url, "model": "m", "stream": false})).await;
        assert_eq!((r["ok"].as_bool(), r["class"].as_str()), (Some(false), Some("APIConnectionError")), "{sdk}: {r}");
    }
    assert_eq!(provider.received(), 4);
}

#[tokio::test]
async fn a_plain_listener_takes_http2_with_prior_knowledge() {
    init_tracing();
    let provider = MockProvider::start("p").await;
    let gw =
        TestGateway::start(&ConfigBuilder::new().provider("p", &provider.url()).route("m", None, 5000, &["p"])).await;
    let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let (status, version, body) = over_h2(tcp, &gw.addr.to_string()).await;
    assert_eq!((status, version), (200, http::Version::HTTP_2), "{body}");
}
