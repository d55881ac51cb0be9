#!/usr/bin/env bash
# Builds {{name}}.wasm next to this script with componentize-py, installed
# from PyPI into a virtualenv if missing, in the machine's shared tools
# cache ($SWITCHYARD_TOOLS, default ~/.cache/switchyard/tools; one folder per
# tool version, used by every policy project).
set -euo pipefail
cd "$(dirname "$0")"
COMPONENTIZE_PY_VERSION=0.25.1
# componentize-py snapshots the interpreter after running the module, with
# live randomness, so the same source gives other bytes each build (and a new
# version label, and a compile-cache miss in the gateway). Same inputs: the
# file already built is kept, byte for byte.
inputs="$( (echo "componentize-py $COMPONENTIZE_PY_VERSION"; cat build.sh; find . -mindepth 1 \( -name '.*' -o -name node_modules -o -name __pycache__ \) -prune -o -type f \( -name '*.py' -o -name '*.wit' \) -print | LC_ALL=C sort | xargs sha256sum) | sha256sum | cut -d' ' -f1)"
stamp=".{{name}}.wasm.inputs"
if [ -f "{{name}}.wasm" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$inputs $(sha256sum < "{{name}}.wasm" | cut -d' ' -f1)" ]; then
  echo "{{name}}.wasm is up to date (same sources, same componentize-py): kept"
else
  # A missing tool is named, with where it comes from, before anything runs.
  command -v python3 >/dev/null 2>&1 || { echo "error: 'python3' is needed to build this policy: Python 3.10 or later with its venv module (Debian: apt-get install python3 python3-venv)" >&2; exit 1; }
  tools="${SWITCHYARD_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/switchyard/tools}"
  venv="$tools/python-$COMPONENTIZE_PY_VERSION"
  # (A virtualenv moved or copied from elsewhere does not run: make it again.)
  if ! "$venv/bin/componentize-py" --version >/dev/null 2>&1; then
    echo "installing componentize-py $COMPONENTIZE_PY_VERSION into $venv (once per machine)" >&2
    python3 -m venv --clear "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY_VERSION"
  fi
  "$venv/bin/componentize-py" --wit-path wit --world policy componentize app --output "{{name}}.wasm"
  echo "$inputs $(sha256sum < "{{name}}.wasm" | cut -d' ' -f1)" > "$stamp"
  echo "built $(pwd)/{{name}}.wasm"
fi
# The policy's own expectations (policy-tests.toml), when switchyard is at
# hand ($SWITCHYARD, or on PATH): a failed case fails the build.
switchyard="${SWITCHYARD:-switchyard}"
if command -v "$switchyard" >/dev/null 2>&1; then
  "$switchyard" policy test
else
  echo "(switchyard is not on PATH: run 'switchyard policy test' here to check {{name}}.wasm against policy-tests.toml)"
fi
