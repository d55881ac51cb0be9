#!/usr/bin/env bash
# Builds {{name}}.wasm next to this script with componentize-py, installed
# from PyPI into a virtualenv if missing ($SWITCHYARD_TOOLS, default .tools/).
set -euo pipefail
cd "$(dirname "$0")"
# A missing tool is named, with where it comes from, before anything runs.
need() { command -v "$1" >/dev/null 2>&1 || { echo "error: '$1' is needed to build this policy: $2" >&2; exit 1; }; }
need python3 "Python 3.10 or later with its venv module (Debian: apt-get install python3 python3-venv)"
COMPONENTIZE_PY_VERSION=0.25.1
tools="${SWITCHYARD_TOOLS:-$PWD/.tools}"
venv="$tools/python-$COMPONENTIZE_PY_VERSION"
# (A virtualenv moved or copied from elsewhere does not run: make it again.)
if ! "$venv/bin/componentize-py" --version >/dev/null 2>&1; then
  python3 -m venv --clear "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY_VERSION"
fi
"$venv/bin/componentize-py" --wit-path wit --world policy componentize app --output "{{name}}.wasm"
echo "built $(pwd)/{{name}}.wasm"
# The policy's own expectations (policy-tests.toml), when switchyard is at
# hand ($SWITCHYARD, or on PATH): a failed case fails the build.
switchyard="${SWITCHYARD:-switchyard}"
if command -v "$switchyard" >/dev/null 2>&1; then
  "$switchyard" policy test
else
  echo "(switchyard is not on PATH: run 'switchyard policy test' here to check {{name}}.wasm against policy-tests.toml)"
fi
