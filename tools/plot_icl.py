#!/usr/bin/python3
"""Per-layer figures of the ICL-vs-KV-only-FT study (METHODS §2) from `attnlab icl`'s JSON.

    /usr/bin/python3 tools/plot_icl.py runs/icl/sst2/icl_sst2_seed0.json --out runs/icl/sst2/figures

Writes, for each metric the JSON holds per layer, one PNG (dpi 100, 6 x 3.5 inches):
  simaou.png   SimAOU(FT) and its random baseline per layer (x = HF hidden-state index, or layer)
  simam.png    SimAM(FT) and SimAM(before FT) per layer
  kendall.png  Kendall's tau-b per layer and its random baseline
A null value (a layer with nothing to average) is left out of its line.
"""
import argparse
import json
import os
import sys


def series(values):
    xs, ys = [], []
    for i, v in enumerate(values):
        if v is not None:
            xs.append(i)
            ys.append(v)
    return xs, ys


def draw(run, out_dir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    per = run.get("per_layer", {})
    title = "%s, k=%s, seed %s (%s)" % (run.get("dataset"), run.get("k"), run.get("seed"), os.path.basename(str(run.get("model"))))
    figures = [
        ("simaou.png", "SimAOU", [("SimAOU", "SimAOU (FT)", "tab:blue"), ("RandomSimAOU", "random", "tab:gray")],
         "hidden-state index" if run.get("settings", {}).get("simaou_source") == "hidden" else "layer"),
        ("simam.png", "SimAM", [("SimAM", "SimAM (FT)", "tab:blue"), ("ZSL_SimAM", "SimAM (before FT)", "tab:orange")], "layer"),
        ("kendall.png", "Kendall's tau-b", [("kendall", "ICL vs FT", "tab:blue"), ("random_kendall", "random", "tab:gray")], "layer"),
    ]
    written = []
    os.makedirs(out_dir, exist_ok=True)
    for name, ylabel, lines, xlabel in figures:
        if not any(key in per for key, _, _ in lines):
            continue
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for key, label, color in lines:
            if key in per:
                xs, ys = series(per[key])
                ax.plot(xs, ys, marker="o", markersize=3, label=label, color=color,
                        linestyle="--" if "random" in label else "-")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=9)
        ax.grid(True, linestyle="--", alpha=0.5)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(out_dir, name)
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", help="an icl_<dataset>_seed<S>.json")
    ap.add_argument("--out", required=True, help="folder for the PNG files")
    a = ap.parse_args()
    with open(a.json, encoding="utf-8") as f:
        run = json.load(f)
    for p in draw(run, a.out):
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
