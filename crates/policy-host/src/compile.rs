//! Turning `.wasm` bytes into a checked, pre-linked component: compile (or
//! load from the on-disk cache), refuse imports outside WASI and the policy
//! world, and pre-instantiate.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use crate::PolicyError;
use crate::bindings::{POLICY_IMPORTS, PolicyPre};
use crate::engine::PolicyEngine;

/// A component ready to instantiate.
pub(crate) struct Compiled {
    pub pre: PolicyPre<crate::state::PolicyState>,
    pub from_cache: bool,
}

/// Hex sha256 of a policy file.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn check_header(bytes: &[u8]) -> Result<(), PolicyError> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 0x0d, 0, 1, 0]) => Ok(()),
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => Err(PolicyError::Compile(
            "this is a core wasm module, not a component: build for wasm32-wasip2, or wrap it with `wasm-tools component new`".into(),
        )),
        _ => Err(PolicyError::Compile("not a WebAssembly file (no `\\0asm` header)".into())),
    }
}

fn cache_path(engine: &wasmtime::Engine, cache_dir: &Path, sha: &str) -> PathBuf {
    let mut h = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    cache_dir.join(format!("{sha}-{:016x}.cwasm", h.finish()))
}

/// Loads a compiled artifact this engine wrote earlier.
#[allow(unsafe_code)]
fn load_cached(engine: &wasmtime::Engine, path: &Path) -> Option<Component> {
    if !path.exists() {
        return None;
    }
    // SAFETY: wasmtime requires the file to be an artifact produced by
    // `Component::serialize` of a compatible engine. Only this function's
    // sibling `compile` writes files in the cache directory (atomically, by
    // rename), names them by the source's sha256 and the engine's
    // compatibility hash, and wasmtime itself rejects artifacts of another
    // version or configuration.
    match unsafe { Component::deserialize_file(engine, path) } {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(path = %path.display(), "ignoring unusable compiled-policy cache entry: {e}");
            None
        }
    }
}

fn store_cached(component: &Component, path: &Path) {
    let Ok(bytes) = component.serialize() else { return };
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&tmp, &bytes))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        tracing::debug!(path = %path.display(), "could not cache a compiled policy: {e}");
    }
    if let Some(dir) = path.parent() {
        prune_cache(dir, CACHE_KEEP);
    }
}

/// Compiled artifacts kept in the cache; older ones are removed.
const CACHE_KEEP: usize = 32;

/// Keeps the `keep` most recently written artifacts of `dir`.
fn prune_cache(dir: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut artifacts: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .collect();
    if artifacts.len() <= keep {
        return;
    }
    artifacts.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    for (_, old) in artifacts.drain(keep..) {
        let _ = std::fs::remove_file(old);
    }
}

/// The version of the policy world this gateway speaks (`0.3.0`).
pub fn world_version() -> &'static str {
    POLICY_IMPORTS[0].rsplit_once('@').map_or("", |(_, v)| v)
}

fn check_imports(engine: &wasmtime::Engine, component: &Component) -> Result<(), PolicyError> {
    for (name, _) in component.component_type().imports(engine) {
        // An interface of the policy world at another version: say so, not "forbidden".
        if let Some(found) = name.strip_prefix("switchyard:policy/").and_then(|rest| rest.split_once('@'))
            && !POLICY_IMPORTS.contains(&name)
        {
            return Err(PolicyError::WorldVersion { found: found.1.to_owned(), expected: world_version().to_owned() });
        }
    }
    for (name, import) in component.component_type().imports(engine) {
        let is_instance = matches!(import.ty, ComponentItem::ComponentInstance(_));
        if !(is_instance && (POLICY_IMPORTS.contains(&name) || name.starts_with("wasi:"))) {
            return Err(PolicyError::ForbiddenImport(format!("`{name}`")));
        }
    }
    Ok(())
}

/// Compiles (or loads from `cache_dir`), checks imports, links and checks the
/// exports against the policy world. Blocking: call from a blocking task.
pub(crate) fn compile(
    engine: &PolicyEngine,
    bytes: &[u8],
    sha: &str,
    cache_dir: Option<&Path>,
) -> Result<Compiled, PolicyError> {
    check_header(bytes)?;
    let cache_file = cache_dir.map(|dir| cache_path(&engine.engine, dir, sha));
    let cached = cache_file.as_deref().and_then(|p| load_cached(&engine.engine, p));
    let from_cache = cached.is_some();
    let component = match cached {
        Some(c) => c,
        None => {
            let c = Component::new(&engine.engine, bytes).map_err(|e| PolicyError::Compile(format!("{e:#}")))?;
            if let Some(path) = &cache_file {
                store_cached(&c, path);
            }
            c
        }
    };
    check_imports(&engine.engine, &component)?;
    let instance_pre =
        engine.linker.instantiate_pre(&component).map_err(|e| PolicyError::WrongWorld(format!("{e:#}")))?;
    let pre = PolicyPre::new(instance_pre).map_err(|e| PolicyError::WrongWorld(format!("{e:#}")))?;
    Ok(Compiled { pre, from_cache })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_keeps_only_the_newest_artifacts() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..5 {
            std::fs::write(dir.path().join(format!("{i}.cwasm")), b"x").unwrap();
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::fs::write(dir.path().join("keep.txt"), b"x").unwrap();
        prune_cache(dir.path(), 2);
        let mut left: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, ["3.cwasm", "4.cwasm", "keep.txt"]);
    }

    #[test]
    fn headers_say_what_the_file_is() {
        assert!(
            matches!(check_header(b"hello world"), Err(PolicyError::Compile(m)) if m.contains("not a WebAssembly file"))
        );
        assert!(
            matches!(check_header(b"\0asm\x01\0\0\0"), Err(PolicyError::Compile(m)) if m.contains("core wasm module"))
        );
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_ok());
    }
}
