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
    /// Reads `model` and `stream` from an OpenAI chat-completions body.
    pub fn parse(body: &[u8]) -> Result<RequestPeek, WireError> {
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
/// bytes untouched when the names match, else the body with `model` replaced.
pub fn with_model(body: &Bytes, client_model: &str, model: &str) -> Bytes {
    if client_model == model {
        return body.clone();
    }
    match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body) {
        Ok(mut map) => {
            map.insert("model".into(), serde_json::Value::String(model.to_owned()));
            serde_json::to_vec(&map).map(Bytes::from).unwrap_or_else(|_| body.clone())
        }
        Err(_) => body.clone(),
    }
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

    #[test]
    fn rewrites_model_only_when_it_differs() {
        let body = Bytes::from_static(br#"{"model":"a","messages":[{"role":"user","content":"hi"}]}"#);
        assert_eq!(with_model(&body, "a", "a"), body);
        let out: serde_json::Value = serde_json::from_slice(&with_model(&body, "a", "b")).unwrap();
        assert_eq!(out["model"], "b");
        assert_eq!(out["messages"][0]["content"], "hi");
    }
}
