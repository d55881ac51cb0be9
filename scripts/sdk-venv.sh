#!/usr/bin/env bash
# Makes (once) the Python virtualenv with the official `openai` and
# `anthropic` SDKs the end-to-end tests use as clients, pinned in
# tests/sdk/requirements.txt, under ${SWITCHYARD_TOOLS:-target/tools}/sdk-venv.
# Prints the venv's python. Safe to run from several processes at once.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="${SWITCHYARD_TOOLS:-$root/target/tools}"
venv="$tools/sdk-venv"
requirements="$root/tests/sdk/requirements.txt"
mkdir -p "$tools"
exec 9>"$tools/.sdk-venv.lock"
flock 9
stamp="$venv/.requirements"
if [ -x "$venv/bin/python" ] && cmp -s "$requirements" "$stamp" \
   && "$venv/bin/python" -c 'import openai, anthropic' 2>/dev/null; then
  echo "$venv/bin/python"
  exit 0
fi
rm -rf "$venv"
python3 -m venv "$venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2
cp "$requirements" "$stamp"
echo "$venv/bin/python"
