//! Hostile bytes: everything that parses what a client or a provider sends —
//! the request peek, Messages validation and translation, the SSE reader,
//! the end-of-stream detector, the stream translators both ways, error-body
//! classification, `Retry-After` parsing, cached-answer replay — fed
//! arbitrary bytes and mutations of the recorded fixtures. None may panic,
//! hang or keep more memory than its bound; where the cut of a stream into
//! chunks must not matter, it must not.
//!
//! Cases per property: 256 by default; `FUZZ_CASES=N` for a longer run
//! (the README's bench section gives the 10-minute run and what it found).

use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use switchyard_wire::anthropic::MessagesRequest;
use switchyard_wire::chat::ChatRequest;
use switchyard_wire::sse::{DoneDetector, EventReader, MAX_EVENT_BYTES};
use switchyard_wire::translate::stream::{AnthropicToChat, ChatToAnthropic, StreamTranslator};
use switchyard_wire::{Api, RequestPeek, classify_status, parse_retry_after, replay, request, translate};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

const REQUESTS: [&str; 2] = ["openai_request_tools.json", "anthropic_request_tools.json"];
const ANSWERS: [&str; 2] = ["openai_completion_tool_calls.json", "anthropic_message_tool_use.json"];
const OPENAI_STREAMS: [&str; 1] = ["openai_stream_tool_calls.sse"];
const ANTHROPIC_STREAMS: [&str; 2] = ["anthropic_stream_tool_use.sse", "anthropic_stream_overloaded.sse"];

fn runner() -> TestRunner {
    let cases = std::env::var("FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() })
}

/// One edit of a byte string.
#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Duplicate(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    // Bytes that matter to JSON and SSE come up often.
    let interesting = prop_oneof![
        any::<u8>(),
        Just(b'"'),
        Just(b'\\'),
        Just(b'{'),
        Just(b'['),
        Just(b'\n'),
        Just(b'\r'),
        Just(b':'),
        Just(0xff)
    ];
    prop_oneof![
        (any::<usize>(), interesting.clone()).prop_map(|(at, b)| Edit::Set(at, b)),
        (any::<usize>(), prop::collection::vec(interesting, 1..16)).prop_map(|(at, b)| Edit::Insert(at, b)),
        (any::<usize>(), 1usize..64).prop_map(|(at, n)| Edit::Delete(at, n)),
        (any::<usize>(), 1usize..256).prop_map(|(at, n)| Edit::Duplicate(at, n)),
    ]
}

fn mutate(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let len = bytes.len().max(1);
        match e {
            Edit::Set(at, b) if !bytes.is_empty() => bytes[at % len] = *b,
            Edit::Set(..) => {}
            Edit::Insert(at, b) => {
                let at = at % (bytes.len() + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            Edit::Delete(at, n) => {
                let at = at % len;
                let end = (at + n).min(bytes.len());
                bytes.drain(at.min(end)..end);
            }
            Edit::Duplicate(at, n) => {
                let at = at % len;
                let end = (at + n).min(bytes.len());
                let copy = bytes.get(at..end).map(<[u8]>::to_vec).unwrap_or_default();
                bytes.splice(end..end, copy);
            }
        }
    }
    bytes
}

/// Arbitrary bytes, or a fixture with a few edits.
fn input(fixtures: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    let mutated = (0..fixtures.len(), prop::collection::vec(edit(), 0..8))
        .prop_map(move |(i, edits)| mutate(fixture(fixtures[i]), &edits));
    prop_oneof![1 => prop::collection::vec(any::<u8>(), 0..2048), 4 => mutated]
}

/// `bytes` cut at the given points (each taken modulo the length).
fn chunks(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    points.dedup();
    points.windows(2).map(|w| bytes[w[0]..w[1]].to_vec()).collect()
}

#[test]
fn the_request_peek_never_panics_and_what_it_accepts_can_be_rewritten() {
    runner()
        .run(&input(&REQUESTS), |body| {
            if let Ok(peek) = RequestPeek::parse(&body) {
                let body = bytes::Bytes::from(body);
                // Accepted, so never forwarded with the client's model: it can be rewritten.
                let rewritten = request::with_model(&body, &peek.model, "another-model");
                prop_assert!(rewritten.is_ok(), "{:?}", rewritten);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn requests_of_either_api_translate_without_panicking() {
    runner()
        .run(&input(&REQUESTS), |body| {
            if let Ok(request) = serde_json::from_slice::<MessagesRequest>(&body) {
                let chat = translate::messages_to_chat(&request);
                prop_assert!(serde_json::to_vec(&chat.value).is_ok());
            }
            if let Ok(request) = serde_json::from_slice::<ChatRequest>(&body) {
                let messages = translate::chat_to_messages(&request);
                prop_assert!(serde_json::to_vec(&messages.value).is_ok());
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn the_sse_reader_and_the_end_detector_do_not_care_how_a_stream_is_cut() {
    let all: &'static [&'static str] = &["openai_stream_tool_calls.sse", "anthropic_stream_tool_use.sse"];
    runner()
        .run(&(input(all), prop::collection::vec(any::<usize>(), 0..24)), |(stream, cuts)| {
            let mut whole = EventReader::default();
            let expected = whole.feed(&stream);
            let mut cut = EventReader::default();
            let got: Vec<_> = chunks(&stream, &cuts).iter().flat_map(|c| cut.feed(c)).collect();
            prop_assert_eq!(&got, &expected);
            for api in [Api::OpenAi, Api::Anthropic] {
                let mut whole = DoneDetector::new(api);
                whole.feed(&stream);
                let mut cut = DoneDetector::new(api);
                for c in chunks(&stream, &cuts) {
                    cut.feed(&c);
                }
                prop_assert_eq!(
                    (whole.is_done(), whole.errored(), whole.finished()),
                    (cut.is_done(), cut.errored(), cut.finished())
                );
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn an_endless_event_is_bounded() {
    let mut reader = EventReader::default();
    let chunk = vec![b'a'; 1 << 20];
    for _ in 0..(2 * MAX_EVENT_BYTES / chunk.len()) {
        assert!(reader.feed(&chunk).is_empty());
    }
    assert!(reader.dropped() >= 1);
}

fn translate_all(mut t: StreamTranslator, chunks: &[Vec<u8>]) -> String {
    let mut out: String = chunks.iter().map(|c| t.feed(c)).collect();
    out.extend(t.end());
    out
}

#[test]
fn stream_translators_both_ways_survive_hostile_streams_however_they_are_cut() {
    let anthropic = (input(&ANTHROPIC_STREAMS), prop::collection::vec(any::<usize>(), 0..16));
    runner()
        .run(&anthropic, |(stream, cuts)| {
            let whole =
                translate_all(StreamTranslator::ToOpenAi(AnthropicToChat::new(1, true)), std::slice::from_ref(&stream));
            let cut = translate_all(StreamTranslator::ToOpenAi(AnthropicToChat::new(1, true)), &chunks(&stream, &cuts));
            prop_assert_eq!(whole, cut);
            Ok(())
        })
        .unwrap();
    let openai = (input(&OPENAI_STREAMS), prop::collection::vec(any::<usize>(), 0..16));
    runner()
        .run(&openai, |(stream, cuts)| {
            let whole =
                translate_all(StreamTranslator::ToAnthropic(ChatToAnthropic::new()), std::slice::from_ref(&stream));
            let cut = translate_all(StreamTranslator::ToAnthropic(ChatToAnthropic::new()), &chunks(&stream, &cuts));
            prop_assert_eq!(whole, cut);
            Ok(())
        })
        .unwrap();
}

#[test]
fn error_bodies_of_any_shape_are_classified_without_panicking() {
    let body = input(&ANSWERS);
    runner()
        .run(&(any::<u16>(), body), |(status, body)| {
            let _ = classify_status(status, &body);
            Ok(())
        })
        .unwrap();
}

#[test]
fn retry_after_of_any_text_is_a_wait_of_at_most_an_hour() {
    let text = prop::option::of(prop::collection::vec(any::<char>(), 0..40).prop_map(String::from_iter));
    let numbers = prop::option::of(prop_oneof![
        any::<f64>().prop_map(|f| f.to_string()),
        any::<i64>().prop_map(|i| i.to_string())
    ]);
    runner()
        .run(&(text, numbers, any::<bool>()), |(a, b, swap)| {
            let (ms, secs) = if swap { (b, a) } else { (a, b) };
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
            if let Some(wait) = parse_retry_after(ms.as_deref(), secs.as_deref(), now) {
                prop_assert!(wait <= Duration::from_secs(3600));
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn cached_answers_of_any_shape_replay_without_panicking() {
    runner()
        .run(&input(&ANSWERS), |body| {
            let _ = replay::completion_as_sse(&body);
            let _ = replay::message_as_sse(&body);
            Ok(())
        })
        .unwrap();
}
