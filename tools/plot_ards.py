#!/usr/bin/python3
"""Grid plots of the ARDS study (METHODS §4.8) from `attnlab ards run`'s JSON files.

    /usr/bin/python3 tools/plot_ards.py --out plots diagnostics/prompt_1_ards.json [...]

One PNG per JSON: plots/prompt_<N>_<mode>_grid.png, 2 columns x ceil(L/2) rows, 15 x 4*rows inches,
dpi 150; one panel per layer in numeric order with the per-call time series (green line, point
markers of size 3, alpha 0.7), a dashed grid and a dashed line at 0; panel title
"Layer: <idx>.self_attn"; the y label in the first column, "Generation Step" under the bottom row;
unused panels hidden; suptitle "<Mode> Controller Dynamics for Prompt <N>". The x axis is the
forward-call index (call 0 = the prefill).
"""
import argparse
import json
import math
import os
import sys


def draw(path, out_dir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(path, encoding="utf-8") as f:
        run = json.load(f)
    diag = run["diagnostics"]
    layers = sorted(diag["layers"], key=lambda l: int(l["layer"]))
    if not layers:
        raise SystemExit(f"{path}: no layers in diagnostics (a baseline run has no plots)")
    n = int(run["prompt_index"])
    rows = math.ceil(len(layers) / 2)
    fig, axes = plt.subplots(rows, 2, figsize=(15, 4 * rows), squeeze=False)
    for i, layer in enumerate(layers):
        ax = axes[i // 2][i % 2]
        values = layer["values"]
        ax.plot(range(len(values)), values, color="green", marker="o", markersize=3, alpha=0.7)
        ax.grid(True, linestyle="--")
        ax.axhline(0, linestyle="--", color="gray", linewidth=1)
        ax.set_title(f"Layer: {layer['layer']}.self_attn")
        if i % 2 == 0:
            ax.set_ylabel(diag["value_label"])
        # The bottom panel of each column carries the x label.
        if i + 2 >= len(layers):
            ax.set_xlabel("Generation Step")
    for i in range(len(layers), rows * 2):
        axes[i // 2][i % 2].set_visible(False)
    fig.suptitle(f"{diag['title']} Controller Dynamics for Prompt {n}")
    fig.tight_layout()
    os.makedirs(out_dir, exist_ok=True)
    out = os.path.join(out_dir, f"prompt_{n}_{diag['mode']}_grid.png")
    fig.savefig(out, dpi=150)
    plt.close(fig)
    return out


def main(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("json", nargs="+", help="prompt_<N>_<mode>.json files from attnlab ards run")
    p.add_argument("--out", default="plots", help="output folder (default: plots)")
    a = p.parse_args(argv)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SystemExit("plot_ards.py needs matplotlib: apt-get install python3-matplotlib (Debian) "
                         "or pip install matplotlib")
    for path in a.json:
        print(draw(path, a.out))


if __name__ == "__main__":
    main(sys.argv[1:])
