#!/bin/bash
# Reproduces the numbers of docs/results/controllers.md on the stand-in (a random Qwen2.5-shaped
# model: the numbers test the pipeline, not the method). Run from the repository root after a build:
#   tools/ards_standin.sh [ATTNLAB_BINARY]        (default ./build-cpu/attnlab)
# Writes runs/ards-standin/{diagnostics,plots}, prints the per-layer table per mode and the time per
# decode step of each mode, then runs the two controller fine-tuning experiments.
set -euo pipefail
A=${1:-./build-cpu/attnlab}
OUT=runs/ards-standin
MODEL=runs/inputs/qwen2.5-tiny
[ -f "$MODEL/config.json" ] || "$A" init --arch qwen2 --tiny --out "$MODEL"
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
"$A" train experiments/controllers/temperature-qwen2.5-sotu.yaml
"$A" train experiments/controllers/info-density-qwen2.5-sotu.yaml
