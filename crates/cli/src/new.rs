//! `switchyard new NAME --lang rust|c|python|js`: scaffolds a policy project from the
//! templates in `plugins/templates/`, embedded in the binary so no network
//! is needed beyond the language's own package registry at build time.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::EXIT_CONFIG;

/// Languages with a template.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum Lang {
    /// Rust with wit-bindgen, built for wasm32-wasip2.
    Rust,
    /// C with wit-bindgen's C generator, compiled by `zig cc` (PyPI `ziglang`),
    /// made a component by `wasm-tools component new`.
    C,
    /// Python with componentize-py.
    Python,
    /// JavaScript with componentize-js.
    Js,
}

/// The gateway's world, copied into every scaffold.
const WIT: (&str, &str) = ("wit/policy.wit", include_str!("../../../wit/policy.wit"));

macro_rules! template {
    ($lang:literal: $($path:literal),+ $(,)?) => {
        &[$(($path, include_str!(concat!("../../../plugins/templates/", $lang, "/", $path)))),+, WIT]
    };
}

/// `(path in the project, contents)`; `{{name}}`, `{{crate_name}}` and
/// `{{crate_file}}` are filled in.
type Files = &'static [(&'static str, &'static str)];

const RUST: Files =
    template!("rust": "Cargo.toml", "build.sh", "README.md", "src/lib.rs", ".gitignore", "policy-tests.toml");
const C: Files = template!("c": "policy.c", "build.sh", "README.md", ".gitignore", "policy-tests.toml");
const PYTHON: Files = template!("python": "app.py", "build.sh", "README.md", ".gitignore", "policy-tests.toml");
const JS: Files =
    template!("js": "policy.js", "package.json", "build.sh", "README.md", ".gitignore", "policy-tests.toml");

/// A policy name is its file stem: lower-case letters, digits and dashes.
fn valid_name(name: &str) -> bool {
    switchyard_policy_host::host::conventional_name(name)
}

pub(crate) fn new(name: &str, lang: Lang, parent: &Path) -> anyhow::Result<ExitCode> {
    if !valid_name(name) {
        eprintln!(
            "error: {name:?} is not a policy name: use lower-case letters, digits and dashes, starting with a letter"
        );
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    let dir = parent.join(name);
    if dir.exists() {
        eprintln!("error: {} already exists", dir.display());
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    let files = match lang {
        Lang::Rust => RUST,
        Lang::C => C,
        Lang::Python => PYTHON,
        Lang::Js => JS,
    };
    for (path, template) in files {
        let target = dir.join(path);
        std::fs::create_dir_all(target.parent().unwrap_or(&dir))
            .with_context(|| format!("creating {}", dir.display()))?;
        let text = template
            .replace("{{name}}", name)
            .replace("{{crate_name}}", name)
            .replace("{{crate_file}}", &name.replace('-', "_"));
        std::fs::write(&target, text).with_context(|| format!("writing {}", target.display()))?;
    }
    make_executable(&dir.join("build.sh"))?;
    println!("created {} ({lang:?} policy)", dir.display());
    println!("  cd {} && ./build.sh && switchyard policy check {name}.wasm", dir.display());
    println!(
        "  (./build.sh builds {name}.wasm and runs its expectations, policy-tests.toml: `switchyard policy test`)"
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(unix)]
fn make_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod {}", path.display()))
}

#[cfg(not(unix))]
fn make_executable(_path: &Path) -> anyhow::Result<()> {
    Ok(())
}
