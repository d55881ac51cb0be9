//! The access log: one JSON line per chat request, with its id (the
//! client's `x-request-id` when sane, else a new one, returned either way),
//! every attempt, how it ended, and the provider's token counts — never a key
//! or a body.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::*;

const KEY: &str = "sk-primary-secret-0123456789";

/// The lines written so far, once there are `n`.
async fn lines(path: &PathBuf, n: usize) -> Vec<Value> {
    let mut read = Vec::new();
    eventually("access log lines", PATIENCE, || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        read = text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
        read.len() >= n
    })
    .await;
    read
}

async fn gateway(primary: &MockProvider, backup: &MockProvider) -> (TestGateway, PathBuf, tempfile::TempDir) {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let config = ConfigBuilder::new()
        .provider_with_key("primary", &primary.url(), "PRIMARY_KEY")
        .provider("backup", &backup.url())
        .route("m", None, 5000, &["primary", "backup"])
        .access_log(log.to_str().unwrap());
    let gw = TestGateway::start_with_env(&config, |v| (v == "PRIMARY_KEY").then(|| KEY.to_owned())).await;
    (gw, log, dir)
}

#[tokio::test]
async fn a_failed_over_request_is_one_line_with_every_attempt_and_the_providers_token_counts() {
    let primary = MockProvider::start_cycling("primary", vec![Reply::status(503)]).await;
    let backup = MockProvider::start("backup").await;
    let (gw, log, _dir) = gateway(&primary, &backup).await;
    let r =
        post_raw(&gw.url(), "/v1/chat/completions", chat_body("m", false), &[("x-request-id", "client-id-42")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-request-id"), "client-id-42", "the client's id is returned");
    let line = &lines(&log, 1).await[0];
    assert_eq!(line["request_id"], "client-id-42");
    assert_eq!(
        (line["api"].as_str(), line["route"].as_str(), line["model"].as_str()),
        (Some("openai"), Some("m"), Some("m"))
    );
    assert_eq!((line["status"].as_u64(), line["provider"].as_str()), (Some(200), Some("backup")));
    assert!(line["policy"].as_str().unwrap().starts_with("failover@"), "{line}");
    let attempts: Vec<(&str, &str)> = line["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["target"].as_str().unwrap(), a["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(attempts, [("primary/m", "overloaded"), ("primary/m", "overloaded"), ("backup/m", "success")]);
    assert_eq!(line["attempts"][0]["status"], 503);
    assert_eq!((line["tokens_in"].as_u64(), line["tokens_out"].as_u64()), (Some(5), Some(3)), "the mock's usage");
    assert!(line["latency_ms"].as_f64().unwrap() > 0.0 && line["time"].as_str().unwrap().ends_with('Z'));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(KEY) && !text.contains("Hello"), "no key, no body: {text}");
}

#[tokio::test]
async fn a_request_id_that_is_not_a_sane_token_is_replaced_and_every_answer_carries_one() {
    let primary = MockProvider::start("primary").await;
    let backup = MockProvider::start("backup").await;
    let (gw, log, _dir) = gateway(&primary, &backup).await;
    let long = "x".repeat(200);
    for bad in ["has spaces in it", "quote\"s", long.as_str()] {
        let r = post_raw(&gw.url(), "/v1/chat/completions", chat_body("m", false), &[("x-request-id", bad)]).await;
        let id = r.header("x-request-id");
        assert!(id.starts_with("req_") && id.len() == 36, "{bad:?} → {id:?}");
    }
    // Refused at the door: still an id, still a line.
    let r = post_chat(&gw.url(), "no-such-model").await;
    assert_eq!(r.status, 404);
    let id = r.header("x-request-id").to_owned();
    assert!(id.starts_with("req_"));
    let all = lines(&log, 4).await;
    let refused = all.iter().find(|l| l["request_id"] == id.as_str()).expect("the refused request's line");
    assert_eq!((refused["status"].as_u64(), refused["attempts"].as_array().unwrap().len()), (Some(404), 0));
    let models = get(&gw.url(), "/v1/models").await;
    assert!(models.header("x-request-id").starts_with("req_"));
}

#[tokio::test]
async fn a_recovered_stream_is_logged_when_it_ends_with_its_recovery_and_time_to_first_token() {
    let cut = Reply::tell("one two three four five six", Duration::from_millis(2), Some(3), StreamEnd::Cut);
    let primary = MockProvider::start_cycling("primary", vec![cut]).await;
    let backup = MockProvider::start_cycling(
        "backup",
        vec![Reply::tell("one two three four five six", Duration::ZERO, None, StreamEnd::Done)],
    )
    .await;
    let (gw, log, _dir) = gateway(&primary, &backup).await;
    let stream = post_chat_stream(&gw.url(), "m").await;
    let id = stream.header("x-request-id").to_owned();
    let text = stream.rest(PATIENCE).await;
    assert!(text.contains("six"), "{text}");
    let line = &lines(&log, 1).await[0];
    assert_eq!(line["request_id"], id.as_str());
    assert_eq!((line["stream"].as_bool(), line["stream_end"].as_str()), (Some(true), Some("complete")));
    assert_eq!(line["recoveries"][0]["break"], "cut");
    assert_eq!(line["recoveries"][0]["recovery"], "continue");
    assert_eq!(line["recoveries"][0]["target"], "backup/m");
    assert_eq!(line["provider"], "backup", "the provider that finished the answer");
    let ttft = line["first_token_ms"].as_f64().unwrap();
    assert!(ttft > 0.0 && ttft <= line["latency_ms"].as_f64().unwrap(), "{line}");
    assert_eq!(line["attempts"].as_array().unwrap().len(), 2, "{line}");
}
