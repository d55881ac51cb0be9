//! Where an OpenAI-speaking client meets an Anthropic-speaking provider: the
//! request translated for the attempt, the answer (whole, streamed, or an
//! error) translated back. The wire types and mappings live in
//! `switchyard_wire::translate`; this file applies them to attempts.

use bytes::Bytes;
use switchyard_wire::anthropic::MessagesResponse;
use switchyard_wire::chat::ChatRequest;
use switchyard_wire::translate::{chat_to_messages, messages_response_to_chat};
use switchyard_wire::{OutcomeKind, openai_error::OpenAiError};

use crate::upstream::{AnswerBody, Attempt};

/// The client's OpenAI request as an Anthropic one for `model`; also whether
/// the client asked for a usage chunk at the end of a stream.
pub(crate) fn request_for_anthropic(body: &[u8], model: &str) -> Result<(Bytes, bool), String> {
    let request: ChatRequest =
        serde_json::from_slice(body).map_err(|e| format!("the request cannot be translated for this provider: {e}"))?;
    let include_usage = request.extra.get("stream_options").is_some_and(|o| o["include_usage"] == true);
    let mut translated = chat_to_messages(&request);
    if !translated.dropped.is_empty() {
        tracing::debug!(dropped = ?translated.dropped, "fields with no Anthropic counterpart were left out");
    }
    translated.value.model = model.to_owned();
    let bytes = serde_json::to_vec(&translated.value).map_err(|e| e.to_string())?;
    Ok((Bytes::from(bytes), include_usage))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// An Anthropic provider's answer as the OpenAI client expects it: a whole
/// answer translated, a stream marked for the relay to translate, an error
/// body rewritten in OpenAI's shape.
pub(crate) fn answer_from_anthropic(mut attempt: Attempt, include_usage: bool) -> Attempt {
    let Some(answer) = attempt.answer.as_mut() else { return attempt };
    match &mut answer.body {
        AnswerBody::Stream { translate, .. } => {
            *translate = Some(switchyard_wire::translate::stream::AnthropicToChat::new(unix_now(), include_usage));
        }
        AnswerBody::Full(bytes) if attempt.kind == OutcomeKind::Success => {
            match serde_json::from_slice::<MessagesResponse>(bytes) {
                Ok(response) => {
                    let translated = messages_response_to_chat(&response, unix_now());
                    if !translated.dropped.is_empty() {
                        tracing::debug!(dropped = ?translated.dropped, "answer fields with no OpenAI counterpart");
                    }
                    *bytes = Bytes::from(serde_json::to_vec(&translated.value).unwrap_or_default());
                }
                Err(e) => {
                    attempt.kind = OutcomeKind::InvalidResponse;
                    attempt.detail = format!("the answer is not an Anthropic message: {e}");
                    attempt.answer = None;
                }
            }
        }
        AnswerBody::Full(bytes) => {
            let error: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
            let message = error["error"]["message"].as_str().unwrap_or("the provider refused the request");
            let kind = error["error"]["type"].as_str().unwrap_or("api_error");
            let mut body = OpenAiError::server(message, "upstream_error").to_body().to_vec();
            if let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&body) {
                v["error"]["type"] = kind.into();
                body = serde_json::to_vec(&v).unwrap_or(body);
            }
            *bytes = Bytes::from(body);
        }
    }
    attempt
}
