#!/usr/bin/env bash
# Builds {{name}}.wasm next to this script: `wit-bindgen c` generates the
# bindings into gen/, `zig cc` (from PyPI's ziglang) compiles them with
# policy.c for wasm32-wasi, `wasm-tools component new` makes the component.
# Installs what is missing into the machine's shared tools cache
# ($SWITCHYARD_TOOLS, default ~/.cache/switchyard/tools; one folder per tool
# version, used by every policy project): wit-bindgen-cli and wasm-tools
# with cargo, ziglang with pip.
set -euo pipefail
cd "$(dirname "$0")"
# A missing tool is named, with where it comes from, before anything runs.
need() { command -v "$1" >/dev/null 2>&1 || { echo "error: '$1' is needed to build this policy: $2" >&2; exit 1; }; }
need python3 "Python 3.10 or later with its venv module, for zig from PyPI (Debian: apt-get install python3 python3-venv)"
WIT_BINDGEN_VERSION=0.63.0
WASM_TOOLS_VERSION=1.263.0
ZIG_VERSION=0.17.1
tools="${SWITCHYARD_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/switchyard/tools}"
mkdir -p "$tools"
tools="$(cd "$tools" && pwd)"

cargo_tool() { # binary crate version features
  local root="$tools/cargo-$1-$3-${4//,/-}"
  local bin="$root/bin/$1"
  if [ ! -x "$bin" ]; then
    command -v cargo >/dev/null || { echo "error: $2 is installed with cargo: get it from https://rustup.rs" >&2; exit 1; }
    echo "installing $2 $3 into $tools (once; takes a few minutes)" >&2
    cargo install --quiet --locked --root "$root" "$2" --version "$3" \
      --no-default-features --features "$4" >&2
  fi
  echo "$bin"
}
wit_bindgen="$(cargo_tool wit-bindgen wit-bindgen-cli "$WIT_BINDGEN_VERSION" c)"
wasm_tools="$(cargo_tool wasm-tools wasm-tools "$WASM_TOOLS_VERSION" component,validate,strip)"
zig_venv="$tools/ziglang-$ZIG_VERSION"
if [ ! -x "$zig_venv/bin/python" ] || ! "$zig_venv/bin/python" -m ziglang version >/dev/null 2>&1; then
  python3 -m venv --clear "$zig_venv"
  "$zig_venv/bin/pip" install --quiet --disable-pip-version-check "ziglang==$ZIG_VERSION"
fi

rm -rf gen
"$wit_bindgen" c wit --world policy --out-dir gen >/dev/null 2>&1
mkdir -p gen/build
# A reactor (no main); the policy world's exports are the entry points.
"$zig_venv/bin/python" -m ziglang cc -target wasm32-wasi -mexec-model=reactor -O2 -Wl,-z,stack-size=1048576 -Wall -Werror \
  -o gen/build/core.wasm policy.c gen/policy.c gen/policy_component_type.o
# Debug info out (~900 KiB), the name section kept (~1.5 KiB): a trap names
# the policy's functions.
"$wasm_tools" strip gen/build/core.wasm -o gen/build/core.stripped.wasm
"$wasm_tools" component new gen/build/core.stripped.wasm -o "{{name}}.wasm"
"$wasm_tools" validate "{{name}}.wasm"
echo "built $(pwd)/{{name}}.wasm"
# The policy's own expectations (policy-tests.toml), when switchyard is at
# hand ($SWITCHYARD, or on PATH): a failed case fails the build.
switchyard="${SWITCHYARD:-switchyard}"
if command -v "$switchyard" >/dev/null 2>&1; then
  "$switchyard" policy test
else
  echo "(switchyard is not on PATH: run 'switchyard policy test' here to check {{name}}.wasm against policy-tests.toml)"
fi
