//! Recovering a stream that broke after reaching the client. The relay
//! hands over what the client has (`Delivered`); the request's policy is
//! asked (`on-stream-break`) and its answer carried out:
//!
//! - **continue**: the target gets the client's request with the delivered
//!   text as a partial assistant turn (its trailing whitespace cut off, as
//!   Anthropic requires) and continues the answer;
//! - **restart**: the target gets the client's request again, and only what
//!   comes after the delivered text is forwarded;
//! - **end**: the client's stream ends with an error event that names the
//!   original break.
//!
//! A recovery attempt that fails before its first token (a 400 from a target
//! that takes no partial turn, a timeout, ...) is reported to the policy as
//! `failed-recovery`, and the policy is asked again; whatever it ends with,
//! the client's error names the original break, not the recovery's failure.
//! The recovered stream resumes with an SSE comment (which SDK parsers
//! ignore) saying what happened.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use switchyard_policy_host::{AttemptLimits, AttemptOutcome, BreakKind, OutcomeKind, Recovery, StreamBreak};
use switchyard_wire::Api;
use switchyard_wire::stream::delivered::Delivered;
use switchyard_wire::stream::splice::{SpliceMode, Splicer};
use switchyard_wire::usage::Usage;

use crate::exchange::{Exchange, Finished, launch};
use crate::relay::{StreamSource, Upstream};
use crate::upstream::AnswerBody;

/// Whatever the policy says, at most this many recovery attempts per request.
const MAX_RECOVERY_ATTEMPTS: u32 = 5;
/// Longest wait before a recovery attempt.
const MAX_RECOVERY_DELAY: Duration = Duration::from_secs(10);

/// A recovery in progress, as the relay polls it.
pub(crate) type Recovering = Pin<Box<dyn Future<Output = (Box<StreamRecovery>, Resumed)> + Send>>;

/// How a recovery ended.
pub(crate) enum Resumed {
    /// A new upstream continues the client's stream: `comment` first, then
    /// `first` (the recovery's first bytes, to pass through the relay).
    Source { upstream: Box<Upstream>, first: Bytes, comment: Bytes },
    /// End the client's stream with this error message.
    End(String),
}

/// The exchange a stream came from, kept to recover it.
pub(crate) struct StreamRecovery {
    exchange: Exchange,
    /// Recovery attempts made so far.
    attempts: u32,
    /// The stream's end is recorded (metrics, access log).
    finished: bool,
}

/// The client's request (`body`, in either API: both take a partial turn as
/// a last assistant message) with `text` appended as a partial assistant
/// turn (to the client's own partial turn, when its last message is one); and
/// the whitespace cut off `text`'s end.
pub(crate) fn continuation(body: &[u8], text: &str) -> Result<(Bytes, String), String> {
    let mut request: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let prefix = text.trim_end();
    let trimmed = text[prefix.len()..].to_owned();
    let messages = request["messages"].as_array_mut().ok_or("the request has no messages")?;
    match messages.last_mut() {
        Some(last) if last["role"] == "assistant" => match &mut last["content"] {
            Value::String(s) => s.push_str(prefix),
            Value::Array(blocks) => blocks.push(json!({"type": "text", "text": prefix})),
            other => *other = json!(prefix),
        },
        _ => messages.push(json!({"role": "assistant", "content": prefix})),
    }
    let body = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
    Ok((Bytes::from(body), trimmed))
}

/// For an OpenAI-wire target, the switches with which OpenAI-compatible
/// servers (vLLM) continue a final assistant message instead of answering
/// it; a server that does not know them refuses the request with a 400, which
/// the policy sees as `failed-recovery` (and the shipped policies restart).
fn continue_switches(
    api: Api,
    mut prepared: crate::translation::Prepared,
) -> Result<crate::translation::Prepared, String> {
    if api != Api::OpenAi {
        return Ok(prepared);
    }
    let mut request: Value = serde_json::from_slice(&prepared.body).map_err(|e| e.to_string())?;
    request["continue_final_message"] = json!(true);
    request["add_generation_prompt"] = json!(false);
    prepared.body = Bytes::from(serde_json::to_vec(&request).map_err(|e| e.to_string())?);
    Ok(prepared)
}

impl StreamRecovery {
    pub fn new(exchange: Exchange) -> Self {
        StreamRecovery { exchange, attempts: 0, finished: false }
    }

    /// Writes the stream's metrics and access log line, once: how it ended
    /// (`complete`, `error`, `client-gone`) and the usage it carried.
    pub fn finish(&mut self, end: &'static str, usage: Usage) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        self.exchange.log_end(200, usage, Some(end));
    }

    /// Asks the policy about the break of `target`'s stream and carries its
    /// answer out, until a new stream runs or the policy (or a bound) ends it.
    pub fn recover(self: Box<Self>, target: u32, kind: BreakKind, message: String, delivered: Delivered) -> Recovering {
        Box::pin(async move {
            let mut this = self;
            let resumed = this.run(target, kind, message, delivered).await;
            (this, resumed)
        })
    }

    async fn run(&mut self, broken: u32, kind: BreakKind, message: String, delivered: Delivered) -> Resumed {
        self.exchange.shared.metrics.stream_break(broken, kind.label());
        if delivered.several_choices {
            return Resumed::End(message);
        }
        let mut failed: Option<AttemptOutcome> = None;
        loop {
            if self.attempts >= MAX_RECOVERY_ATTEMPTS {
                return Resumed::End(format!("{message} {} recovery attempts failed.", self.attempts));
            }
            let ex = &mut self.exchange;
            let question = StreamBreak {
                target: broken,
                kind,
                delivered_chars: u32::try_from(delivered.chars()).unwrap_or(u32::MAX),
                delivered_tokens: u32::try_from(delivered.tokens()).unwrap_or(u32::MAX),
                in_tool_call: delivered.in_tool_call(),
                elapsed_ms: u32::try_from(ex.started.elapsed().as_millis()).unwrap_or(u32::MAX),
                recoveries: self.attempts,
                tried: ex.tried.clone(),
                failed_recovery: failed.take(),
            };
            let asked = std::time::SystemTime::now();
            let decided = ex.policy.on_stream_break(&ex.request_info(), &question).await;
            if let Some(trace) = &ex.trace {
                trace.decision("on-stream-break", &decided.answered_by, asked, format!("{:?}", decided.value));
            }
            let (retry, wants_continue) = match decided.value {
                Recovery::End => {
                    self.exchange.shared.metrics.recovery("end");
                    if let Some(record) = self.exchange.record.as_mut() {
                        record.recovery(kind.label(), "end", None);
                    }
                    let tail = if self.attempts > 0 { " The recovery attempts failed." } else { "" };
                    return Resumed::End(format!("{message}{tail}"));
                }
                Recovery::Continue(r) => (r, true),
                Recovery::Restart(r) => (r, false),
            };
            self.attempts += 1;
            // Only text can be handed over as a partial turn; a partial tool call cannot.
            let resume = wants_continue && delivered.continuable() && !delivered.text().trim().is_empty();
            if retry.delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(retry.delay_ms.into()).min(MAX_RECOVERY_DELAY)).await;
            }
            let how = if resume { "continue" } else { "restart" };
            match self.attempt(retry.target, resume, &delivered).await {
                Ok((resumed, target)) => {
                    self.exchange.shared.metrics.recovery(how);
                    if let Some(record) = self.exchange.record.as_mut() {
                        record.recovery(kind.label(), how, Some(target));
                    }
                    tracing::warn!(
                        target = retry.target,
                        how,
                        after = kind.describe(),
                        delivered_chars = delivered.chars(),
                        "stream recovered"
                    );
                    return resumed;
                }
                Err(outcome) => failed = Some(outcome),
            }
        }
    }

    /// One recovery attempt at `wanted` (or another target of the route,
    /// when its breaker is open): a new stream spliced onto the client's, or
    /// how the attempt failed.
    async fn attempt(
        &mut self,
        wanted: u32,
        resume: bool,
        delivered: &Delivered,
    ) -> Result<(Resumed, String), AttemptOutcome> {
        let ex = &mut self.exchange;
        let shared = ex.shared.clone();
        let Some((target, inflight)) = ex.admit(wanted) else {
            return Err(outcome(ex, wanted, OutcomeKind::Overloaded, None, Duration::ZERO));
        };
        let Ok(permits) = ex.enter_quota(target).await else {
            return Err(outcome(ex, target, OutcomeKind::RateLimited, None, Duration::ZERO));
        };
        let inflight = crate::quota::Hold::new(inflight, permits);
        ex.tried.push(target);
        let provider = shared.target_provider[target as usize].clone();
        let model = &shared.topology.targets[target as usize].model;
        let client = ex.client;
        let (prepared, mode) = if resume {
            match continuation(&ex.body, &delivered.text()) {
                Ok((body, trimmed)) => (
                    crate::translation::request(client, provider.api, &body, None, &ex.peek.model, model)
                        .and_then(|p| continue_switches(provider.api, p)),
                    SpliceMode::Continue { trimmed },
                ),
                Err(why) => (Err(why), SpliceMode::Restart),
            }
        } else {
            let prepared =
                crate::translation::request(client, provider.api, &ex.body, ex.parsed.as_ref(), &ex.peek.model, model);
            (prepared, SpliceMode::Restart)
        };
        let route = &shared.routes[ex.route];
        let limits = crate::limits::resolve(
            &AttemptLimits::DEFAULT,
            &route.limits,
            &shared.timeouts,
            &shared.health,
            target,
            true,
        );
        let traced = ex.trace.as_ref().map(|t| t.attempt());
        let Finished { attempt, inflight, span, .. } =
            launch(&shared, client, &ex.forward, target, inflight, prepared, true, limits, traced).await;
        ex.log_attempt(target, &attempt, span);
        let Some(answer) = attempt.answer.filter(|_| attempt.kind == OutcomeKind::Success) else {
            tracing::debug!(provider = %provider.name, kind = ?attempt.kind, "recovery attempt failed: {}", attempt.detail);
            return Err(outcome(ex, target, attempt.kind, attempt.status.map(|s| s.as_u16()), attempt.elapsed));
        };
        let AnswerBody::Stream { first, rest, translate } = answer.body else {
            return Err(outcome(ex, target, OutcomeKind::InvalidResponse, None, attempt.elapsed));
        };
        shared.health.record_first_token(target, attempt.elapsed);
        let how = match mode {
            SpliceMode::Continue { .. } => "continued",
            SpliceMode::Restart => "restarted",
        };
        let comment = format!(
            ": switchyard: the stream broke after {} characters; {how} on {}/{}\n\n",
            delivered.chars(),
            provider.name,
            model
        );
        let source = StreamSource {
            health: shared.health.clone(),
            target,
            provider: provider.name.clone(),
            inflight,
            latency: attempt.elapsed,
            recorded: false,
        };
        let splice = Box::new(Splicer::new(client, delivered.clone(), mode));
        let upstream = Upstream::new(rest, source, translate, Some(splice), limits.idle);
        ex.meta.provider = Some(provider.name.clone());
        let label = format!("{}/{model}", provider.name);
        Ok((Resumed::Source { upstream: Box::new(upstream), first, comment: Bytes::from(comment) }, label))
    }
}

impl Drop for StreamRecovery {
    /// A stream dropped mid-recovery (the client went away) still gets its line.
    fn drop(&mut self) {
        self.finish("client-gone", Usage::default());
    }
}

fn outcome(ex: &Exchange, target: u32, kind: OutcomeKind, status: Option<u16>, elapsed: Duration) -> AttemptOutcome {
    AttemptOutcome {
        target,
        attempt: ex.tried.len() as u32,
        tried: ex.tried.clone(),
        kind,
        http_status: status,
        retry_after_ms: None,
        elapsed_ms: u32::try_from(elapsed.as_millis()).unwrap_or(u32::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_continuation_appends_the_delivered_text_as_a_partial_assistant_turn() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"count"}],"stream":true}"#;
        let (out, trimmed) = continuation(body, "one two ").unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["messages"][1], json!({"role": "assistant", "content": "one two"}));
        assert_eq!(trimmed, " ");
        let prefilled = br#"{"messages":[{"role":"user","content":"json"},{"role":"assistant","content":"{"}]}"#;
        let (out, _) = continuation(prefilled, "\"a\":").unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["messages"][1]["content"], "{\"a\":");
        assert_eq!(v["messages"].as_array().unwrap().len(), 2);
    }
}
