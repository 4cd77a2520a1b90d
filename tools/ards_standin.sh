#!/bin/bash
# Reproduces the numbers of docs/results/controllers.md on the stand-in (a random Qwen2.5-shaped
# model: the numbers test the pipeline, not the method). Run from the repository root after a build:
#   tools/ards_standin.sh [ATTNLAB_BINARY]        (default ./build-cpu/attnlab)
# Writes runs/ards-standin/{diagnostics,plots}, prints the per-layer table per mode and the time per
# decode step of each mode, the overhead of each mode over REPEATS paired rounds, then runs the two
# controller fine-tuning experiments.
set -euo pipefail
# Environment: MODEL (default runs/inputs/qwen2.5-tiny, made with `init --tiny` when missing, plus
# INIT_ARGS, e.g. INIT_ARGS=initializer_range=0.5 for sharper random attention), OUT (default
# runs/ards-standin), REPEATS (timing rounds, default 5; 0 skips them), TRAIN (1: run the two
# controller experiments, the default; 0 skips them).
A=${1:-./build-cpu/attnlab}
OUT=${OUT:-runs/ards-standin}
MODEL=${MODEL:-runs/inputs/qwen2.5-tiny}
INIT_ARGS=${INIT_ARGS:-}
TRAIN=${TRAIN:-1}
[ -f "$MODEL/config.json" ] || "$A" init --arch qwen2 --tiny --out "$MODEL" $INIT_ARGS
for mode in "" --monitor --optimize --linearize --leramp; do
  "$A" ards run --model "$MODEL" --tokenizer qwen2.5 --greedy --max-new-tokens 48 --seed 0 $mode --out "$OUT"
done
/usr/bin/python3 - "$OUT/diagnostics" <<'PY'
import glob, json, sys
d = sys.argv[1]
print("| mode | layer | KL from softmax | entropy | variance | sampled records |")
print("|---|---|---|---|---|---|")
times = {}
for mode in ["baseline", "monitor", "ards", "linearization", "linear_ramp"]:
    per_layer, steps = {}, []
    for f in sorted(glob.glob(f"{d}/prompt_*_{mode}.json")):
        j = json.load(open(f))
        steps.append(j["timing"]["seconds_per_decode_step"])
        for l in j["diagnostics"]["layers"]:
            per_layer.setdefault(l["layer"], []).extend(l["records"])
    times[mode] = sum(steps) / len(steps) if steps else float("nan")
    for layer, recs in sorted(per_layer.items()):
        def avg(*keys):
            v = [next(r[k] for k in keys if k in r) for r in recs]
            return sum(v) / len(v) if v else float("nan")
        print(f"| {mode} | {layer} | {avg('avg_kl_div', 'avg_kl_from_softmax'):.3g} | "
              f"{avg('avg_mod_entropy', 'avg_linear_entropy', 'avg_mixed_entropy', 'avg_entropy'):.4f} | "
              f"{avg('avg_prob_variance'):.3g} | {len(recs)} |")
print()
print("| mode | seconds per decode step (mean over prompts) | vs baseline |")
print("|---|---|---|")
for mode, t in times.items():
    print(f"| {mode} | {t:.5f} | {100 * (t / times['baseline'] - 1):+.1f} % |")
PY
# Overhead: REPEATS rounds (default 5), each running every mode once (the order rotated per round),
# without plots. Per round, each mode's time per decode step (mean over the prompts) is divided by
# the baseline's of the same round (paired: the load of a shared machine drifts between rounds);
# the table gives the median and the range over rounds. --monitor against the baseline is the cost
# of the diagnostics (the same tokens, softmax in both).
REPEATS=${REPEATS:-5}
if ((REPEATS > 0)); then
modes=("" --monitor --optimize --linearize --leramp)
for ((r = 0; r < REPEATS; r++)); do
  for ((k = 0; k < ${#modes[@]}; k++)); do
    mode=${modes[$(((k + r) % ${#modes[@]}))]}
    mkdir -p "$OUT/timing/round_$r"
    /usr/bin/time -f "%U %S" -o "$OUT/timing/round_$r/cpu${mode:---baseline}.txt" \
      "$A" ards run --model "$MODEL" --tokenizer qwen2.5 --greedy --max-new-tokens 48 --seed 0 $mode --no-plots \
      --out "$OUT/timing/round_$r" >/dev/null
  done
done
/usr/bin/python3 - "$OUT/timing" "$REPEATS" <<'PY'
import glob, json, statistics, sys
d, rounds = sys.argv[1], int(sys.argv[2])
modes = ["baseline", "monitor", "ards", "linearization", "linear_ramp"]
per = {m: [] for m in modes}
for r in range(rounds):
    for m in modes:
        steps = [json.load(open(f))["timing"]["seconds_per_decode_step"]
                 for f in sorted(glob.glob(f"{d}/round_{r}/diagnostics/prompt_*_{m}.json"))]
        per[m].append(sum(steps) / len(steps))
# CPU seconds of each whole run (user + system: loading, prefill and decode; less sensitive to
# other processes than wall time), and the extra CPU per decode step over the baseline's run.
flag = {"baseline": "--baseline", "monitor": "--monitor", "ards": "--optimize", "linearization": "--linearize",
        "linear_ramp": "--leramp"}
cpu = {m: [] for m in modes}
steps_per_run = 0
for r in range(rounds):
    for m in modes:
        u, s = open(f"{d}/round_{r}/cpu{flag[m]}.txt").read().split()[-2:]
        cpu[m].append(float(u) + float(s))
    steps_per_run = sum(json.load(open(f))["timing"]["decode_steps"]
                        for f in glob.glob(f"{d}/round_{r}/diagnostics/prompt_*_baseline.json"))
print(f"| mode | wall ms per decode step, median (min-max) over {rounds} rounds | wall vs baseline, median (min-max) "
      f"| CPU s per run, median (min-max) | extra CPU ms per decode step vs baseline, median (min-max) |")
print("|---|---|---|---|---|")
for m in modes:
    t = [1e3 * x for x in per[m]]
    rel = [100 * (a / b - 1) for a, b in zip(per[m], per["baseline"])]
    extra = [1e3 * (a - b) / steps_per_run for a, b in zip(cpu[m], cpu["baseline"])]
    print(f"| {m} | {statistics.median(t):.2f} ({min(t):.2f}-{max(t):.2f}) | "
          f"{statistics.median(rel):+.1f} % ({min(rel):+.1f} to {max(rel):+.1f} %) | "
          f"{statistics.median(cpu[m]):.2f} ({min(cpu[m]):.2f}-{max(cpu[m]):.2f}) | "
          f"{statistics.median(extra):+.2f} ({min(extra):+.2f} to {max(extra):+.2f}) |")
PY
fi
((TRAIN)) || exit 0
"$A" train experiments/controllers/temperature-qwen2.5-sotu.yaml
"$A" train experiments/controllers/info-density-qwen2.5-sotu.yaml
