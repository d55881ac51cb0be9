//! Where a client of one API meets a provider of the other: the request
//! translated for the attempt, the answer (whole, streamed, or an error)
//! translated back. Same API on both sides: the body goes as it came, with
//! only `model` rewritten. The wire types and mappings live in
//! `switchyard_wire::translate`; this file applies them to attempts.

use bytes::Bytes;
use switchyard_wire::anthropic::{self, MessagesRequest, MessagesResponse};
use switchyard_wire::chat::{ChatRequest, ChatResponse};
use switchyard_wire::translate::stream::{AnthropicToChat, ChatToAnthropic, StreamTranslator};
use switchyard_wire::translate::{
    chat_response_to_messages, chat_to_messages, messages_response_to_chat, messages_to_chat,
};
use switchyard_wire::{Api, OutcomeKind};

use crate::upstream::{AnswerBody, Attempt};

/// A request ready for one provider.
pub(crate) struct Prepared {
    pub body: Bytes,
    /// An OpenAI client asked for a usage chunk at the end of its stream.
    pub include_usage: bool,
}

/// The client's request (`body`, in `client`'s API, asking for
/// `client_model`; `parsed` when the door already parsed it) as
/// `provider`'s API wants it, for the target's `model`.
pub(crate) fn request(
    client: Api,
    provider: Api,
    body: &Bytes,
    parsed: Option<&MessagesRequest>,
    client_model: &str,
    model: &str,
) -> Result<Prepared, String> {
    let untranslatable = |e: serde_json::Error| format!("the request cannot be translated for this provider: {e}");
    match (client, provider) {
        (Api::OpenAi, Api::Anthropic) => {
            let request: ChatRequest = serde_json::from_slice(body).map_err(untranslatable)?;
            let include_usage = request.extra.get("stream_options").is_some_and(|o| o["include_usage"] == true);
            let mut translated = chat_to_messages(&request);
            if !translated.dropped.is_empty() {
                tracing::debug!(dropped = ?translated.dropped, "fields with no Anthropic counterpart were left out");
            }
            translated.value.model = model.to_owned();
            let body = serde_json::to_vec(&translated.value).map_err(|e| e.to_string())?;
            Ok(Prepared { body: Bytes::from(body), include_usage })
        }
        (Api::Anthropic, Api::OpenAi) => {
            let owned;
            let request = match parsed {
                Some(request) => request,
                None => {
                    owned = serde_json::from_slice::<MessagesRequest>(body).map_err(untranslatable)?;
                    &owned
                }
            };
            let mut translated = messages_to_chat(request);
            if !translated.dropped.is_empty() {
                tracing::debug!(dropped = ?translated.dropped, "fields with no OpenAI counterpart were left out");
            }
            translated.value.model = model.to_owned();
            if request.stream == Some(true) {
                // Anthropic's stream reports usage; OpenAI's only when asked.
                translated.value.extra.insert("stream_options".into(), serde_json::json!({"include_usage": true}));
            }
            let body = serde_json::to_vec(&translated.value).map_err(|e| e.to_string())?;
            Ok(Prepared { body: Bytes::from(body), include_usage: false })
        }
        _ => Ok(Prepared {
            body: switchyard_wire::request::with_model(body, client_model, model)?,
            include_usage: false,
        }),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The provider's answer as the client expects it: a whole answer
/// translated, a stream marked for the relay to translate event by event,
/// an error body rewritten in the client's error format.
pub(crate) fn answer(client: Api, provider: Api, mut attempt: Attempt, include_usage: bool) -> Attempt {
    if client == provider {
        return attempt;
    }
    let Some(answer) = attempt.answer.as_mut() else { return attempt };
    let status = answer.head.status.as_u16();
    match &mut answer.body {
        AnswerBody::Stream { translate, .. } => {
            *translate = Some(Box::new(match client {
                Api::OpenAi => StreamTranslator::ToOpenAi(AnthropicToChat::new(unix_now(), include_usage)),
                Api::Anthropic => StreamTranslator::ToAnthropic(ChatToAnthropic::new()),
            }));
        }
        AnswerBody::Full(bytes) if attempt.kind == OutcomeKind::Success => match whole_answer(client, bytes) {
            Ok(translated) => *bytes = translated,
            Err(why) => {
                attempt.kind = OutcomeKind::InvalidResponse;
                attempt.detail = why;
                attempt.answer = None;
            }
        },
        AnswerBody::Full(bytes) => *bytes = error_body(client, status, bytes),
    }
    attempt
}

/// A successful answer of the other API in `client`'s.
fn whole_answer(client: Api, bytes: &[u8]) -> Result<Bytes, String> {
    let json = match client {
        Api::OpenAi => {
            let response: MessagesResponse =
                serde_json::from_slice(bytes).map_err(|e| format!("the answer is not an Anthropic message: {e}"))?;
            let translated = messages_response_to_chat(&response, unix_now());
            if !translated.dropped.is_empty() {
                tracing::debug!(dropped = ?translated.dropped, "answer fields with no OpenAI counterpart");
            }
            serde_json::to_vec(&translated.value)
        }
        Api::Anthropic => {
            let response: ChatResponse = serde_json::from_slice(bytes)
                .map_err(|e| format!("the answer is not an OpenAI chat completion: {e}"))?;
            let translated = chat_response_to_messages(&response);
            if !translated.dropped.is_empty() {
                tracing::debug!(dropped = ?translated.dropped, "answer fields with no Anthropic counterpart");
            }
            serde_json::to_vec(&translated.value)
        }
    };
    json.map(Bytes::from).map_err(|e| e.to_string())
}

/// A provider's error body (either API's shape, or not JSON at all) in
/// `client`'s error format, keeping the provider's message and, for an
/// OpenAI client, the provider's error type.
fn error_body(client: Api, status: u16, bytes: &[u8]) -> Bytes {
    let error: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    let message = error["error"]["message"].as_str().unwrap_or("the provider refused the request");
    match client {
        Api::OpenAi => {
            // OpenAI's shape, keeping the provider's error type.
            let kind = error["error"]["type"].as_str().unwrap_or("api_error");
            let body = serde_json::json!({"error": {"message": message, "type": kind, "param": null, "code": "upstream_error"}});
            Bytes::from(body.to_string())
        }
        Api::Anthropic => Bytes::from(anthropic::error_body(anthropic::error_kind(status), message)),
    }
}
