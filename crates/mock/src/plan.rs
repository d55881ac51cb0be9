//! A provider's behaviour over time, as a scenario file writes it: how fast
//! it answers when healthy, and its faults — each a kind of failure, a
//! window of time and the share of requests it hits. The same plan drives
//! `switchyard mock --scenario` (real sockets, real time) and `switchyard
//! simulate` (in-memory pipes, virtual time).
//!
//! Which requests a fault hits is decided by a hash of the seed, the
//! provider, the request body and how many times this provider has seen
//! that body: the same scenario and seed hit the same requests whatever
//! order concurrent requests arrive in.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;

use crate::dialect::Dialect;
use crate::{Reply, StreamEnd};

/// One provider of a scenario (`[[providers]]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderPlan {
    /// The provider's name, as the gateway config names it.
    pub name: String,
    /// `"openai"` (default) or `"anthropic"`: the wire it speaks.
    #[serde(default = "openai")]
    pub api: String,
    /// Time to a whole (non-streamed) answer when healthy. Default 800 ms.
    #[serde(default = "default_latency")]
    pub latency_ms: u64,
    /// Time to a stream's first token when healthy. Default 300 ms.
    #[serde(default = "default_first_token")]
    pub first_token_ms: u64,
    /// Words a stream sends per second. Default 50.
    #[serde(default = "default_words_per_second")]
    pub words_per_second: f64,
    /// Words in an answer. Default 40.
    #[serde(default = "default_answer_words")]
    pub answer_words: usize,
    /// A stream sends the words due every this many ms in one event (real
    /// providers batch tokens too). Default 100; `1000 / words_per_second`
    /// sends a word per event, at a higher cost in simulation time.
    #[serde(default = "default_event_ms")]
    pub event_ms: u64,
    /// US dollars per million prompt tokens (for the report's cost). Default 0.
    #[serde(default)]
    pub input_price: f64,
    /// US dollars per million answer tokens. Default 0.
    #[serde(default)]
    pub output_price: f64,
    /// `switchyard mock`: the loopback port to serve on (0, the default: any free one).
    #[serde(default)]
    pub port: u16,
    /// Its faults, in order: the first active one that hits a request decides it.
    #[serde(default, rename = "fault")]
    pub faults: Vec<Fault>,
}

fn openai() -> String {
    "openai".into()
}
fn default_latency() -> u64 {
    800
}
fn default_first_token() -> u64 {
    300
}
fn default_words_per_second() -> f64 {
    50.0
}
fn default_answer_words() -> usize {
    40
}
fn default_event_ms() -> u64 {
    100
}
fn one() -> f64 {
    1.0
}

/// A failure during a window of time (`[[providers.fault]]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// Start, from the scenario's start (`"5m"`, `"90s"`, `"1h30m"`).
    #[serde(deserialize_with = "span")]
    pub from: Duration,
    /// End (exclusive).
    #[serde(deserialize_with = "span")]
    pub to: Duration,
    /// What goes wrong.
    pub kind: FaultKind,
    /// The share of requests it hits, 0..=1. Default 1.
    #[serde(default = "one")]
    pub share: f64,
    /// `status`: the HTTP status. Default 503.
    #[serde(default)]
    pub status: Option<u16>,
    /// `status`, `rate_limited`: the `Retry-After` seconds sent (rate_limited: default 30).
    #[serde(default)]
    pub retry_after_s: Option<u32>,
    /// `hang`: time until a 504 (none: never answers); `slow`: the added
    /// latency at `from`; `slow_first_token`: the added time to the first token.
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// `slow`: the added latency reached at `to`, ramped linearly from `delay_ms`.
    #[serde(default)]
    pub delay_to_ms: Option<u64>,
    /// `stream_cut`, `stall`: words sent first. Default half the answer.
    #[serde(default)]
    pub after_words: Option<usize>,
}

/// The kinds of fault a provider can have.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// An error status (`status`, default 503), with `Retry-After` when `retry_after_s` is set.
    Status,
    /// 429 with `Retry-After: retry_after_s`.
    RateLimited,
    /// The request is accepted and not answered (for `delay_ms`, then a 504).
    Hang,
    /// The connection is refused (closed before an answer).
    Refuse,
    /// Answers, `delay_ms` (ramping to `delay_to_ms`) slower.
    Slow,
    /// A stream is cut after `after_words` words (non-streamed answers are whole).
    StreamCut,
    /// The first token of a stream (the whole answer otherwise) comes `delay_ms` later.
    SlowFirstToken,
    /// A stream stops sending after `after_words` words, connection open; a
    /// non-streamed request hangs.
    Stall,
}

impl FaultKind {
    /// The name a scenario file uses.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Status => "status",
            FaultKind::RateLimited => "rate_limited",
            FaultKind::Hang => "hang",
            FaultKind::Refuse => "refuse",
            FaultKind::Slow => "slow",
            FaultKind::StreamCut => "stream_cut",
            FaultKind::SlowFirstToken => "slow_first_token",
            FaultKind::Stall => "stall",
        }
    }
}

/// Parses `"500ms"`, `"47s"`, `"5m"`, `"2h"`, `"1h30m"`.
pub fn parse_span(text: &str) -> Result<Duration, String> {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err("an empty duration".into());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().map_err(|_| format!("{text:?} is not a duration like \"90s\""))?;
        rest = &rest[digits..];
        let unit = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let seconds = match &rest[..unit] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            other => return Err(format!("{text:?}: unknown unit {other:?} (ms, s, m, h)")),
        };
        total += Duration::from_secs_f64(number * seconds);
        rest = &rest[unit..];
    }
    Ok(total)
}

fn span<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_span(&text).map_err(serde::de::Error::custom)
}

impl ProviderPlan {
    /// What is wrong with the plan, if anything.
    pub fn check(&self) -> Result<(), String> {
        let name = &self.name;
        if !matches!(self.api.as_str(), "openai" | "anthropic") {
            return Err(format!("provider {name:?}: api must be \"openai\" or \"anthropic\", not {:?}", self.api));
        }
        if self.words_per_second.is_nan()
            || self.words_per_second <= 0.0
            || self.answer_words == 0
            || self.event_ms == 0
        {
            return Err(format!("provider {name:?}: words_per_second, answer_words and event_ms must be above 0"));
        }
        for f in &self.faults {
            if f.to <= f.from {
                return Err(format!("provider {name:?}: a {} fault ends before it starts", f.kind.name()));
            }
            if !(0.0..=1.0).contains(&f.share) {
                return Err(format!("provider {name:?}: share must be within 0..=1, not {}", f.share));
            }
        }
        Ok(())
    }

    pub(crate) fn dialect(&self) -> Dialect {
        if self.api == "anthropic" { Dialect::Anthropic } else { Dialect::OpenAi }
    }

    /// The fault that hits a request at `at`, if any; `draw(i)` is the
    /// request's draw for fault `i`.
    pub fn fault_at(&self, at: Duration, draw: impl Fn(usize) -> f64) -> Option<&Fault> {
        self.faults.iter().enumerate().find(|(i, f)| f.from <= at && at < f.to && draw(*i) < f.share).map(|(_, f)| f)
    }

    /// Whether every request at `at` is refused (a `refuse` fault of share 1).
    pub fn refuses_all(&self, at: Duration) -> bool {
        self.faults.iter().any(|f| f.kind == FaultKind::Refuse && f.share >= 1.0 && f.from <= at && at < f.to)
    }

    fn healthy(&self, streaming: bool, extra: Duration, extra_first: Duration, end: StreamEnd, words: usize) -> Reply {
        let text = self.answer_text();
        if streaming {
            let first = Duration::from_millis(self.first_token_ms) + extra + extra_first;
            let said: Vec<&str> = text.split_inclusive(' ').collect();
            let said = if end == StreamEnd::Done { &said[..] } else { &said[..words.min(said.len())] };
            let per_event = ((self.words_per_second * self.event_ms as f64 / 1000.0).round() as usize).max(1);
            let gap = Duration::from_secs_f64(per_event as f64 / self.words_per_second);
            let pieces = said.chunks(per_event).map(|c| c.concat()).collect();
            Reply::Delay(first, Box::new(Reply::Stream { pieces, gap, end }))
        } else {
            let whole = Duration::from_millis(self.latency_ms) + extra + extra_first;
            Reply::Delay(whole, Box::new(Reply::Tell { text, gap: Duration::ZERO, pieces: None, end: StreamEnd::Done }))
        }
    }

    /// The healthy answer's text: `answer_words` words.
    pub fn answer_text(&self) -> String {
        let mut text = format!("Answer from {}:", self.name);
        for i in 1..self.answer_words {
            text.push_str(if i % 7 == 0 { " and" } else { " word" });
        }
        text
    }

    /// The reply to a request at `at` that `fault` hits (`None`: healthy).
    pub(crate) fn reply(&self, at: Duration, fault: Option<&Fault>, streaming: bool) -> Reply {
        let half = self.answer_words / 2;
        let dialect = self.dialect();
        let Some(f) = fault else {
            return self.healthy(streaming, Duration::ZERO, Duration::ZERO, StreamEnd::Done, 0);
        };
        let delay = Duration::from_millis(f.delay_ms.unwrap_or(0));
        match f.kind {
            FaultKind::Status => {
                let status = f.status.unwrap_or(503);
                let (kind, message) = match (dialect, status) {
                    (Dialect::Anthropic, 529) => ("overloaded_error", "Overloaded"),
                    (_, 429) => ("rate_limit_error", "Rate limit reached"),
                    _ => ("api_error", "The server had an error while processing your request"),
                };
                let headers = f.retry_after_s.map(|s| ("retry-after".to_owned(), s.to_string())).into_iter().collect();
                Reply::Status { status, headers, body: dialect.error_body(kind, message) }
            }
            FaultKind::RateLimited => Reply::Status {
                status: 429,
                headers: vec![("retry-after".into(), f.retry_after_s.unwrap_or(30).to_string())],
                body: dialect.error_body("rate_limit_error", "Rate limit reached for requests"),
            },
            FaultKind::Hang if f.delay_ms.is_some() => Reply::Delay(
                delay,
                Box::new(Reply::Status {
                    status: 504,
                    headers: Vec::new(),
                    body: dialect.error_body("api_error", "upstream timed out"),
                }),
            ),
            FaultKind::Refuse => Reply::Reset,
            FaultKind::Hang => Reply::Hang,
            FaultKind::Stall if !streaming => Reply::Hang,
            FaultKind::Slow => {
                let ramp = match f.delay_to_ms {
                    Some(to) => {
                        let done = (at - f.from).as_secs_f64() / (f.to - f.from).as_secs_f64();
                        let from = f.delay_ms.unwrap_or(0) as f64;
                        Duration::from_millis((from + (to as f64 - from) * done) as u64)
                    }
                    None => delay,
                };
                self.healthy(streaming, ramp, Duration::ZERO, StreamEnd::Done, 0)
            }
            FaultKind::SlowFirstToken => self.healthy(streaming, Duration::ZERO, delay, StreamEnd::Done, 0),
            FaultKind::StreamCut if streaming => {
                self.healthy(true, Duration::ZERO, Duration::ZERO, StreamEnd::Cut, f.after_words.unwrap_or(half))
            }
            FaultKind::StreamCut => self.healthy(false, Duration::ZERO, Duration::ZERO, StreamEnd::Done, 0),
            FaultKind::Stall => {
                self.healthy(true, Duration::ZERO, Duration::ZERO, StreamEnd::Stall, f.after_words.unwrap_or(half))
            }
        }
    }
}

/// One request a planned provider received.
#[derive(Clone, Copy, Debug)]
pub struct Received {
    /// When, from the provider's start.
    pub at: Duration,
    /// The fault that hit it (`None`: answered healthy).
    pub fault: Option<FaultKind>,
    /// Prompt tokens (about a quarter of the body's bytes).
    pub prompt_tokens: u32,
    /// Answer tokens it was (or began to be) sent.
    pub answer_tokens: u32,
}

/// A plan being played: the seed, the start, what was received.
pub(crate) struct Playing {
    pub plan: ProviderPlan,
    seed: u64,
    pub born: tokio::time::Instant,
    /// How many times each body was seen (its retries draw anew).
    seen: Mutex<HashMap<u64, u32>>,
    pub received: Mutex<Vec<Received>>,
}

/// SplitMix64: a well-mixed 64-bit hash step.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn hash_bytes(seed: u64, bytes: &[u8]) -> u64 {
    bytes.chunks(8).fold(mix(seed), |h, c| {
        let mut word = [0u8; 8];
        word[..c.len()].copy_from_slice(c);
        mix(h ^ u64::from_le_bytes(word))
    })
}

impl Playing {
    pub fn new(plan: ProviderPlan, seed: u64) -> Self {
        let seed = hash_bytes(seed, plan.name.as_bytes());
        Playing { plan, seed, born: tokio::time::Instant::now(), seen: Mutex::default(), received: Mutex::default() }
    }

    /// The reply to `body` now, noted in `received`.
    pub fn choose(&self, body: &[u8], streaming: bool) -> Reply {
        let at = self.born.elapsed();
        let key = hash_bytes(self.seed, body);
        let nth = {
            let mut seen = self.seen.lock().unwrap();
            let n = seen.entry(key).or_insert(0);
            *n += 1;
            *n
        };
        let draw = |i: usize| {
            let h = mix(key ^ mix(u64::from(nth) << 16 | i as u64));
            (h >> 11) as f64 / (1u64 << 53) as f64
        };
        let fault = self.plan.fault_at(at, draw);
        let words = self.plan.answer_words as u32;
        let answer_tokens = match fault.map(|f| f.kind) {
            None | Some(FaultKind::Slow | FaultKind::SlowFirstToken) => words,
            Some(FaultKind::StreamCut) if !streaming => words,
            Some(FaultKind::StreamCut | FaultKind::Stall) if streaming => {
                fault.and_then(|f| f.after_words).map_or(words / 2, |w| w as u32)
            }
            Some(_) => 0,
        };
        let fault_kind = fault.map(|f| f.kind).filter(|k| {
            // A fault that left this request whole (a cut that only cuts streams) did not hit it.
            *k != FaultKind::StreamCut || streaming
        });
        self.received.lock().unwrap().push(Received {
            at,
            fault: fault_kind,
            prompt_tokens: (body.len() / 4) as u32,
            answer_tokens,
        });
        self.plan.reply(at, fault, streaming)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_as_people_write_them() {
        assert_eq!(parse_span("47s"), Ok(Duration::from_secs(47)));
        assert_eq!(parse_span("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_span("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_span("5 minutes").unwrap_err().contains("unknown unit"));
        assert!(parse_span("").is_err());
    }
}
