//! Streams, in one run:
//! 1. the relay's per-event scanning work — the relay before the streams
//!    work ran `DoneDetector` over every byte; the relay now cuts whole events
//!    (`EventCutter`, so an error event can be held back) and keeps what the
//!    client received (to recover a break) — both fed the same chunks, in
//!    alternating rounds, in process;
//! 2. a 1000-event stream read end to end, direct from the mock and through
//!    the gateway (sequential, interleaved): the gateway's added time per event;
//! 3. recovery: a primary that closes its stream after 20 words and a backup
//!    whose first token takes 20 ms; the gap the client sees between the last
//!    word of the primary and the first of the backup, against the backup's
//!    own time to first token asked directly.

use std::time::{Duration, Instant};

use bytes::Bytes;
use switchyard_testkit::{ConfigBuilder, MockProvider, Reply, StreamEnd, TestGateway, post_chat_stream};
use switchyard_wire::Api;
use switchyard_wire::sse::DoneDetector;
use switchyard_wire::stream::cutter::EventCutter;

pub struct StreamFigures {
    /// Per event, ns: the old relay's scan, the new relay's.
    pub scan_old_ns: f64,
    pub scan_new_ns: f64,
    /// Per event of a 1000-event stream, µs: direct, through the gateway.
    pub event_direct_us: f64,
    pub event_gateway_us: f64,
    /// Recovery: the client's gap at the break, p50 and p99.
    pub recovery_gap: (Duration, Duration),
    /// The backup's own time to first token, asked directly, p50 and p99.
    pub backup_ttft: (Duration, Duration),
}

fn chunk(i: usize) -> Bytes {
    Bytes::from(format!(
        "data: {{\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"word{i:04} \"}},\"finish_reason\":null}}]}}\n\n"
    ))
}

/// ns per event of each scan, the best of alternating rounds.
fn scan_cost(events: usize) -> (f64, f64) {
    let frames: Vec<Bytes> = (0..1000).map(chunk).collect();
    let (mut old, mut new) = (f64::MAX, f64::MAX);
    for _ in 0..7 {
        let started = Instant::now();
        let mut seen = 0u64;
        for n in 0..events / frames.len() {
            let mut done = DoneDetector::new(Api::OpenAi);
            for frame in &frames {
                done.feed(frame);
            }
            seen += u64::from(done.is_done()) + n as u64;
        }
        std::hint::black_box(seen);
        old = old.min(started.elapsed().as_secs_f64() * 1e9 / events as f64);
        let started = Instant::now();
        for _ in 0..events / frames.len() {
            let mut cutter = EventCutter::new(Api::OpenAi);
            let mut transcript = Vec::new();
            for frame in &frames {
                let cut = cutter.feed(frame.clone());
                transcript.extend_from_slice(&cut.forward);
            }
            std::hint::black_box(&transcript);
        }
        new = new.min(started.elapsed().as_secs_f64() * 1e9 / events as f64);
    }
    (old, new)
}

fn words(n: usize) -> String {
    (1..=n).map(|i| format!("word{i:04}")).collect::<Vec<_>>().join(" ")
}

/// Reads a whole stream; the time it took.
async fn read_stream(url: &str) -> Duration {
    let started = Instant::now();
    let mut s = post_chat_stream(url, "m").await;
    while s.next_chunk(Duration::from_secs(30)).await.is_some() {}
    started.elapsed()
}

/// The time from sending to the first chunk that carries `word`.
async fn until_word(s: &mut switchyard_testkit::StreamingResponse, word: &str) -> Instant {
    while let Some(chunk) = s.next_chunk(Duration::from_secs(30)).await {
        if String::from_utf8_lossy(&chunk).contains(word) {
            return Instant::now();
        }
    }
    panic!("the stream ended before {word}");
}

pub fn measure(rounds: usize) -> StreamFigures {
    let (scan_old_ns, scan_new_ns) = scan_cost(200_000 * rounds.max(1));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let long =
            MockProvider::start_cycling("long", vec![Reply::tell(&words(1000), Duration::ZERO, None, StreamEnd::Done)])
                .await;
        let config =
            ConfigBuilder::new().access_log("off").provider("long", &long.url()).route("m", None, 30_000, &["long"]);
        let gw = TestGateway::start(&config).await;
        let (mut direct, mut through) = (Vec::new(), Vec::new());
        for _ in 0..(4 * rounds).max(4) {
            direct.push(read_stream(&long.url()).await);
            through.push(read_stream(&gw.url()).await);
        }
        direct.sort();
        through.sort();
        let per_event = |d: &[Duration]| crate::pct(d, 0.5).as_secs_f64() * 1e6 / 1000.0;

        let text = words(40);
        let primary = MockProvider::start_cycling(
            "primary",
            vec![Reply::tell(&text, Duration::ZERO, Some(20), StreamEnd::Truncated)],
        )
        .await;
        let told = Reply::tell(&text, Duration::ZERO, None, StreamEnd::Done);
        let backup =
            MockProvider::start_cycling("backup", vec![Reply::Delay(Duration::from_millis(20), Box::new(told))]).await;
        // The primary breaks every stream: its breaker must not open, or the
        // later rounds would go to the backup from the start.
        let config = ConfigBuilder::new()
            .access_log("off")
            .top("[breaker]\nfailures = 1000000\nmin_requests = 1000000")
            .provider("primary", &primary.url())
            .provider("backup", &backup.url())
            .route("m", None, 30_000, &["primary", "backup"]);
        let recovering = TestGateway::start(&config).await;
        let (mut gaps, mut ttfts) = (Vec::new(), Vec::new());
        for _ in 0..(10 * rounds).max(10) {
            let sent = Instant::now();
            let mut d = post_chat_stream(&backup.url(), "m").await;
            let ttft = until_word(&mut d, "word0001").await - sent;
            while d.next_chunk(Duration::from_secs(30)).await.is_some() {}
            let mut s = post_chat_stream(&recovering.url(), "m").await;
            assert_eq!(s.header("x-switchyard-provider"), "primary", "the primary's breaker opened");
            let last_of_primary = until_word(&mut s, "word0020").await;
            let gap = until_word(&mut s, "word0021").await - last_of_primary;
            while s.next_chunk(Duration::from_secs(30)).await.is_some() {}
            gaps.push(gap);
            ttfts.push(ttft);
        }
        for v in [&mut gaps, &mut ttfts] {
            v.sort();
        }
        StreamFigures {
            scan_old_ns,
            scan_new_ns,
            event_direct_us: per_event(&direct),
            event_gateway_us: per_event(&through),
            recovery_gap: (crate::pct(&gaps, 0.5), crate::pct(&gaps, 0.99)),
            backup_ttft: (crate::pct(&ttfts, 0.5), crate::pct(&ttfts, 0.99)),
        }
    })
}
