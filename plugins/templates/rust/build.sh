#!/usr/bin/env bash
# Builds {{name}}.wasm next to this script. Installs the wasm32-wasip2 target if missing.
set -euo pipefail
cd "$(dirname "$0")"
# A missing tool is named, with where it comes from, before anything runs.
need() { command -v "$1" >/dev/null 2>&1 || { echo "error: '$1' is needed to build this policy: $2" >&2; exit 1; }; }
need cargo "Rust's cargo, installed with rustup"
# (Without rustup, the toolchain must already have the wasm32-wasip2 target.)
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx wasm32-wasip2; then
  rustup target add wasm32-wasip2
fi
cargo build --release --target wasm32-wasip2
cp "${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/{{crate_file}}.wasm" "{{name}}.wasm"
echo "built $(pwd)/{{name}}.wasm"
# The policy's own expectations (policy-tests.toml), when switchyard is at
# hand ($SWITCHYARD, or on PATH): a failed case fails the build.
switchyard="${SWITCHYARD:-switchyard}"
if command -v "$switchyard" >/dev/null 2>&1; then
  "$switchyard" policy test
else
  echo "(switchyard is not on PATH: run 'switchyard policy test' here to check {{name}}.wasm against policy-tests.toml)"
fi
