//! `POST /v1/messages/count_tokens`: Anthropic's token counter, which
//! Anthropic clients (Claude Code among them) call before sending. Only an
//! Anthropic provider can count Claude's tokens, so the request goes, with
//! the target's model name and the provider's key, to the first
//! Anthropic-API target of its route that is available (no Retry-After
//! running, breaker not open), else to the first one at all. A route with no
//! Anthropic target answers 404 `not_found_error` saying so. Counting is not
//! a chat attempt: it spends no retry budget and is not recorded in health.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode, header};
use switchyard_wire::openai_error::OpenAiError;
use switchyard_wire::{Api, RequestPeek};

use crate::gateway::Shared;
use crate::respond::{self, Meta};
use crate::{ResponseBody, upstream};

/// Counts the tokens of `body` (a Messages request) with an Anthropic target of its route.
pub(crate) async fn serve(
    shared: &Shared,
    body: Bytes,
    forward: Vec<(HeaderName, HeaderValue)>,
) -> Response<ResponseBody> {
    let peek = match RequestPeek::parse(&body) {
        Ok(peek) => peek,
        Err(e) => return respond::invalid_request(Api::Anthropic, e.to_string(), None),
    };
    let Some(route) = shared.routes_by_model.get(&peek.model).copied().or(shared.wildcard) else {
        return respond::unknown_model(Api::Anthropic, &peek.model);
    };
    let anthropic: Vec<u32> = shared.topology.routes[route]
        .targets
        .iter()
        .copied()
        .filter(|&t| shared.target_provider[t as usize].api == Api::Anthropic)
        .collect();
    let Some(&target) = anthropic.iter().find(|&&t| shared.health.available(t)).or(anthropic.first()) else {
        let message = format!(
            "Route `{}` has no Anthropic provider, and only Anthropic can count Claude tokens.",
            switchyard_wire::text::truncate(&peek.model, 200)
        );
        let not_found = OpenAiError::invalid_request(message, Some("no_token_counter"), Some("model"));
        return respond::error(Api::Anthropic, StatusCode::NOT_FOUND, &not_found, &Meta::none(), None);
    };
    let provider: &Arc<upstream::Provider> = &shared.target_provider[target as usize];
    let model = &shared.topology.targets[target as usize].model;
    let body = match switchyard_wire::request::with_model(&body, &peek.model, model) {
        Ok(body) => body,
        Err(why) => return respond::invalid_request(Api::Anthropic, why, None),
    };
    let meta = Meta { provider: Some(provider.name.clone()), attempts: 1, policy: None, degraded: None };
    match upstream::count_tokens(provider, body, &forward, shared.routes[route].timeout).await {
        Ok((status, answer)) => {
            let mut response = Response::new(respond::full(answer));
            *response.status_mut() = status;
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            respond::stamp(&mut response, &meta);
            response
        }
        Err(why) => {
            let message = format!("The provider could not count the tokens: {why}.");
            respond::upstream_failed(Api::Anthropic, StatusCode::BAD_GATEWAY, message, &meta)
        }
    }
}
