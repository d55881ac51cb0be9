//! Which of a provider's response headers reach the client with its answer:
//! the ones a client acts on (content type, caching, when to retry, its rate
//! limits, the provider's request id), never anything else.

use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderName};

/// Passed on under their own names.
const AS_THEY_ARE: [HeaderName; 3] = [CONTENT_TYPE, CACHE_CONTROL, RETRY_AFTER];
/// Families passed on whole: OpenAI's and Anthropic's rate-limit headers.
const FAMILIES: [&str; 2] = ["x-ratelimit-", "anthropic-ratelimit-"];
/// Single headers passed on under their own names.
const SINGLES: [&str; 2] = ["retry-after-ms", "request-id"];

/// Copies the headers of `from` a client acts on into `to`. The provider's
/// `x-request-id` becomes `x-upstream-request-id` (the gateway's own request
/// id is the client's `x-request-id`).
pub(crate) fn pass_on(from: &HeaderMap, to: &mut HeaderMap) {
    for name in AS_THEY_ARE {
        if let Some(v) = from.get(&name) {
            to.insert(name, v.clone());
        }
    }
    for (name, value) in from {
        let n = name.as_str();
        if SINGLES.contains(&n) || FAMILIES.iter().any(|f| n.starts_with(f)) {
            to.append(name.clone(), value.clone());
        }
    }
    if let Some(v) = from.get(crate::headers::REQUEST_ID) {
        to.insert(crate::headers::UPSTREAM_REQUEST_ID, v.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_client_acts_on_passes_and_nothing_else() {
        let mut from = HeaderMap::new();
        for (n, v) in [
            ("content-type", "application/json"),
            ("retry-after", "7"),
            ("retry-after-ms", "6500"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-tokens", "6s"),
            ("anthropic-ratelimit-requests-remaining", "0"),
            ("request-id", "req_abc"),
            ("x-request-id", "up-1"),
            ("set-cookie", "session=1"),
            ("openai-organization", "org-secret"),
        ] {
            from.insert(HeaderName::from_static(n), v.parse().unwrap());
        }
        let mut to = HeaderMap::new();
        pass_on(&from, &mut to);
        let mut names: Vec<&str> = to.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "anthropic-ratelimit-requests-remaining",
                "content-type",
                "request-id",
                "retry-after",
                "retry-after-ms",
                "x-ratelimit-remaining-requests",
                "x-ratelimit-reset-tokens",
                "x-upstream-request-id",
            ]
        );
    }
}
