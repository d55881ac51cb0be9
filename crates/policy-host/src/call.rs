//! The per-request context a policy's host imports may read.

/// Request headers a policy may read: names in lower case, credentials never.
#[derive(Debug, Default, Clone)]
pub struct CallContext {
    headers: Vec<(String, String)>,
}

/// Header names a policy never sees, whatever they look like.
fn is_secret(name: &str) -> bool {
    const WORDS: &[&str] = &["auth", "key", "token", "secret", "cookie", "password", "session", "signature"];
    // (A plain window compare: `str::contains` builds a searcher per word,
    // which cost more than the rest of the header filter.)
    let name = name.as_bytes();
    WORDS.iter().any(|w| name.windows(w.len()).any(|part| part == w.as_bytes()))
}

/// Header names a policy may see: `x-*` and a few API ones, never credentials.
pub fn is_allowed_header(name: &str) -> bool {
    match name {
        // (None of these names holds a secret word.)
        "user-agent" | "anthropic-version" | "anthropic-beta" | "openai-beta" | "content-type" | "accept" => true,
        _ => name.starts_with("x-") && !is_secret(name),
    }
}

impl CallContext {
    /// Keeps the allowed headers of a request (see [`is_allowed_header`]).
    pub fn from_headers<'a>(headers: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Self {
        let headers = headers
            .into_iter()
            .filter(|(name, _)| is_allowed_header(name))
            .filter_map(|(name, value)| Some((name.to_ascii_lowercase(), std::str::from_utf8(value).ok()?.to_owned())))
            .collect();
        CallContext { headers }
    }

    /// The value of header `name` (case-insensitive), if allowed and present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_reach_a_policy() {
        let ctx = CallContext::from_headers([
            ("authorization", b"Bearer sk-secret".as_slice()),
            ("x-api-key", b"sk-ant".as_slice()),
            ("x-auth-token", b"t".as_slice()),
            ("cookie", b"c".as_slice()),
            ("x-tier", b"gold".as_slice()),
            ("user-agent", b"ua".as_slice()),
        ]);
        assert_eq!(ctx.header("x-tier"), Some("gold"));
        assert_eq!(ctx.header("user-agent"), Some("ua"));
        for secret in ["authorization", "x-api-key", "x-auth-token", "cookie"] {
            assert_eq!(ctx.header(secret), None, "{secret}");
        }
    }
}
