#!/usr/bin/env bash
# One integrated GPU verification pass, run on the GPU machine in the repository root after
# tools/gpu/pack.sh carried .devbuild/. Each stage writes its log to $OUT/<stage>.log (OUT
# defaults to ./gpu-pass) and the pass goes on after a failing stage; the exit status says
# whether every stage passed.
#
#   bash tools/gpu/pass.sh tests parity train      # the plain test run, HF parity, training runs
#   bash tools/gpu/pass.sh sanitize bench          # compute-sanitizer, every benchmark, vs PyTorch
#
# Stages:
#   tests     attnlab_gpu_tests (JUnit XML too), then the CPU suite's tests that use the GPU path
#   parity    HF goldens (tools/make_hf_goldens.py) + hf_parity tests; attnlab <-> transformers round trip
#   train     quickstart on the GPU; GPT-2 124M (bf16, f32 masters) for 40 steps: tokens/s and MFU
#   sanitize  compute-sanitizer memcheck on every GPU test, racecheck on the shared-memory kernels
#   bench     ops (below), attention vs PyTorch eager/SDPA (CSV), generation tokens/s
#   ops       attnlab bench for each op (BENCH_OPS to choose), one CSV
#   nccl      GPT-2 124M, 40 steps, three ways: single-process communicator, NCCL at world size 1
#             (torchrun-style env, loopback rendezvous), NCCL + ZeRO-1: the NCCL path's overhead
#
# STAGE_TIMEOUT (seconds, default 400) bounds every command, so one hang cannot eat the call.
set -uo pipefail
cd "$(dirname "$0")/../.."
source tools/gpu/env.sh
OUT=${OUT:-$PWD/gpu-pass}
mkdir -p "$OUT"
status=0
stage() {  # stage NAME COMMAND...: run, log, remember failure
  local name=$1; shift
  echo "=== $name: $*" | tee -a "$OUT/$name.log"
  local t0=$SECONDS
  if ! timeout "${STAGE_TIMEOUT:-400}" "$@" 2>&1 | tee -a "$OUT/$name.log"; then status=1; echo "=== $name FAILED" | tee -a "$OUT/$name.log"; fi
  echo "=== $name took $((SECONDS - t0)) s" | tee -a "$OUT/$name.log"
}
# One op at a time (BENCH_OPS, default every entry but generate), so a time-out costs one op.
bench_ops() {
  local ops=${BENCH_OPS:-$(attnlab bench --list | awk '$1 != "generate" {print $1}')}
  for op in $ops; do stage bench attnlab bench "$op" --csv "/tmp/bench_$op.csv"; done
  for op in $ops; do [[ -f /tmp/bench_$op.csv ]] && cat "/tmp/bench_$op.csv"; done | awk 'NR == 1 || !/^op,/' > "$OUT/bench.csv"
}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$OUT/device.txt" 2>&1
attnlab info >> "$OUT/device.txt" 2>&1
for s in "$@"; do
  case $s in
    tests)
      stage tests attnlab_gpu_tests --gtest_output=xml:"$OUT/gpu_tests.xml"
      ;;
    parity)
      stage parity python3 tools/make_hf_goldens.py
      stage parity attnlab_tests --gtest_filter='*HfParity*'
      stage parity python3 tools/hf_roundtrip.py .devbuild/bin/attnlab
      tar -czf "$OUT/hf_goldens.tar.gz" tests/goldens/hf
      ;;
    train)
      stage train attnlab train experiments/quickstart.yaml run.out_dir=/tmp/runs
      stage train attnlab train experiments/gpt2-124m-sotu.yaml run.out_dir=/tmp/runs train.steps=40 schedule.warmup_steps=10 \
        eval.every_steps=40 eval.batches=4 checkpoint.every_steps=40 log.every_steps=5
      ;;
    sanitize)
      stage sanitize compute-sanitizer --tool memcheck --error-exitcode 3 attnlab_gpu_tests \
        --gtest_filter='-*Large*:*Sweep*:TrainerGpu.*:NcclGpu.*'  # the trainer/NCCL cases reuse these kernels
      stage sanitize compute-sanitizer --tool racecheck --error-exitcode 3 attnlab_gpu_tests \
        --gtest_filter='*LayerNorm*:*RmsNorm*:*Embedding*:*CrossEntropy*:*GradNorm*:*Sampling*:*Attention*MatchesCpu/0*:*Attention*MatchesCpu/1*-*DrawFrequencies*'
      ;;
    bench)
      bench_ops
      stage bench attnlab bench generate 1 128 256
      stage bench attnlab bench generate 32 128 256
      stage bench python3 tools/attention_vs_torch.py .devbuild/bin/attnlab --csv "$OUT/vs_torch.csv"
      ;;
    nccl)
      local_run=(attnlab train experiments/gpt2-124m-sotu.yaml run.out_dir=/tmp/runs-nccl train.steps=40 schedule.warmup_steps=10
        eval.every_steps=1000 checkpoint.every_steps=1000 log.every_steps=5)
      launcher=(env RANK=0 WORLD_SIZE=1 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=29517)
      stage nccl "${local_run[@]}" run.name=single distributed.backend=none
      stage nccl "${launcher[@]}" "${local_run[@]}" run.name=nccl distributed.backend=nccl
      stage nccl "${launcher[@]}" "${local_run[@]}" run.name=nccl-zero1 distributed.backend=nccl distributed.zero1=true
      ;;
    ops) bench_ops ;;
    *) echo "unknown stage '$s' (tests, parity, train, sanitize, bench, ops, nccl)"; status=2 ;;
  esac
done
exit $status
