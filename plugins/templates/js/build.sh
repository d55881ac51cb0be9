#!/usr/bin/env bash
# Builds {{name}}.wasm next to this script with componentize-js, installed
# from npm into node_modules/ if missing (needs node 18 or later).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x node_modules/.bin/componentize-js ]; then
  npm install --no-audit --no-fund --loglevel=error
fi
npm run --silent build
echo "built $(pwd)/{{name}}.wasm"
