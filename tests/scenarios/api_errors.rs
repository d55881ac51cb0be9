//! Bad input gets a 4xx in OpenAI's error format, never a panic or a 5xx.

use crate::*;

async fn gateway(extra: &str) -> (TestGateway, MockProvider) {
    init_tracing();
    let provider = MockProvider::start("only").await;
    let config = ConfigBuilder::new().top(extra).provider("only", &provider.url()).route("m", None, 5000, &["only"]);
    (TestGateway::start(&config).await, provider)
}

fn assert_openai_error(r: &ChatResponse, status: u16, needle: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.body);
    let body = r.json();
    let message = body["error"]["message"].as_str().expect("error.message");
    assert!(message.contains(needle), "message {message:?} should mention {needle:?}");
    assert!(body["error"]["type"].is_string(), "error.type: {body}");
    assert_eq!(r.header("content-type"), "application/json");
}

#[tokio::test]
async fn non_json_body_is_a_400() {
    let (gw, provider) = gateway("").await;
    let r = post_raw(&gw.url(), "/v1/chat/completions", "this is not json", &[]).await;
    assert_openai_error(&r, 400, "not valid JSON");
    assert_eq!(provider.received(), 0);
}

#[tokio::test]
async fn missing_model_is_a_400_naming_the_param() {
    let (gw, _provider) = gateway("").await;
    let r = post_raw(&gw.url(), "/v1/chat/completions", r#"{"messages":[]}"#, &[]).await;
    assert_openai_error(&r, 400, "model");
    assert_eq!(r.json()["error"]["param"], "model");
}

#[tokio::test]
async fn unknown_model_is_a_404_model_not_found() {
    let (gw, provider) = gateway("").await;
    let r = post_chat(&gw.url(), "no-such-model").await;
    assert_openai_error(&r, 404, "no-such-model");
    assert_eq!(r.json()["error"]["code"], "model_not_found");
    assert_eq!(provider.received(), 0);
}

#[tokio::test]
async fn oversized_body_is_a_413() {
    let (gw, provider) = gateway("max_body_bytes = 1024").await;
    let big = chat_body("m", false).replace("Hello?", &"x".repeat(4096));
    let r = post_raw(&gw.url(), "/v1/chat/completions", big, &[]).await;
    assert_openai_error(&r, 413, "larger than");
    assert_eq!(provider.received(), 0);
    // A body under the limit still works on the same gateway.
    assert_eq!(post_chat(&gw.url(), "m").await.status, 200);
}

#[tokio::test]
async fn wrong_method_and_unknown_path_are_4xx() {
    let (gw, _provider) = gateway("").await;
    let r = post_raw(&gw.url(), "/v1/nothing-here", "{}", &[]).await;
    assert_openai_error(&r, 404, "Unknown request URL");
    let client_get = hyper_get(&format!("{}/v1/chat/completions", gw.url())).await;
    assert_eq!(client_get, 405);
}

#[tokio::test]
async fn stream_must_be_a_boolean() {
    let (gw, _provider) = gateway("").await;
    let r = post_raw(&gw.url(), "/v1/chat/completions", r#"{"model":"m","stream":"yes"}"#, &[]).await;
    assert_openai_error(&r, 400, "stream");
}

async fn hyper_get(url: &str) -> u16 {
    use http_body_util::Empty;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<bytes::Bytes>>();
    client.get(url.parse().unwrap()).await.unwrap().status().as_u16()
}

#[tokio::test]
async fn a_body_nested_100_000_deep_is_a_400_and_reaches_no_provider() {
    let (gw, provider) = gateway("max_body_bytes = 1_000_000").await;
    let deep = format!(r#"{{"model":"m","messages":{}{}}}"#, "[".repeat(100_000), "]".repeat(100_000));
    let r = post_raw(&gw.url(), "/v1/chat/completions", deep.clone(), &[]).await;
    assert_openai_error(&r, 400, "deeper than");
    // The same for an Anthropic client.
    let r = post_raw(&gw.url(), "/v1/messages", deep, &[("anthropic-version", "2023-06-01")]).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["type"], "error");
    assert_eq!(provider.received(), 0);
}

#[tokio::test]
async fn invalid_utf8_anywhere_in_the_body_is_a_400() {
    let (gw, provider) = gateway("").await;
    let mut body = br#"{"model":"m","messages":[{"role":"user","content":"caf"#.to_vec();
    body.extend_from_slice(b"\xe9\"}]}");
    let r = post_raw(&gw.url(), "/v1/chat/completions", body, &[]).await;
    assert_openai_error(&r, 400, "UTF-8");
    assert_eq!(provider.received(), 0);
}

#[tokio::test]
async fn a_megabyte_model_name_is_not_echoed_back_whole() {
    let (gw, _provider) = gateway("max_body_bytes = 2_000_000").await;
    let model = "x".repeat(1 << 20);
    let body = format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#);
    let r = post_raw(&gw.url(), "/v1/chat/completions", body, &[]).await;
    assert_openai_error(&r, 404, "does not exist");
    assert!(r.body.len() < 2000, "{} bytes of error body", r.body.len());
}

#[tokio::test]
async fn an_accepted_provider_429_reaches_the_client_with_the_headers_it_acts_on() {
    init_tracing();
    let limited = Reply::Status {
        status: 429,
        headers: [
            ("retry-after", "7"),
            ("retry-after-ms", "6500"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "6.5s"),
            ("x-request-id", "req_upstream_1"),
            ("set-cookie", "tracking=1"),
        ]
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .to_vec(),
        body: r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#.into(),
    };
    let provider = MockProvider::start_cycling("only", vec![limited]).await;
    let config = ConfigBuilder::new()
        .provider("only", &provider.url())
        .route("m", Some("chaos"), 5000, &["only"])
        .settings("chaos", &["accept = true"]);
    let gw = TestGateway::start(&config).await;
    install_policy(&gw, "chaos", "chaos").await;
    let r = post_chat(&gw.url(), "m").await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.header("retry-after"), "7");
    assert_eq!(r.header("retry-after-ms"), "6500");
    assert_eq!(r.header("x-ratelimit-remaining-requests"), "0");
    assert_eq!(r.header("x-ratelimit-reset-requests"), "6.5s");
    assert_eq!(r.header("x-upstream-request-id"), "req_upstream_1");
    assert_eq!(r.header("set-cookie"), "", "only what a client acts on passes");
}
