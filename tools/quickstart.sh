#!/usr/bin/env bash
# The main job: installs what is missing, builds, prints `attnlab info`, fills the asset cache
# (tokenizers and public-domain text), then trains the quickstart GPT of
# experiments/quickstart.yaml: on the GPU when one is usable, else on the CPU, where the loss
# falls visibly within 3 minutes on 2 cores. Extra arguments go to `attnlab train` as overrides
# (e.g. `bash tools/quickstart.sh train.steps=1000 run.name=longer`); running it again resumes
# the run from its latest checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
preset=$(bash tools/setup.sh)
export PATH=/usr/local/cuda/bin:$PATH
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" --target attnlab
bin=build/attnlab
[[ $preset == cpu ]] && bin=build-cpu/attnlab
"$bin" info
"$bin" assets fetch
# Between parallel regions OpenMP's idle threads spin, and on a small CPU they then take the cores
# from OpenBLAS's own GEMM threads (4x slower training steps measured on 2 busy cores). Sleeping
# idle threads avoid that.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}  # attnlab also sets it itself (tools/attnlab/main.cpp)
"$bin" train experiments/quickstart.yaml "$@"
