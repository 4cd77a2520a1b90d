#!/bin/bash
# The two-pass study (METHODS §1, docs/results/two-pass.md) end to end on stand-ins: a random
# 2-layer Qwen2.5-shaped model (real vocabulary) and synthetic OpenR1-Math / GSM8K records in the
# upstream schemas. The numbers test the pipeline, not the method. Run from the repository root
# after a build:
#   tools/two_pass_standin.sh [ATTNLAB_BINARY] [STEPS]      (defaults ./build-cpu/attnlab, 8)
# Writes runs/two-pass-standin/: the two SFT runs (plain and two-pass, the same recipe with a short
# schedule and a stand-in learning rate, see STANDIN below), the GSM8K CSV of both, the chat gate
# analysis, and the figures (tools/plot_two_pass.py).
set -euo pipefail
A=${1:-./build-cpu/attnlab}
STEPS=${2:-8}
OUT=runs/two-pass-standin
MODEL=runs/inputs/qwen2-tiny
mkdir -p "$OUT" runs/inputs
[ -f "$MODEL/config.json" ] || "$A" init --arch qwen2 --tiny --out "$MODEL"
[ -f runs/inputs/openr1.jsonl ] || "$A" data synth openr1 --n 200 --seed 1 --out runs/inputs/openr1.jsonl
[ -f "$OUT/gsm8k.jsonl" ] || "$A" data synth gsm8k --n 20 --seed 2 --out "$OUT/gsm8k.jsonl"

# The recipe of experiments/two-pass/*.yaml shortened for a CPU: STEPS optimizer steps of one
# micro-batch, 2 warmup steps, lr 1e-3 (a random stand-in barely moves at the real 1e-5), no
# evaluation (a step of the gated stand-in is ~40 s on 2 busy cores: the real vocabulary's entropy).
STANDIN="train.epochs=null train.steps=$STEPS train.grad_accum=1 schedule.warmup_steps=2 optim.lr=1e-3 \
data.seq_len=256 eval.every_steps=0 eval.best_metric=none checkpoint.every_steps=0 log.every_steps=1 \
log.progress=false run.out_dir=$OUT"
"$A" train experiments/two-pass/plain-sft.yaml $STANDIN
"$A" train experiments/two-pass/two-pass-sft.yaml $STANDIN
FINAL=checkpoints/step_$(printf %08d "$STEPS")   # the last step's checkpoint (an HF folder)
PLAIN=$OUT/two-pass-plain-sft/$FINAL
GATED=$OUT/two-pass-sft/$FINAL

# GSM8K (METHODS §1.7) for both checkpoints, and the gate analysis of one chat (§1.8).
"$A" eval gsm8k --data "$OUT/gsm8k.jsonl" --model "$PLAIN" --name plain --model "$GATED" --name two_pass \
  --out "$OUT/gsm8k" \
  --limit 20 --max-new-tokens 32 --greedy
"$A" chat --model "$GATED" --prompt "What is 12 * 7 + 5?" --analyze-gates --max-new-tokens 32 --greedy \
  --out "$OUT/chat_gates.json"

/usr/bin/python3 tools/plot_two_pass.py --out "$OUT/plots" \
  --plain "$OUT/two-pass-plain-sft/metrics.jsonl" --gated "$OUT/two-pass-sft/metrics.jsonl" \
  --chat "$OUT/chat_gates.json"
