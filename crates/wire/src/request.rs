//! Reading the few fields of a chat request that routing needs.

use bytes::Bytes;
use serde::Deserialize;

/// Why a client request body cannot be served.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// The body is not a JSON object.
    #[error("the request body is not valid JSON: {0}")]
    NotJson(String),
    /// `model` is absent or not a string.
    #[error("you must provide a model parameter")]
    MissingModel,
    /// `stream` is present but not a boolean.
    #[error("'stream' must be a boolean")]
    BadStream,
    /// The body is not UTF-8, as JSON must be.
    #[error("the request body is not valid UTF-8 (byte {0})")]
    NotUtf8(usize),
    /// The body nests arrays and objects deeper than any request needs.
    #[error("the request body nests JSON deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// Deepest nesting of arrays and objects a request body may have: what
/// serde_json parses (its own limit), so a body the gateway accepted can
/// always be parsed again to rewrite or translate it.
pub const MAX_DEPTH: usize = 120;

/// Whether `body`'s arrays and objects nest at most `max` deep. A linear
/// scan that skips strings; it does not validate the JSON.
fn nesting_within(body: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

/// What the gateway learns from a chat request without re-serialising it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPeek {
    /// The model the client asked for.
    pub model: String,
    /// The client asked for an SSE stream.
    pub stream: bool,
    /// Rough prompt size: body bytes / 4.
    pub estimated_input_tokens: u32,
}

#[derive(Deserialize)]
struct Peek {
    model: Option<serde_json::Value>,
    stream: Option<serde_json::Value>,
}

impl RequestPeek {
    /// Reads `model` and `stream` from a chat request body (either API),
    /// after checking that the whole body is UTF-8 and not nested past
    /// [`MAX_DEPTH`] (the parts of it this does not read included).
    pub fn parse(body: &[u8]) -> Result<RequestPeek, WireError> {
        if let Err(e) = std::str::from_utf8(body) {
            return Err(WireError::NotUtf8(e.valid_up_to()));
        }
        if !nesting_within(body, MAX_DEPTH) {
            return Err(WireError::TooDeep);
        }
        let peek: Peek = serde_json::from_slice(body).map_err(|e| WireError::NotJson(e.to_string()))?;
        let model = match peek.model {
            Some(serde_json::Value::String(m)) if !m.is_empty() => m,
            _ => return Err(WireError::MissingModel),
        };
        let stream = match peek.stream {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Bool(b)) => b,
            Some(_) => return Err(WireError::BadStream),
        };
        let estimated_input_tokens = u32::try_from(body.len() / 4).unwrap_or(u32::MAX);
        Ok(RequestPeek { model, stream, estimated_input_tokens })
    }
}

/// The body to send to a target whose model name is `model`: the client's
/// bytes untouched when the names match, else the body with `model`
/// replaced. A body that cannot be rewritten is never sent as it is (the
/// provider would get the client's model name): that is an error.
pub fn with_model(body: &Bytes, client_model: &str, model: &str) -> Result<Bytes, String> {
    if client_model == model {
        return Ok(body.clone());
    }
    let mut map = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body)
        .map_err(|e| format!("the request body could not be rewritten for model {model}: {e}"))?;
    map.insert("model".into(), serde_json::Value::String(model.to_owned()));
    serde_json::to_vec(&map).map(Bytes::from).map_err(|e| format!("the request body could not be rewritten: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peeks_model_and_stream() {
        let p = RequestPeek::parse(br#"{"model":"m","stream":true,"messages":[]}"#).unwrap();
        assert_eq!((p.model.as_str(), p.stream), ("m", true));
    }

    #[test]
    fn refuses_what_it_cannot_route() {
        assert!(matches!(RequestPeek::parse(b"nope"), Err(WireError::NotJson(_))));
        assert_eq!(RequestPeek::parse(br#"{"messages":[]}"#), Err(WireError::MissingModel));
        assert_eq!(RequestPeek::parse(br#"{"model":7}"#), Err(WireError::MissingModel));
        assert_eq!(RequestPeek::parse(br#"{"model":"m","stream":"yes"}"#), Err(WireError::BadStream));
        assert!(matches!(RequestPeek::parse(b"[1]"), Err(WireError::NotJson(_))));
    }

    fn nested(depth: usize) -> String {
        format!(r#"{{"model":"m","messages":{}{},"x":"[[[{{"}}"#, "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn a_body_nested_past_the_limit_is_refused_wherever_the_nesting_is() {
        assert!(RequestPeek::parse(nested(MAX_DEPTH - 1).as_bytes()).is_ok(), "brackets in strings do not count");
        assert_eq!(RequestPeek::parse(nested(100_000).as_bytes()), Err(WireError::TooDeep));
        let after = format!(r#"{{"messages":{}{},"model":"m"}}"#, "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(RequestPeek::parse(after.as_bytes()), Err(WireError::TooDeep));
        // What the peek accepts can be rewritten.
        let ok = Bytes::from(nested(MAX_DEPTH - 1));
        assert!(with_model(&ok, "m", "n").is_ok());
    }

    #[test]
    fn invalid_utf8_anywhere_is_refused() {
        let bad = b"{\"model\":\"m\",\"x\":\"\xff\xfe\"}";
        assert_eq!(RequestPeek::parse(bad), Err(WireError::NotUtf8(18)));
    }

    #[test]
    fn a_body_that_cannot_be_rewritten_is_an_error_not_sent_as_it_is() {
        let body = Bytes::from(format!(r#"{{"model":"a","x":{}{}}}"#, "[".repeat(200), "]".repeat(200)));
        assert!(with_model(&body, "a", "b").is_err());
    }

    #[test]
    fn rewrites_model_only_when_it_differs() {
        let body = Bytes::from_static(br#"{"model":"a","messages":[{"role":"user","content":"hi"}]}"#);
        assert_eq!(with_model(&body, "a", "a").unwrap(), body);
        let out: serde_json::Value = serde_json::from_slice(&with_model(&body, "a", "b").unwrap()).unwrap();
        assert_eq!(out["model"], "b");
        assert_eq!(out["messages"][0]["content"], "hi");
    }
}
