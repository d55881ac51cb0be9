#!/usr/bin/env bash
# Builds {{name}}.wasm next to this script with componentize-js, installed
# from npm if missing into the machine's shared tools cache
# ($SWITCHYARD_TOOLS, default ~/.cache/switchyard/tools; one folder per tool
# version, used by every policy project: no node_modules per project).
set -euo pipefail
cd "$(dirname "$0")"
COMPONENTIZE_JS_VERSION=0.23.0
# componentize-js snapshots the JavaScript engine after running the module,
# so the same source gives other bytes each build (and a new version label,
# and a compile-cache miss in the gateway). Same inputs: the file already
# built is kept, byte for byte.
inputs="$( (echo "componentize-js $COMPONENTIZE_JS_VERSION"; cat build.sh; find . -mindepth 1 \( -name '.*' -o -name node_modules -o -name __pycache__ \) -prune -o -type f \( -name '*.js' -o -name '*.wit' \) -print | LC_ALL=C sort | xargs sha256sum) | sha256sum | cut -d' ' -f1)"
stamp=".{{name}}.wasm.inputs"
if [ -f "{{name}}.wasm" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$inputs $(sha256sum < "{{name}}.wasm" | cut -d' ' -f1)" ]; then
  echo "{{name}}.wasm is up to date (same sources, same componentize-js): kept"
else
  # A missing tool is named, with where it comes from, before anything runs.
  need() { command -v "$1" >/dev/null 2>&1 || { echo "error: '$1' is needed to build this policy: $2" >&2; exit 1; }; }
  need node "node 18 or later (Debian: apt-get install nodejs npm)"
  need npm "npm, which comes with node (Debian: apt-get install npm)"
  # A syntax error with its file, line and reason (componentize-js only counts them).
  find . -mindepth 1 \( -name '.*' -o -name node_modules \) -prune -o -type f -name '*.js' -print0 | xargs -0 -n1 node --check
  tools="${SWITCHYARD_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/switchyard/tools}"
  prefix="$tools/componentize-js-$COMPONENTIZE_JS_VERSION"
  componentize_js="$prefix/node_modules/.bin/componentize-js"
  if [ ! -x "$componentize_js" ]; then
    echo "installing componentize-js $COMPONENTIZE_JS_VERSION into $prefix (once per machine)" >&2
    mkdir -p "$prefix"
    npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error --no-save \
      "@bytecodealliance/componentize-js@$COMPONENTIZE_JS_VERSION"
  fi
  "$componentize_js" policy.js --wit wit --world-name policy --disable http fetch-event --out "{{name}}.wasm"
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
