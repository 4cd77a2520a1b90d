#!/usr/bin/env bash
# Installs what is missing, configures, builds and runs every test (GPU tests skip themselves,
# with the reason, on a machine without a usable GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
preset=$(bash tools/setup.sh)
export PATH=/usr/local/cuda/bin:$PATH
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset"
bash tools/fetch_assets_if_possible.sh "$preset"
ctest --preset "$preset" "$@"
