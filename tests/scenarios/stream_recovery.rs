//! Streams that survive. Before its first content a stream can fail over like
//! any attempt (a preamble followed by silence, a stall or an error event is
//! invisible to the client). After it, a break — a cut, a stall with the
//! socket open, the provider's error event — is recovered as the policy says:
//! the answer is continued on another target from what the client has, or
//! restarted there and spliced, so the client reads one answer, every word
//! exactly once, with one end; a recovery that cannot match what was sent
//! ends with a clean error instead of garbage. Every provider here gives the
//! same deterministic 60-word answer, so splicing is checked exactly.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_wire::Api;
use switchyard_wire::sse::EventReader;
use switchyard_wire::stream::delivered::{BlockKind, Delivered};

use crate::*;

/// The answer every provider gives: `word01 word02 … word60`.
fn answer() -> String {
    (1..=60).map(|i| format!("word{i:02}")).collect::<Vec<_>>().join(" ")
}

fn answer_words(n: usize) -> String {
    answer().split_inclusive(' ').take(n).collect()
}

/// The provider's answer, told a word at a time.
fn tell() -> Reply {
    Reply::tell(&answer(), Duration::ZERO, None, StreamEnd::Done)
}

/// The answer broken after `words` words, as `end` says.
fn broken_after(words: usize, end: StreamEnd) -> Reply {
    Reply::tell(&answer(), Duration::from_millis(2), Some(words), end)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wire {
    OpenAi,
    Anthropic,
}

async fn mock(wire: Wire, name: &str, replies: Vec<Reply>) -> MockProvider {
    match wire {
        Wire::OpenAi => MockProvider::start_cycling(name, replies).await,
        Wire::Anthropic => MockProvider::start_anthropic(name, replies).await,
    }
}

/// A primary and a backup of these wires, route `m` over both under the
/// default (`failover`) policy with `settings`, and the route's own `lines`.
async fn gateway(
    primary: (Wire, Vec<Reply>),
    backup: (Wire, Vec<Reply>),
    settings: &[&str],
    lines: &[&str],
) -> (MockProvider, MockProvider, TestGateway) {
    init_tracing();
    let p = mock(primary.0, "primary", primary.1).await;
    let b = mock(backup.0, "backup", backup.1).await;
    let mut config = ConfigBuilder::new();
    for (wire, name, url) in [(primary.0, "primary", p.url()), (backup.0, "backup", b.url())] {
        config = match wire {
            Wire::OpenAi => config.provider(name, &url),
            Wire::Anthropic => config.anthropic_provider(name, &url),
        };
    }
    let config =
        config.route("m", None, 5000, &["primary", "backup"]).route_lines(lines).settings("failover", settings);
    let gw = TestGateway::start(&config).await;
    (p, b, gw)
}

/// What a client of `client`'s API read from a stream.
#[derive(Debug)]
struct Read {
    /// Everything delivered, read back.
    delivered: Delivered,
    /// The stream's end events (`[DONE]`, `message_stop`).
    ends: usize,
    /// Error events.
    errors: Vec<Value>,
    /// Distinct answer ids (OpenAI chunk ids; Anthropic `message_start`s).
    ids: BTreeSet<String>,
    /// `message_start` events (Anthropic) or role chunks (OpenAI).
    starts: usize,
    /// SSE comment lines.
    comments: Vec<String>,
}

fn read(client: Wire, raw: &str) -> Read {
    let api = if client == Wire::OpenAi { Api::OpenAi } else { Api::Anthropic };
    let mut r = Read {
        delivered: Delivered::read(api, raw.as_bytes()),
        ends: 0,
        errors: Vec::new(),
        ids: BTreeSet::new(),
        starts: 0,
        comments: raw.lines().filter(|l| l.starts_with(':')).map(str::to_owned).collect(),
    };
    for event in EventReader::default().feed(raw.as_bytes()) {
        if event.data == "[DONE]" || event.event.as_deref() == Some("message_stop") {
            r.ends += 1;
            continue;
        }
        let v: Value = serde_json::from_str(&event.data).unwrap_or_default();
        if v.get("error").is_some() {
            r.errors.push(v);
            continue;
        }
        match client {
            Wire::OpenAi => {
                r.ids.extend(v["id"].as_str().map(str::to_owned));
                r.starts += usize::from(v["choices"][0]["delta"]["role"].is_string());
            }
            Wire::Anthropic => {
                if v["type"] == "message_start" {
                    r.starts += 1;
                    r.ids.extend(v["message"]["id"].as_str().map(str::to_owned));
                }
            }
        }
    }
    r
}

async fn ask(gw: &TestGateway, client: Wire) -> (StreamingResponse, Instant) {
    let started = Instant::now();
    let stream = match client {
        Wire::OpenAi => post_chat_stream(&gw.url(), "m").await,
        Wire::Anthropic => post_messages_stream(&gw.url(), "m").await,
    };
    assert_eq!(stream.status, 200);
    (stream, started)
}

/// The client read the whole answer exactly once, as one answer, with one end.
fn assert_whole_answer(r: &Read) {
    assert!(r.errors.is_empty(), "errors: {:?}", r.errors);
    assert_eq!(r.delivered.text(), answer(), "{r:#?}");
    assert_eq!(r.ends, 1, "one end event: {r:#?}");
    assert_eq!(r.ids.len(), 1, "one answer id: {:?}", r.ids);
    assert_eq!(r.starts, 1, "one start: {r:#?}");
}

fn last_message(mock: &MockProvider, request: usize) -> Value {
    let body: Value = serde_json::from_str(&mock.seen()[request].body).unwrap();
    body["messages"].as_array().unwrap().last().unwrap().clone()
}

// ---------------------------------------------------------------- before the first token

/// The primary sends its headers and preamble at once, then `then`: the
/// client gets the backup's whole answer, and never the primary's preamble.
async fn a_preamble_then_nothing_fails_over(client: Wire, wire: Wire, then: StreamEnd, delay: Duration) {
    // An error event is retried once on the same target first (the policy's same-target retry).
    let primary_tries = if then == StreamEnd::ProviderError { 2 } else { 1 };
    let preamble = Reply::Preamble { then, delay };
    let (primary, backup, gw) =
        gateway((wire, vec![preamble]), (wire, vec![tell()]), &[], &["first_token_timeout_ms = 1000"]).await;
    let (stream, started) = ask(&gw, client).await;
    assert_eq!(stream.header("x-switchyard-provider"), "backup");
    let r = read(client, &stream.rest(PATIENCE).await);
    assert_whole_answer(&r);
    assert!(r.comments.iter().all(|c| !c.contains("keep-alive")), "the primary's preamble leaked: {r:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_eq!((primary.received(), backup.received()), (primary_tries, 1));
}

#[tokio::test]
async fn a_slow_first_token_fails_over_at_the_first_token_limit_not_the_providers_pace() {
    for (client, wire) in
        [(Wire::OpenAi, Wire::OpenAi), (Wire::Anthropic, Wire::Anthropic), (Wire::Anthropic, Wire::OpenAi)]
    {
        a_preamble_then_nothing_fails_over(client, wire, StreamEnd::Done, Duration::from_secs(20)).await;
    }
}

#[tokio::test]
async fn a_preamble_then_a_stall_fails_over_invisibly() {
    for (client, wire) in
        [(Wire::OpenAi, Wire::OpenAi), (Wire::Anthropic, Wire::Anthropic), (Wire::OpenAi, Wire::Anthropic)]
    {
        a_preamble_then_nothing_fails_over(client, wire, StreamEnd::Stall, Duration::ZERO).await;
    }
}

#[tokio::test]
async fn a_preamble_then_a_provider_error_event_fails_over_invisibly() {
    for (client, wire) in
        [(Wire::OpenAi, Wire::OpenAi), (Wire::Anthropic, Wire::Anthropic), (Wire::Anthropic, Wire::OpenAi)]
    {
        a_preamble_then_nothing_fails_over(client, wire, StreamEnd::ProviderError, Duration::ZERO).await;
    }
}

// ---------------------------------------------------------------- after it

/// The primary breaks after `words` words (`end`); the backup recovers as
/// `settings` say. Returns what the client read and the backup's requests.
async fn recovered(
    client: Wire,
    (primary_wire, backup_wire): (Wire, Wire),
    primary: Reply,
    backup: Reply,
    settings: &[&str],
) -> (Read, MockProvider) {
    let (_primary, backup, gw) =
        gateway((primary_wire, vec![primary]), (backup_wire, vec![backup]), settings, &["idle_timeout_ms = 500"]).await;
    let (stream, _) = ask(&gw, client).await;
    assert_eq!(stream.header("x-switchyard-provider"), "primary");
    let r = read(client, &stream.rest(PATIENCE).await);
    (r, backup)
}

const SAME_API: [(Wire, (Wire, Wire)); 2] =
    [(Wire::OpenAi, (Wire::OpenAi, Wire::OpenAi)), (Wire::Anthropic, (Wire::Anthropic, Wire::Anthropic))];
const TRANSLATED: [(Wire, (Wire, Wire)); 2] =
    [(Wire::OpenAi, (Wire::Anthropic, Wire::OpenAi)), (Wire::Anthropic, (Wire::OpenAi, Wire::Anthropic))];

#[tokio::test]
async fn a_stream_cut_after_40_of_60_words_is_continued_on_the_backup_every_word_once() {
    for (client, wires) in SAME_API.into_iter().chain(TRANSLATED) {
        let (r, backup) = recovered(client, wires, broken_after(40, StreamEnd::Cut), tell(), &[]).await;
        assert_whole_answer(&r);
        assert!(r.comments.iter().any(|c| c.contains("continued on backup")), "{:?}", r.comments);
        // The backup was handed the delivered words as a partial assistant turn.
        let turn = last_message(&backup, 0);
        assert_eq!(turn["role"], "assistant", "{client:?} {wires:?}");
        let partial = match &turn["content"] {
            Value::String(s) => s.clone(),
            blocks => blocks.as_array().unwrap().iter().filter_map(|b| b["text"].as_str()).collect(),
        };
        assert_eq!(partial, answer_words(40).trim_end(), "{client:?} {wires:?}");
    }
}

#[tokio::test]
async fn a_stream_cut_after_40_of_60_words_is_restarted_and_spliced_when_the_policy_says_restart() {
    for (client, wires) in SAME_API.into_iter().chain(TRANSLATED) {
        let (r, backup) =
            recovered(client, wires, broken_after(40, StreamEnd::Cut), tell(), &["recovery = \"restart\""]).await;
        assert_whole_answer(&r);
        assert!(r.comments.iter().any(|c| c.contains("restarted on backup")), "{:?}", r.comments);
        assert_eq!(last_message(&backup, 0)["role"], "user", "a restart asks the question again");
    }
}

#[tokio::test]
async fn a_stream_that_stalls_after_20_words_with_the_socket_open_is_recovered() {
    for (client, wires) in SAME_API {
        let (r, _) = recovered(client, wires, broken_after(20, StreamEnd::Stall), tell(), &[]).await;
        assert_whole_answer(&r);
    }
}

#[tokio::test]
async fn a_stream_that_sends_only_heartbeats_after_20_words_counts_as_stalled_and_is_recovered() {
    for (client, wires) in SAME_API {
        let (r, _) = recovered(client, wires, broken_after(20, StreamEnd::Heartbeats), tell(), &[]).await;
        assert_whole_answer(&r);
    }
}

#[tokio::test]
async fn a_providers_error_event_mid_answer_is_recovered_and_never_shown() {
    for (client, wires) in SAME_API.into_iter().chain(TRANSLATED) {
        let (r, _) = recovered(client, wires, broken_after(30, StreamEnd::ProviderError), tell(), &[]).await;
        assert_whole_answer(&r);
    }
}

#[tokio::test]
async fn a_backup_that_refuses_a_partial_turn_with_a_400_is_asked_again_and_the_client_never_sees_the_400() {
    for (client, wires) in SAME_API.into_iter().chain(TRANSLATED.into_iter().take(1)) {
        let refusing = Reply::RefusePrefill(Box::new(tell()));
        let (r, backup) = recovered(client, wires, broken_after(40, StreamEnd::Cut), refusing, &[]).await;
        assert_whole_answer(&r);
        assert!(!r.comments.iter().any(|c| c.contains("prefill")), "{r:?}");
        assert_eq!(backup.received(), 2, "the continuation, refused; then the restart");
        assert_eq!(last_message(&backup, 1)["role"], "user");
    }
}

#[tokio::test]
async fn a_restart_whose_answer_diverges_ends_with_a_clean_error_not_a_garbled_answer() {
    for (client, wires) in SAME_API.into_iter().chain(TRANSLATED.into_iter().take(1)) {
        let other = Reply::tell("something else entirely, said differently", Duration::ZERO, None, StreamEnd::Done);
        let (r, _) =
            recovered(client, wires, broken_after(40, StreamEnd::Cut), other, &["recovery = \"restart\""]).await;
        assert_eq!(r.delivered.text(), answer_words(40), "exactly what the primary said, nothing of the backup");
        assert_eq!(r.ends, 0, "no clean-looking end: {r:?}");
        assert_eq!(r.errors.len(), 1, "{r:?}");
        let message = r.errors[0]["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("did not match"), "{message}");
    }
}

#[tokio::test]
async fn a_stream_cut_inside_a_tool_calls_arguments_is_restarted_and_the_call_arrives_whole_once() {
    let arguments = r#"{"city":"Paris","unit":"celsius"}"#;
    let cut = Reply::ToolCallCut { name: "get_weather".into(), arguments: arguments.into() };
    let whole = Reply::ToolCall { name: "get_weather".into(), arguments: arguments.into() };
    for (client, wires) in SAME_API.into_iter().chain(TRANSLATED) {
        let (r, backup) = recovered(client, wires, cut.clone(), whole.clone(), &[]).await;
        assert!(r.errors.is_empty(), "{r:?}");
        let blocks = &r.delivered.blocks;
        assert_eq!(blocks.len(), 1, "{client:?} {wires:?}: {blocks:?}");
        assert!(matches!(&blocks[0].kind, BlockKind::ToolCall { name, .. } if name == "get_weather"), "{blocks:?}");
        assert_eq!(blocks[0].text, arguments, "{client:?} {wires:?}");
        assert_eq!(r.ends, 1);
        assert_eq!(last_message(&backup, 0)["role"], "user", "a partial tool call is restarted, not continued");
    }
}

#[tokio::test]
async fn with_recovery_off_a_break_ends_with_the_error_event_and_the_backup_is_not_asked() {
    for (client, wires) in SAME_API {
        let (r, backup) =
            recovered(client, wires, broken_after(40, StreamEnd::Cut), tell(), &["recovery = \"off\""]).await;
        assert_eq!(r.delivered.text(), answer_words(40));
        assert_eq!((r.errors.len(), r.ends), (1, 0), "{r:?}");
        assert_eq!(backup.received(), 0);
    }
}

// ---------------------------------------------------------------- long answers are not cut

#[tokio::test(start_paused = true)]
async fn a_three_minute_non_streamed_answer_and_a_ten_minute_steady_stream_are_not_cut_by_the_defaults() {
    let slow = Reply::Delay(Duration::from_secs(180), Box::new(tell()));
    let steady = Reply::tell(&answer(), Duration::from_secs(10), None, StreamEnd::Done);
    let (primary, backup, gw) =
        gateway((Wire::OpenAi, vec![slow, steady]), (Wire::OpenAi, vec![tell()]), &[], &[]).await;
    let started = tokio::time::Instant::now();
    let r = post_chat(&gw.url(), "m").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["choices"][0]["message"]["content"], answer());
    assert!(started.elapsed() >= Duration::from_secs(180));
    let started = tokio::time::Instant::now();
    let (stream, _) = ask(&gw, Wire::OpenAi).await;
    let r = read(Wire::OpenAi, &stream.rest(Duration::from_secs(3600)).await);
    assert_whole_answer(&r);
    assert!(started.elapsed() >= Duration::from_secs(590), "{:?}", started.elapsed());
    assert_eq!((primary.received(), backup.received()), (2, 0));
}

// ---------------------------------------------------------------- official SDKs

#[tokio::test]
async fn the_official_sdks_streaming_through_a_recovered_break_read_the_answer_exactly_once() {
    // Continued; and restarted after the backup refused the partial turn.
    let backups = [tell(), Reply::RefusePrefill(Box::new(tell()))];
    for (sdk, client) in [("openai", Wire::OpenAi), ("anthropic", Wire::Anthropic)] {
        for backup in &backups {
            let primary = broken_after(40, StreamEnd::Cut);
            let (_p, _b, gw) = gateway((client, vec![primary]), (client, vec![backup.clone()]), &[], &[]).await;
            let r = sdk_call(json!({"sdk": sdk, "base_url": gw.url(), "model": "m", "stream": true})).await;
            assert_eq!(r["ok"], true, "{sdk}: {r}");
            assert_eq!(r["text"], answer(), "{sdk} {backup:?}: {r}");
        }
    }
}
