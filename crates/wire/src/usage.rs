//! Token counts read out of an answer's bytes without parsing it: the
//! provider's usage block of a whole answer, or the usage events of a stream
//! (OpenAI's final usage chunk; Anthropic's `message_start` and
//! `message_delta`), in the client's API. One `memmem` search per key.

use std::sync::LazyLock;

use memchr::memmem::Finder;

use crate::Api;

/// Input and output tokens, as the provider counted them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens (`prompt_tokens`, `input_tokens`).
    pub input: Option<u64>,
    /// Completion tokens (`completion_tokens`, `output_tokens`).
    pub output: Option<u64>,
}

/// A searcher for `"key":`, built once. (Forward: memchr's forward search
/// is vectorised, its reverse one is not; the last match is taken.)
struct Key(LazyLock<Finder<'static>>);

static PROMPT_TOKENS: Key = Key(LazyLock::new(|| Finder::new(b"\"prompt_tokens\":")));
static COMPLETION_TOKENS: Key = Key(LazyLock::new(|| Finder::new(b"\"completion_tokens\":")));
static INPUT_TOKENS: Key = Key(LazyLock::new(|| Finder::new(b"\"input_tokens\":")));
static OUTPUT_TOKENS: Key = Key(LazyLock::new(|| Finder::new(b"\"output_tokens\":")));

/// The number after the last `"key":` in `bytes`.
fn last_number(bytes: &[u8], key: &Key) -> Option<u64> {
    let finder = &*key.0;
    let at = finder.find_iter(bytes).last()? + finder.needle().len();
    let rest = &bytes[at..];
    let start = rest.iter().position(|b| !b.is_ascii_whitespace())?;
    let digits = rest[start..].iter().take_while(|b| b.is_ascii_digit()).count();
    // (At most 19 digits fit a u64 without overflow; longer is not a count.)
    let digits = &rest[start..start + digits];
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    Some(digits.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// The usage an answer (whole or streamed) of `api` carries.
pub fn scan(api: Api, bytes: &[u8]) -> Usage {
    let (input, output) = match api {
        Api::OpenAi => (&PROMPT_TOKENS, &COMPLETION_TOKENS),
        Api::Anthropic => (&INPUT_TOKENS, &OUTPUT_TOKENS),
    };
    Usage { input: last_number(bytes, input), output: last_number(bytes, output) }
}

/// How far from each end of a stream [`scan_stream`] looks.
const STREAM_ENDS: usize = 16 << 10;

/// The usage a stream of `api` carries, looking only near its ends: the
/// usage events come first (Anthropic's `message_start`) and last (OpenAI's
/// usage chunk, Anthropic's `message_delta`), so a long stream's middle is
/// never searched.
pub fn scan_stream(api: Api, bytes: &[u8]) -> Usage {
    if bytes.len() <= 2 * STREAM_ENDS {
        return scan(api, bytes);
    }
    let (head, tail) = (&bytes[..STREAM_ENDS], &bytes[bytes.len() - STREAM_ENDS..]);
    let (last, first) = (scan(api, tail), scan(api, head));
    Usage { input: last.input.or(first.input), output: last.output.or(first.output) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_answers_and_streams_of_either_api() {
        let chat = br#"{"choices":[],"usage":{"prompt_tokens": 12,"completion_tokens":7,"total_tokens":19}}"#;
        assert_eq!(scan(Api::OpenAi, chat), Usage { input: Some(12), output: Some(7) });
        let stream = concat!(
            "event: message_start\ndata: {\"message\":{\"usage\":{\"input_tokens\":30,\"output_tokens\":1}}}\n\n",
            "event: message_delta\ndata: {\"usage\":{\"output_tokens\":42}}\n\n"
        );
        assert_eq!(scan(Api::Anthropic, stream.as_bytes()), Usage { input: Some(30), output: Some(42) });
        assert_eq!(scan(Api::OpenAi, b"data: [DONE]\n\n"), Usage::default());
    }

    #[test]
    fn a_long_stream_is_read_at_its_ends() {
        let start = "data: {\"message\":{\"usage\":{\"input_tokens\":30,\"output_tokens\":1}}}\n\n";
        let middle = "data: {\"delta\":{\"text\":\"word \"}}\n\n".repeat(5_000);
        let end = "data: {\"usage\":{\"output_tokens\":4200}}\n\n";
        let stream = format!("{start}{middle}{end}");
        assert_eq!(scan_stream(Api::Anthropic, stream.as_bytes()), Usage { input: Some(30), output: Some(4200) });
        assert_eq!(scan_stream(Api::Anthropic, end.as_bytes()), Usage { input: None, output: Some(4200) });
    }
}
