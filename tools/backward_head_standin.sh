#!/bin/bash
# Reproduces docs/results/backward-head.md on the stand-in (METHODS §5 on a GPT-2-shaped model with
# 4 layers of width 128 and GPT-2's 50,257-token vocabulary, pretrained briefly by attnlab on the
# State of the Union text, and synthetic OpenMathInstruct-2 records: the numbers test the pipeline,
# not the method). Run from the repository root after a build:
#   tools/backward_head_standin.sh [ATTNLAB_BINARY]        (default ./build-cpu/attnlab)
# Sized to finish in ~15 minutes on 2 heavily shared CPU cores: 30 pretraining steps, 120 records,
# 8 optimizer steps of 4 records per run (the same 32 records for every run), 6 held-out records.
# Raise the sizes (train.steps, --n, --max-records) for a less noisy stand-in. Writes runs/backward-head*/, runs/eval-lm-standin/ (one JSON per
# model, comparison.md), docs/results/img/backward-head/loss_curves.png, and prints the tables.
set -euo pipefail
A=${1:-./build-cpu/attnlab}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
"$A" assets fetch
# 1. The stand-in GPT-2 (its best checkpoint is model.from of the study's files).
"$A" train experiments/backward-head/standin-gpt2-sotu.yaml train.steps=30 train.micro_batch=4 \
    schedule.warmup_steps=5 eval.every_steps=30 checkpoint.every_steps=30
# 2. Synthetic OpenMathInstruct-2 records in the upstream schema (stand-in data).
"$A" data synth openmath --n 120 --seed 1 --out runs/inputs/openmath.jsonl
# 3. The backward head and the two trained baselines, the same 8 steps of 4 records each.
for f in head full-ft lmhead-ft; do
  "$A" train "experiments/backward-head/$f.yaml" train.epochs=null train.steps=8 train.grad_accum=1 \
      schedule.warmup_steps=2 eval.every_steps=4 log.every_steps=1
done
# 4. Every model on the same held-out records (zero-shot: the stand-in as it is).
"$A" eval lm experiments/backward-head/zero-shot.yaml \
    --model zero-shot=runs/backward-head-standin-gpt2/checkpoints/best \
    --model full-ft=runs/backward-head-full-ft/checkpoints/best \
    --model lmhead-ft=runs/backward-head-lmhead-ft/checkpoints/best \
    --model backward-head=runs/backward-head/checkpoints/best \
    --max-new-tokens 24 --sampling --out runs/eval-lm-standin
# 5. Loss curves.
/usr/bin/python3 tools/plot.py \
    --metrics runs/backward-head/metrics.jsonl --label backward-head \
    --metrics runs/backward-head-full-ft/metrics.jsonl --label full-ft \
    --metrics runs/backward-head-lmhead-ft/metrics.jsonl --label lmhead-ft \
    --out docs/results/img/backward-head
# 6. Cost per token of the heads (CPU): the training throughput of the two head-only runs (same
# trunk, same data; the head is the difference) and the op benchmark against the lm_head's GEMM.
/usr/bin/python3 - <<'PY'
import json, statistics
def rate(run):
    rows = [json.loads(l) for l in open(f"runs/{run}/metrics.jsonl")]
    v = [r["tokens_per_s"] for r in rows if "tokens_per_s" in r and r.get("step", 0) > 2]
    return statistics.median(v) if v else float("nan")
h, l = rate("backward-head"), rate("backward-head-lmhead-ft")
print("| run (trunk frozen) | training tokens/s (median) | ms per 1k tokens |")
print("|---|---|---|")
for name, r in [("lm_head (untied copy) trained", l), ("backward head trained", h)]:
    print(f"| {name} | {r:.0f} | {1e6 / r:.1f} |")
print(f"\nbackward head / lm_head cost per token: {l / h:.2f}x")
PY
"$A" bench backward_head 32 50257 128 --cpu --repeats 3
"$A" bench matmul 32 50257 128 --cpu --repeats 3
cat runs/eval-lm-standin/comparison.md
