//! OpenTelemetry traces to a loopback OTLP/HTTP receiver: one trace per
//! request, its attempts and policy decisions as child spans, the client's
//! `traceparent` continued and the attempt's passed to the provider.

use std::collections::BTreeMap;

use crate::*;

/// Every span the receiver got, flattened from OTLP/JSON export requests.
fn spans(got: &[Received]) -> Vec<serde_json::Value> {
    got.iter()
        .flat_map(|r| {
            let body = r.json();
            let mut out = Vec::new();
            for resource in body["resourceSpans"].as_array().into_iter().flatten() {
                for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                    out.extend(scope["spans"].as_array().into_iter().flatten().cloned());
                }
            }
            out
        })
        .collect()
}

fn attribute(span: &serde_json::Value, key: &str) -> Option<serde_json::Value> {
    let found = span["attributes"].as_array()?.iter().find(|a| a["key"] == key)?;
    let value = &found["value"];
    value.get("stringValue").or(value.get("intValue")).or(value.get("boolValue")).cloned()
}

#[tokio::test]
async fn each_request_is_one_trace_with_its_attempts_and_decisions_and_the_traceparent_travels() {
    init_tracing();
    let collector = Receiver::start(0).await;
    let primary = MockProvider::start_cycling("primary", vec![Reply::status(503)]).await;
    let backup = MockProvider::start("backup").await;
    let config = ConfigBuilder::new()
        .top(&format!("[traces]\notlp_endpoint = \"{}/v1/traces\"\nexport_every_ms = 100", collector.url()))
        // (The primary's breaker stays closed: every request makes the same attempts.)
        .top("[breaker]\nfailures = 100\nmin_requests = 1000")
        .provider("primary", &primary.url())
        .provider("backup", &backup.url())
        .route("m", None, 5000, &["primary", "backup"]);
    let gw = TestGateway::start(&config).await;
    for _ in 0..2 {
        assert_eq!(post_chat(&gw.url(), "m").await.status, 200);
    }
    let client_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{client_trace}-00f067aa0ba902b7-01");
    let r = post_raw(&gw.url(), "/v1/chat/completions", chat_body("m", false), &[("traceparent", &traceparent)]).await;
    assert_eq!(r.status, 200);

    let got =
        collector.wait_for(PATIENCE, |got| spans(got).iter().filter(|s| s["name"] == "chat m").count() >= 3).await;
    assert!(got.iter().all(|r| r.path == "/v1/traces" && r.headers["content-type"] == "application/json"));
    let all = spans(&got);
    let mut traces: BTreeMap<String, Vec<&serde_json::Value>> = BTreeMap::new();
    for span in &all {
        traces.entry(span["traceId"].as_str().unwrap().to_lowercase()).or_default().push(span);
    }
    assert_eq!(traces.len(), 3, "one trace per request: {all:#?}");
    for (trace_id, spans) in &traces {
        let names: Vec<&str> = spans.iter().map(|s| s["name"].as_str().unwrap()).collect();
        let root = spans.iter().find(|s| s["name"] == "chat m").unwrap_or_else(|| panic!("{names:?}"));
        assert_eq!(root["kind"], 2, "server span");
        assert_eq!(attribute(root, "http.response.status_code"), Some(serde_json::json!("200")));
        assert_eq!(attribute(root, "switchyard.provider"), Some(serde_json::json!("backup")));
        let attempts: Vec<_> = spans.iter().filter(|s| s["name"].as_str().unwrap().starts_with("attempt ")).collect();
        // The primary's 503, once retried on it, then the backup.
        let targets: Vec<&str> = attempts.iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(targets.len(), 3, "{trace_id}: {names:?}");
        assert_eq!(targets.iter().filter(|t| **t == "attempt primary/m").count(), 2);
        assert!(attempts.iter().all(|a| a["parentSpanId"] == root["spanId"] && a["kind"] == 3));
        let outcomes: Vec<_> = attempts.iter().map(|a| attribute(a, "switchyard.outcome").unwrap()).collect();
        assert!(
            outcomes.contains(&serde_json::json!("overloaded")) && outcomes.contains(&serde_json::json!("success"))
        );
        assert!(names.contains(&"policy route") && names.contains(&"policy on-attempt"), "{names:?}");
    }
    // The client's trace continues: same trace id, the client's span as parent.
    let continued = &traces[client_trace];
    let root = continued.iter().find(|s| s["name"] == "chat m").unwrap();
    assert_eq!(root["parentSpanId"].as_str().unwrap().to_lowercase(), "00f067aa0ba902b7");
    // The provider got a traceparent naming its own attempt span.
    let seen = backup.seen();
    let sent = seen.last().unwrap().headers["traceparent"].to_str().unwrap().to_owned();
    let attempt = continued.iter().find(|s| s["name"] == "attempt backup/m").unwrap();
    let span_id = attempt["spanId"].as_str().unwrap().to_lowercase();
    assert_eq!(sent, format!("00-{client_trace}-{span_id}-01"));
    let everything =
        String::from_utf8_lossy(&got.iter().flat_map(|r| r.body.to_vec()).collect::<Vec<u8>>()).into_owned();
    assert!(!everything.contains("Hello?"), "no request body in a trace");
}

#[tokio::test]
async fn without_a_traces_section_nothing_is_exported_and_no_traceparent_is_made_up() {
    init_tracing();
    let backup = MockProvider::start("backup").await;
    let gw =
        TestGateway::start(&ConfigBuilder::new().provider("backup", &backup.url()).route("m", None, 5000, &["backup"]))
            .await;
    assert_eq!(post_chat(&gw.url(), "m").await.status, 200);
    assert!(backup.seen()[0].headers.get("traceparent").is_none());
}
