#!/usr/bin/env bash
# Builds {{name}}.wasm next to this script with componentize-js, installed
# from npm into node_modules/ if missing (needs node 18 or later).
set -euo pipefail
cd "$(dirname "$0")"
# A missing tool is named, with where it comes from, before anything runs.
need() { command -v "$1" >/dev/null 2>&1 || { echo "error: '$1' is needed to build this policy: $2" >&2; exit 1; }; }
need node "node 18 or later (Debian: apt-get install nodejs npm)"
need npm "npm, which comes with node (Debian: apt-get install npm)"
if [ ! -x node_modules/.bin/componentize-js ]; then
  npm install --no-audit --no-fund --loglevel=error
fi
npm run --silent build
echo "built $(pwd)/{{name}}.wasm"
# The policy's own expectations (policy-tests.toml), when switchyard is at
# hand ($SWITCHYARD, or on PATH): a failed case fails the build.
switchyard="${SWITCHYARD:-switchyard}"
if command -v "$switchyard" >/dev/null 2>&1; then
  "$switchyard" policy test
else
  echo "(switchyard is not on PATH: run 'switchyard policy test' here to check {{name}}.wasm against policy-tests.toml)"
fi
