//! The gateway's secrets (provider keys), kept so that no provider answer
//! relayed to a client can carry one: a provider that echoes the request's
//! key in its error message must not leak it.

use bytes::Bytes;
use memchr::memmem;

/// Shorter values are not scrubbed: they would match ordinary text.
const SHORTEST: usize = 8;
/// What a secret is replaced with.
const REDACTED: &[u8] = b"[redacted]";

/// Every configured secret; scrubs them out of bytes.
#[derive(Default)]
pub(crate) struct Secrets {
    finders: Vec<memmem::Finder<'static>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} kept, never shown)", self.finders.len())
    }
}

impl Secrets {
    /// Keeps `secrets` (values shorter than 8 bytes are left out).
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        let mut values: Vec<&str> = secrets.into_iter().map(str::trim).filter(|s| s.len() >= SHORTEST).collect();
        // Longest first, so a key that contains another is replaced whole.
        values.sort_by_key(|s| std::cmp::Reverse(s.len()));
        values.dedup();
        Secrets { finders: values.into_iter().map(|s| memmem::Finder::new(s.as_bytes()).into_owned()).collect() }
    }

    /// `bytes` with every secret replaced by `[redacted]`; the same bytes
    /// (no copy) when none occurs.
    pub fn scrub(&self, bytes: Bytes) -> Bytes {
        let mut out: Option<Vec<u8>> = None;
        for finder in &self.finders {
            let haystack: &[u8] = out.as_deref().unwrap_or(&bytes);
            if finder.find(haystack).is_none() {
                continue;
            }
            let mut replaced = Vec::with_capacity(haystack.len());
            let mut last = 0;
            for at in finder.find_iter(haystack) {
                replaced.extend_from_slice(&haystack[last..at]);
                replaced.extend_from_slice(REDACTED);
                last = at + finder.needle().len();
            }
            replaced.extend_from_slice(&haystack[last..]);
            out = Some(replaced);
        }
        out.map_or(bytes, Bytes::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_occurrence_of_every_secret_is_redacted() {
        let secrets = Secrets::new(["sk-live-0123456789", "short", "sk-ant-abcdefghij"]);
        let body = Bytes::from_static(
            br#"{"error":{"message":"Incorrect API key provided: sk-live-0123456789 (and sk-ant-abcdefghij, sk-live-0123456789)"}}"#,
        );
        let out = secrets.scrub(body);
        let text = std::str::from_utf8(&out).unwrap();
        assert!(!text.contains("sk-live") && !text.contains("sk-ant"), "{text}");
        assert_eq!(text.matches("[redacted]").count(), 3);
    }

    #[test]
    fn bytes_without_a_secret_are_passed_on_uncopied() {
        let secrets = Secrets::new(["sk-live-0123456789"]);
        let body = Bytes::from_static(b"{\"error\":\"overloaded\"}");
        let out = secrets.scrub(body.clone());
        assert_eq!(out.as_ptr(), body.as_ptr());
        assert_eq!(format!("{secrets:?}"), "Secrets(1 kept, never shown)");
    }
}
