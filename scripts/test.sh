#!/usr/bin/env bash
# Runs every check and test of Switchyard on a fresh machine: installs what is
# missing (the wasm32-wasip2 target; the policy templates' tools, under
# target/tools, and the official openai/anthropic SDKs the client tests use;
# cargo-nextest is used when present), builds the policy
# components in plugins/ (through the normal cargo build), lints, builds every
# policy template the way a user would, installs Debian's chromium,
# prometheus (promtool) and redis-server when missing, and runs all tests. CI calls exactly
# this script.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "toolchain"
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  rustup target add wasm32-wasip2
fi
cargo --version

step "format"
cargo fmt --all --check

step "lint (clippy, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "policy templates: scaffold and build each language (installs its tools under target/tools once)"
# Needs python3 (with venv), node + npm, and cargo; the languages' tools come
# from crates.io (wit-bindgen-cli, wasm-tools), PyPI (componentize-py,
# ziglang) and npm (componentize-js). The tests in crates/cli/tests/languages.rs
# build them again from fresh scaffolds, check them and hot-swap them in.
export SWITCHYARD_TOOLS="$PWD/target/tools"
scripts/build-templates.sh

step "official SDKs for the end-to-end client tests (openai, anthropic from PyPI, once, under target/tools)"
# tests/scenarios/official_sdks.rs drives the gateway with them; the tests would make
# the venv themselves, this only keeps the install out of their timings.
scripts/sdk-venv.sh

step "what the tests drive, from Debian's packages when missing: chromium (status page), promtool (prometheus), redis-server (shared state)"
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
chromium --version
promtool --version 2>&1 | sed -n 1p
redis-server --version

step "tests"
if command -v cargo-nextest >/dev/null 2>&1; then
  # nextest does not run doctests; run them first so the summary comes last
  cargo test --workspace --doc --locked
  cargo nextest run --workspace --locked --no-fail-fast
else
  echo "(cargo-nextest not installed: using cargo test)"
  cargo test --workspace --locked --no-fail-fast
fi
# The status page as the headless browser saw it (a CI artifact).
ls -l target/status-page.png
