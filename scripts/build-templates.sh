#!/usr/bin/env bash
# Scaffolds a policy from each language's template with `switchyard new` and
# builds it with the scaffold's own ./build.sh, exactly as a plugin author
# would: target/ci-templates/<lang>-policy/<lang>-policy.wasm. The languages'
# tools are installed once under $SWITCHYARD_TOOLS (default target/tools):
# wit-bindgen-cli and wasm-tools from crates.io, componentize-py and ziglang
# from PyPI, componentize-js from npm. Needs cargo, python3 and node + npm.
# Usage: scripts/build-templates.sh [LANG...]   (default: rust c python js)
set -euo pipefail
cd "$(dirname "$0")/.."
export SWITCHYARD_TOOLS="${SWITCHYARD_TOOLS:-$PWD/target/tools}"
out="$PWD/target/ci-templates"
langs=("$@")
[ ${#langs[@]} -gt 0 ] || langs=(rust c python js)
cargo build --quiet --locked -p switchyard
# Each build.sh runs its policy-tests.toml with this binary.
export SWITCHYARD="$PWD/target/debug/switchyard"
for lang in "${langs[@]}"; do
  started=$(date +%s)
  rm -rf "$out/$lang-policy"
  ./target/debug/switchyard new "$lang-policy" --lang "$lang" --dir "$out" >/dev/null
  CARGO_TARGET_DIR="$PWD/target/scaffold-builds" "$out/$lang-policy/build.sh"
  echo "$lang: $(( $(date +%s) - started )) s"
done
