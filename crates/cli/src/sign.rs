//! `switchyard policy keygen` and `switchyard policy sign`: the author's
//! side of signed policies (see `switchyard_policy_host::signature`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use switchyard_policy_host::signature;

use crate::EXIT_CONFIG;

/// Writes a new signing key to `out` (owner-only) and prints its public key.
pub(crate) fn keygen(out: &Path) -> anyhow::Result<ExitCode> {
    if out.exists() {
        eprintln!("error: {} exists; a signing key is never overwritten", out.display());
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    let (secret, public) = signature::new_key().map_err(anyhow::Error::msg)?;
    write_secret(out, &secret).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("Signing key written to {} (keep it secret). Trust it in the gateway's config:\n", out.display());
    say!("[policy]\ntrusted_keys = [{:?}]", public.to_text());
    Ok(ExitCode::SUCCESS)
}

#[cfg(unix)]
fn write_secret(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(bytes)
}

#[cfg(not(unix))]
fn write_secret(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// Signs `file` with the key in `key`: writes `FILE.wasm.sig`.
pub(crate) fn sign(file: &Path, key: &Path) -> anyhow::Result<ExitCode> {
    if file.extension().is_none_or(|e| e != "wasm") {
        eprintln!("error: {} is not a .wasm policy", file.display());
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    let secret = std::fs::read(key).with_context(|| format!("reading the signing key {}", key.display()))?;
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let text = match signature::sign(&secret, &bytes) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}: {e}", key.display());
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    let public = signature::public_key(&secret).map_err(anyhow::Error::msg)?;
    let out = signature::signature_path(file);
    std::fs::write(&out, text).with_context(|| format!("writing {}", out.display()))?;
    say!("signed {} with {}: {}", file.display(), public.to_text(), out.display());
    say!("(copy both files into the policy folder; the signature first, or within the same rescan)");
    Ok(ExitCode::SUCCESS)
}
