#!/usr/bin/env bash
# The main job: installs what is missing, builds, then runs attnlab on the GPU when one is usable
# (else on the CPU): `attnlab info`, then verified benchmarks of the core ops.
set -euo pipefail
cd "$(dirname "$0")/.."
preset=$(bash tools/setup.sh)
export PATH=/usr/local/cuda/bin:$PATH
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" --target attnlab
bin=build/attnlab
[[ $preset == cpu ]] && bin=build-cpu/attnlab
"$bin" info
if "$bin" bench --list | grep -q '^matmul'; then
  "$bin" bench matmul 1024 1024 1024
fi
"$bin" bench residual
