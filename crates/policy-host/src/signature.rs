//! Signed policies: with `[policy] trusted_keys` set, a policy file loads
//! only when `NAME.wasm.sig` beside it holds an Ed25519 signature of the
//! file's bytes by one of those keys (`switchyard policy sign`). A public
//! key is written `ed25519:<base64 of its 32 bytes>`; a signature file is
//! the base64 of the 64-byte signature. Embedded policies are part of the
//! binary and need none.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

/// How a public key is written in the config.
const PREFIX: &str = "ed25519:";

/// A public key trusted to sign policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey([u8; 32]);

impl TrustedKey {
    /// Parses `ed25519:<base64>`.
    pub fn parse(text: &str) -> Result<TrustedKey, String> {
        let encoded = text
            .trim()
            .strip_prefix(PREFIX)
            .ok_or_else(|| format!("{text:?} is not a public key written \"ed25519:<base64>\""))?;
        let bytes = STANDARD.decode(encoded).map_err(|e| format!("{text:?}: not base64: {e}"))?;
        let key: [u8; 32] =
            bytes.try_into().map_err(|b: Vec<u8>| format!("{text:?}: {} bytes, an Ed25519 key has 32", b.len()))?;
        Ok(TrustedKey(key))
    }

    /// `ed25519:<base64>`.
    pub fn to_text(&self) -> String {
        format!("{PREFIX}{}", STANDARD.encode(self.0))
    }
}

/// Where the signature of `policy` lives: `NAME.wasm.sig`.
pub fn signature_path(policy: &Path) -> PathBuf {
    let mut name = policy.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}

/// A new signing key: its PKCS#8 document (keep it secret) and its public key.
pub fn new_key() -> Result<(Vec<u8>, TrustedKey), String> {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| "the system's random source failed".to_owned())?;
    let public = public_key(pkcs8.as_ref())?;
    Ok((pkcs8.as_ref().to_vec(), public))
}

/// The public key of a PKCS#8 signing key.
pub fn public_key(pkcs8: &[u8]) -> Result<TrustedKey, String> {
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|e| format!("not an Ed25519 key (PKCS#8): {e}"))?;
    let bytes: [u8; 32] = pair.public_key().as_ref().try_into().map_err(|_| "a public key of the wrong size")?;
    Ok(TrustedKey(bytes))
}

/// The signature file's text for `bytes` signed with the PKCS#8 key.
pub fn sign(pkcs8: &[u8], bytes: &[u8]) -> Result<String, String> {
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|e| format!("not an Ed25519 key (PKCS#8): {e}"))?;
    Ok(STANDARD.encode(pair.sign(bytes).as_ref()) + "\n")
}

/// Whether `signature` (a signature file's text) signs `bytes` by one of
/// `keys`; `Err` says why not, for the refusal.
pub fn verify(keys: &[TrustedKey], bytes: &[u8], signature: &str) -> Result<(), String> {
    let sig = STANDARD.decode(signature.trim()).map_err(|e| format!("the signature file is not base64 ({e})"))?;
    if keys.iter().any(|k| UnparsedPublicKey::new(&ED25519, k.0).verify(bytes, &sig).is_ok()) {
        Ok(())
    } else {
        Err(format!(
            "its signature does not verify with any of the {} trusted key(s): signed with another key, or the file changed after signing",
            keys.len()
        ))
    }
}

/// The check a policy file passes before it loads when keys are trusted.
pub(crate) async fn check_file(keys: &[TrustedKey], path: &Path, bytes: &[u8]) -> Result<(), String> {
    let sig_path = signature_path(path);
    let signature = match tokio::fs::read_to_string(&sig_path).await {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "it is not signed: [policy] trusted_keys is set and there is no {} (sign it with `switchyard policy sign`)",
                sig_path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
            ));
        }
        Err(e) => return Err(format!("{}: {e}", sig_path.display())),
    };
    verify(keys, bytes, &signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_with_its_key_only_and_only_for_the_bytes_signed() {
        let (secret, public) = new_key().unwrap();
        let (_, stranger) = new_key().unwrap();
        let sig = sign(&secret, b"policy bytes").unwrap();
        assert_eq!(verify(std::slice::from_ref(&public), b"policy bytes", &sig), Ok(()));
        assert_eq!(verify(&[stranger.clone(), public.clone()], b"policy bytes", &sig), Ok(()), "any trusted key");
        assert!(verify(&[stranger], b"policy bytes", &sig).unwrap_err().contains("does not verify"));
        assert!(
            verify(std::slice::from_ref(&public), b"policy bytes!", &sig)
                .unwrap_err()
                .contains("changed after signing")
        );
        assert!(verify(std::slice::from_ref(&public), b"policy bytes", "%%%").unwrap_err().contains("not base64"));
        assert_eq!(TrustedKey::parse(&public.to_text()), Ok(public));
    }

    #[test]
    fn a_public_key_must_be_written_as_the_config_expects() {
        assert!(TrustedKey::parse("AAAA").unwrap_err().contains("ed25519:<base64>"));
        assert!(TrustedKey::parse("ed25519:AAAA").unwrap_err().contains("3 bytes, an Ed25519 key has 32"));
        assert_eq!(signature_path(Path::new("/p/my-policy.wasm")), PathBuf::from("/p/my-policy.wasm.sig"));
    }
}
