#!/usr/bin/env bash
# One device call for the fused attention kernels (cuda/attention_fused*.cu, issue 19), run on the
# GPU machine in the repository root after tools/gpu/pack.sh carried .devbuild/ (build with the
# CUDA preset first: attnlab, attnlab_tests, attnlab_gpu_tests). Every stage logs to
# $OUT/fused_<stage>.log and the pass goes on after a failing stage; the exit status says whether
# every stage passed. Sized for one call of a few minutes:
#   tests      the fused GPU tests (vs CPU f64, vs GPU materialized, backward twice bit for bit,
#              the op contract; the tensor-core path's AttentionFusedMmaGpu: vs CPU f64, vs the warp
#              kernels, determinism, path query), JUnit XML in $OUT/fused_gpu_tests.xml
#   memcheck   compute-sanitizer memcheck on the small fused cases (both dtypes)
#   racecheck  compute-sanitizer racecheck on the same cases (the kernels share K/V/dK/dV tiles)
#   bench      attnlab bench attention --impl both: d 64 T 1024 with every variant, per-row controllers
#              and the statistics captures' overhead (variants 3), d 128 T 4096 with every variant
#   torch      tools/attention_vs_torch.py (SDPA, FlexAttention, eager) when torch is installed
#
#   OUT=/tmp/out bash tools/gpu/fused_pass.sh              # every stage
#   bash tools/gpu/fused_pass.sh tests memcheck racecheck  # chosen stages
# STAGE_TIMEOUT (seconds, default 240) bounds every command.
set -uo pipefail
cd "$(dirname "$0")/../.."
source tools/gpu/env.sh
OUT=${OUT:-$PWD/gpu-pass}
mkdir -p "$OUT"
status=0
stage() {  # stage NAME COMMAND...: run, log, remember failure
  local name=$1; shift
  echo "=== $name: $*" | tee -a "$OUT/fused_$name.log"
  local t0=$SECONDS
  if ! timeout "${STAGE_TIMEOUT:-240}" "$@" 2>&1 | tee -a "$OUT/fused_$name.log"; then
    status=1; echo "=== $name FAILED" | tee -a "$OUT/fused_$name.log"
  fi
  echo "=== $name took $((SECONDS - t0)) s" | tee -a "$OUT/fused_$name.log"
}
small='*AttentionFusedGpu*T7*:*AttentionFusedGpu*Offset*:*AttentionFusedGpu*RampCapDv2d*:*AttentionFusedGpu*DecodeCtrl*'
# the tensor-core kernels (bf16 only) on their small cases, the Matches* tests (the path query costs nothing)
small+=':*AttentionFusedMmaGpu.MatchesCpu*/mhaT7d128:*AttentionFusedMmaGpu.MatchesCpu*/tinyT1S1'
small+=':*AttentionFusedMmaGpu.MatchesWarp*/nonCausalPrime:*AttentionFusedMmaGpu.MatchesCpu*/decodeGqaPadD128'
small+=':*AttentionFusedMmaGpu.MatchesCpu*/linearMhaT7d128:*AttentionFusedMmaGpu.MatchesCpu*/linearDecodePadD128'
small+=':*AttentionFusedMmaGpu.MatchesCpu*/rampMhaT7d128:*AttentionFusedMmaGpu.MatchesCpu*/rampDecodeCtrlD128'
stages=("$@")
[[ ${#stages[@]} -eq 0 ]] && stages=(tests memcheck racecheck bench torch)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$OUT/fused_device.txt" 2>&1
for s in "${stages[@]}"; do
  case $s in
    tests) stage tests attnlab_gpu_tests --gtest_filter='*AttentionFused*' --gtest_output=xml:"$OUT/fused_gpu_tests.xml" ;;
    memcheck) stage memcheck compute-sanitizer --tool memcheck --error-exitcode 3 attnlab_gpu_tests --gtest_filter="$small" ;;
    racecheck) stage racecheck compute-sanitizer --tool racecheck --error-exitcode 3 attnlab_gpu_tests --gtest_filter="$small" ;;
    bench)
      stage bench attnlab bench attention 64 1024 3 --impl both --csv "$OUT/fused_bench_64_1024.csv"
      stage bench attnlab bench attention 128 4096 1 --impl both --csv "$OUT/fused_bench_128_4096.csv"
      ;;
    torch)
      if python3 -c 'import torch' 2>/dev/null; then
        stage torch python3 tools/attention_vs_torch.py .devbuild/bin/attnlab --shapes 64x1024,128x4096 --repeats 10 \
          --csv "$OUT/fused_vs_torch.csv"
      else
        echo "torch is not installed on this machine: attention_vs_torch.py skipped" | tee -a "$OUT/fused_torch.log"
      fi
      ;;
    *) echo "unknown stage '$s' (tests, memcheck, racecheck, bench, torch)"; status=2 ;;
  esac
done
exit $status
