//! What kind of failure (or success) a provider's answer is.

use std::time::{Duration, SystemTime};

/// How one upstream attempt ended. Mirrors `outcome-kind` in the policy world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeKind {
    /// 2xx.
    Success,
    /// DNS, TCP or TLS failed, or the connection was refused.
    ConnectError,
    /// An attempt limit ran out (connect, first token, whole answer), or a
    /// stream went silent before its first token.
    Timeout,
    /// The connection closed before a complete response (a stream: before its first token).
    Reset,
    /// 429.
    RateLimited,
    /// 503 or 529.
    Overloaded,
    /// Any other 5xx.
    ServerError,
    /// 401, 402, 403.
    Auth,
    /// 400: the prompt does not fit the model's context.
    ContextTooLong,
    /// 400: content was filtered.
    ContentFiltered,
    /// Any other 4xx.
    InvalidRequest,
    /// A 2xx whose body could not be understood.
    InvalidResponse,
}

impl OutcomeKind {
    /// The provider (or the way to it) failed, as opposed to success or a
    /// request the provider rightly refused (invalid, filtered, too long).
    pub fn is_provider_failure(self) -> bool {
        !matches!(
            self,
            OutcomeKind::Success
                | OutcomeKind::InvalidRequest
                | OutcomeKind::ContentFiltered
                | OutcomeKind::ContextTooLong
        )
    }
}

/// Classifies an HTTP answer from its status and (for 400s) its error body,
/// as OpenAI-compatible providers write it.
pub fn classify_status(status: u16, body: &[u8]) -> OutcomeKind {
    match status {
        200..=299 => OutcomeKind::Success,
        // OpenAI answers 429 for an exhausted quota too: an account problem.
        429 if mentions(body, "insufficient_quota") => OutcomeKind::Auth,
        429 => OutcomeKind::RateLimited,
        503 | 529 => OutcomeKind::Overloaded,
        500..=599 => OutcomeKind::ServerError,
        401..=403 => OutcomeKind::Auth,
        400 | 413 | 422 => classify_bad_request(body),
        _ => OutcomeKind::InvalidRequest,
    }
}

fn mentions(body: &[u8], needle: &str) -> bool {
    String::from_utf8_lossy(&body[..body.len().min(8192)]).contains(needle)
}

fn classify_bad_request(body: &[u8]) -> OutcomeKind {
    let text = String::from_utf8_lossy(&body[..body.len().min(8192)]).to_ascii_lowercase();
    if text.contains("context_length_exceeded")
        || text.contains("maximum context length")
        || text.contains("prompt is too long")
        || text.contains("too many tokens")
    {
        OutcomeKind::ContextTooLong
    } else if text.contains("content_filter") || text.contains("content_policy_violation") {
        OutcomeKind::ContentFiltered
    } else {
        OutcomeKind::InvalidRequest
    }
}

/// The wait a provider asked for, from `retry-after-ms` (OpenAI) or
/// `Retry-After` (seconds or an HTTP date), capped at one hour.
pub fn parse_retry_after(retry_after_ms: Option<&str>, retry_after: Option<&str>, now: SystemTime) -> Option<Duration> {
    const CAP: Duration = Duration::from_secs(3600);
    if let Some(ms) = retry_after_ms.and_then(|v| v.trim().parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_millis(ms as u64).min(CAP));
    }
    let value = retry_after?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO).min(CAP))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_kinds() {
        assert_eq!(classify_status(200, b""), OutcomeKind::Success);
        assert_eq!(classify_status(429, b""), OutcomeKind::RateLimited);
        assert_eq!(classify_status(529, b""), OutcomeKind::Overloaded);
        assert_eq!(classify_status(503, b""), OutcomeKind::Overloaded);
        assert_eq!(classify_status(502, b""), OutcomeKind::ServerError);
        assert_eq!(classify_status(402, b""), OutcomeKind::Auth);
        assert_eq!(classify_status(404, b""), OutcomeKind::InvalidRequest);
    }

    #[test]
    fn client_mistakes_are_not_provider_failures() {
        assert!(!OutcomeKind::InvalidRequest.is_provider_failure());
        assert!(!OutcomeKind::ContextTooLong.is_provider_failure());
        assert!(OutcomeKind::Auth.is_provider_failure());
        assert!(OutcomeKind::Timeout.is_provider_failure());
    }

    #[test]
    fn bad_requests_are_read_for_their_reason() {
        let ctx = br#"{"error":{"code":"context_length_exceeded","message":"This model's maximum context length is 8192 tokens"}}"#;
        assert_eq!(classify_status(400, ctx), OutcomeKind::ContextTooLong);
        let filtered = br#"{"error":{"code":"content_filter","message":"filtered"}}"#;
        assert_eq!(classify_status(400, filtered), OutcomeKind::ContentFiltered);
        assert_eq!(classify_status(400, b"{}"), OutcomeKind::InvalidRequest);
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(parse_retry_after(None, Some("2"), now), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(Some("1500"), Some("9"), now), Some(Duration::from_millis(1500)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(5));
        assert_eq!(parse_retry_after(None, Some(&date), now), Some(Duration::from_secs(5)));
        assert_eq!(parse_retry_after(None, Some("soon"), now), None);
        assert_eq!(parse_retry_after(None, Some("99999"), now), Some(Duration::from_secs(3600)));
    }
}
