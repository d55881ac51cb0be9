//! OpenAI's error format: `{"error":{"message","type","param","code"}}`.

use bytes::Bytes;
use serde_json::json;

/// An error as OpenAI's API spells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAiError {
    /// Human-readable; never contains secrets.
    pub message: String,
    /// `invalid_request_error`, `server_error`, ...
    pub kind: &'static str,
    /// Machine-readable code, e.g. `model_not_found`.
    pub code: Option<&'static str>,
    /// The request field at fault, e.g. `model`.
    pub param: Option<&'static str>,
}

impl OpenAiError {
    /// A 4xx about the client's request.
    pub fn invalid_request(
        message: impl Into<String>,
        code: Option<&'static str>,
        param: Option<&'static str>,
    ) -> Self {
        OpenAiError { message: message.into(), kind: "invalid_request_error", code, param }
    }

    /// A 5xx: the gateway or every provider failed.
    pub fn server(message: impl Into<String>, code: &'static str) -> Self {
        OpenAiError { message: message.into(), kind: "server_error", code: Some(code), param: None }
    }

    /// The JSON body of an error response.
    pub fn to_body(&self) -> Bytes {
        Bytes::from(
            json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}})
                .to_string(),
        )
    }

    /// The SSE event that ends a stream which broke after it started: OpenAI
    /// clients (the official SDKs among them) raise on a data event that
    /// carries an `error` object.
    pub fn to_sse_event(&self) -> Bytes {
        let mut event = b"data: ".to_vec();
        event.extend_from_slice(&self.to_body());
        event.extend_from_slice(b"\n\n");
        Bytes::from(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_has_openai_shape() {
        let e = OpenAiError::invalid_request("bad", Some("model_not_found"), Some("model"));
        let v: serde_json::Value = serde_json::from_slice(&e.to_body()).unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["param"], "model");
        assert_eq!(v["error"]["message"], "bad");
    }

    #[test]
    fn sse_error_event_is_one_data_event() {
        let e = OpenAiError::server("cut", "upstream_stream_broken");
        let ev = String::from_utf8(e.to_sse_event().to_vec()).unwrap();
        assert!(ev.starts_with("data: {\"error\":"));
        assert!(ev.ends_with("\n\n"));
    }
}
