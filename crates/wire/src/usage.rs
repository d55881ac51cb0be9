//! Token counts read out of an answer's bytes without parsing it: the
//! provider's usage block of a whole answer, or the usage events of a stream
//! (OpenAI's final usage chunk; Anthropic's `message_start` and
//! `message_delta`), in the client's API. One `memmem` search per key.

use crate::Api;

/// Input and output tokens, as the provider counted them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens (`prompt_tokens`, `input_tokens`).
    pub input: Option<u64>,
    /// Completion tokens (`completion_tokens`, `output_tokens`).
    pub output: Option<u64>,
}

/// The number after the last `"key":` in `bytes`.
fn last_number(bytes: &[u8], key: &str) -> Option<u64> {
    let needle = format!("\"{key}\":");
    let at = memchr::memmem::rfind(bytes, needle.as_bytes())? + needle.len();
    let rest = &bytes[at..];
    let start = rest.iter().position(|b| !b.is_ascii_whitespace())?;
    let digits = rest[start..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[start..start + digits]).ok()?.parse().ok()
}

/// The usage an answer (whole or streamed) of `api` carries.
pub fn scan(api: Api, bytes: &[u8]) -> Usage {
    let (input, output) = match api {
        Api::OpenAi => ("prompt_tokens", "completion_tokens"),
        Api::Anthropic => ("input_tokens", "output_tokens"),
    };
    Usage { input: last_number(bytes, input), output: last_number(bytes, output) }
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
}
