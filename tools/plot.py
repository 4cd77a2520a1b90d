#!/usr/bin/python3
"""Figures of the standard-vs-differential study (spec/METHODS.md §3.8), as PNG files.

  needle_attention.png      answer and noise attention mass per needle depth for every model, one
                            log-scale figure (from the JSON files `attnlab analyze needle` writes)
  needle_over_training.png  answer-to-noise ratio per needle depth over the optimizer steps of every
                            run (from the needle.jsonl a run's `analysis:` section writes while training)
  loss_curves.png           training and validation loss of every run (from their metrics.jsonl)

--needle takes the JSON files of `attnlab analyze needle`, its --out folder, a run's needle.jsonl,
or a run folder holding one.

Example:
  /usr/bin/python3 tools/plot.py --needle runs/diff-vs-standard-needle \\
      --metrics runs/diff-vs-standard-standard/metrics.jsonl \\
      --metrics runs/diff-vs-standard-differential/metrics.jsonl --out runs/diff-vs-standard-plots

Needs matplotlib (Debian: python3-matplotlib, installed by tools/setup.sh).
"""
import argparse
import glob
import json
import math
import os
import sys

TRAINING_LOG = "needle.jsonl"  # what a run's `analysis:` section writes into the run folder


def needle_files(paths):
    """(analysis JSON files, in-training needle.jsonl files) named by `paths`: files, `attnlab
    analyze needle --out` folders holding needle_*.json, or run folders holding needle.jsonl."""
    reports, logs = [], []
    for p in paths:
        if os.path.isdir(p):
            found = sorted(glob.glob(os.path.join(p, "needle_*.json")))
            log = os.path.join(p, TRAINING_LOG)
            if os.path.isfile(log):
                logs.append(log)
            elif not found:
                sys.exit(f"plot.py: folder '{p}' holds no needle_*.json (the output of `attnlab analyze needle --out`) "
                         f"and no {TRAINING_LOG} (a run folder whose config has an analysis: section)")
            reports += found
        elif os.path.isfile(p):
            (logs if p.endswith(".jsonl") else reports).append(p)
        else:
            sys.exit(f"plot.py: --needle '{p}' is neither a file nor a folder")
    return reports, logs


def log_ticks(lo, hi):
    """Tick values 1, 2, 5 x 10^k covering [lo, hi] (lo > 0), at least two of them, so that a
    log axis whose data spans less than a decade still has labelled ticks."""
    lo, hi = min(lo, hi), max(lo, hi)
    k0, k1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    candidates = [m * 10.0 ** k for k in range(k0 - 1, k1 + 1) for m in (1, 2, 5)]
    inside = [t for t in candidates if lo <= t <= hi]
    if len(inside) < 2:  # widen to the neighbours so the range is labelled at both ends
        below = [t for t in candidates if t < lo]
        above = [t for t in candidates if t > hi]
        inside = below[-1:] + inside + above[:1]
    # More than ~8 labels crowd the axis: keep the decades (and 2, 5 only when few decades).
    if len(inside) > 8:
        inside = [t for t in inside if round(t / 10.0 ** math.floor(math.log10(t) + 1e-9)) == 1] or inside
    return inside


def readable_log_axis(ax, values):
    """A log-scale y axis labelled with plain numbers (0.02, 0.05, 0.1) at 1-2-5 steps, instead of
    matplotlib's default that may label no tick at all when the data spans less than a decade."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter
    positive = [v for v in values if v > 0 and math.isfinite(v)]
    ax.set_yscale("log")
    if not positive:
        return
    ticks = log_ticks(min(positive), max(positive))
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(min(ticks + positive) / 1.1, max(ticks + positive) * 1.1)


def model_label(report, path):
    attention = report.get("attention", "?")
    model = report.get("model") or path
    # runs/<run>/checkpoints/best/model.safetensors -> <run>
    parts = os.path.normpath(model).split(os.sep)
    run = parts[parts.index("checkpoints") - 1] if "checkpoints" in parts[1:] else os.path.basename(model)
    return f"{attention} ({run})"


def read_needle(path):
    with open(path) as f:
        report = json.load(f)
    for key in ("avg_answer_attention_per_depth", "avg_noise_attention_per_depth"):
        if key not in report:
            sys.exit(f"plot.py: '{path}' lacks '{key}': not a file of `attnlab analyze needle`")
    depths = sorted(report["avg_answer_attention_per_depth"], key=float)
    answer = [report["avg_answer_attention_per_depth"][d] for d in depths]
    noise = [report["avg_noise_attention_per_depth"][d] for d in depths]
    return model_label(report, path), [float(d) for d in depths], answer, noise


def positive(xs, ys, what):
    """Log scale shows positive values only (a differential map A1 - λA2 can sum below zero)."""
    keep = [(x, y) for x, y in zip(xs, ys) if y > 0]
    if len(keep) < len(xs):
        print(f"plot.py: note: {what}: {len(xs) - len(keep)} non-positive value(s) left out of the log-scale plot",
              file=sys.stderr)
    return [x for x, _ in keep], [y for _, y in keep]


def plot_needle(plt, files, out):
    fig, ax = plt.subplots(figsize=(8, 5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    shown = []
    for i, path in enumerate(files):
        label, depths, answer, noise = read_needle(path)
        c = colors[i % len(colors)]
        x, y = positive(depths, answer, f"{label} answer")
        ax.plot(x, y, "o-", color=c, label=f"{label}: answer span")
        shown += y
        x, y = positive(depths, noise, f"{label} noise")
        ax.plot(x, y, "s--", color=c, label=f"{label}: noise context")
        shown += y
    readable_log_axis(ax, shown)
    ax.set_xlabel("needle depth (fraction of the context)")
    ax.set_ylabel("attention mass (mean over question rows and samples)")
    ax.set_title("Answer vs noise attention per needle depth (last layer, heads averaged)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def run_name(path):
    """runs/<run>/needle.jsonl or runs/<run>/metrics.jsonl -> <run>."""
    return os.path.basename(os.path.dirname(os.path.abspath(path)))


def read_training_needle(path):
    """The records of a run's needle.jsonl: [(step, {depth: (answer, noise, anr)})], by step."""
    records = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
                per_depth = {float(d["depth"]): (float(d["answer"]), float(d["noise"]), float(d["anr"]))
                             for d in r["depths"]}
                records.append((int(r["step"]), per_depth, r.get("attention", "?")))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                sys.exit(f"plot.py: {path}:{n}: not a record of the in-training needle analysis "
                         f"(step, depths[depth, answer, noise, anr]): {e!r}")
    if not records:
        sys.exit(f"plot.py: '{path}' holds no records yet (the analysis runs at analysis.every_epochs / every_steps)")
    records.sort(key=lambda r: r[0])
    return records


def plot_needle_training(plt, logs, out):
    """Answer-to-noise ratio per depth over the optimizer steps: one colour per run, one marker per depth."""
    fig, ax = plt.subplots(figsize=(9, 5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    markers = "osD^v<>p*h"
    shown = []
    for i, path in enumerate(logs):
        records = read_training_needle(path)
        label = f"{records[-1][2]} ({run_name(path)})"
        depths = sorted({d for _, per_depth, _ in records for d in per_depth})
        for j, depth in enumerate(depths):
            steps = [s for s, per_depth, _ in records if depth in per_depth]
            anr = [per_depth[depth][2] for _, per_depth, _ in records if depth in per_depth]
            x, y = positive(steps, anr, f"{label} depth {depth:g}")
            ax.plot(x, y, "-", marker=markers[j % len(markers)], color=colors[i % len(colors)],
                    label=f"{label}: depth {depth:g}")
            shown += y
    readable_log_axis(ax, shown)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("answer-to-noise ratio (per-token answer / per-token noise attention)")
    ax.set_title("Answer-to-noise ratio over training (last layer, heads averaged)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def read_metrics(path):
    train, val = [], []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"plot.py: {path}:{n}: not JSON ({e})")
            if r.get("kind") == "train" and r.get("loss") is not None:
                train.append((r["step"], r["loss"]))
            elif r.get("kind") == "eval":
                val.append((r["step"], r["val_loss"]))
    return train, val


def plot_losses(plt, metrics, labels, out):
    fig, ax = plt.subplots(figsize=(12, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, path in enumerate(metrics):
        train, val = read_metrics(path)
        label = labels[i] if i < len(labels) else run_name(path)
        c = colors[i % len(colors)]
        if train:
            ax.plot([s for s, _ in train], [l for _, l in train], "-", color=c, alpha=0.8, label=f"{label}: train")
        if val:
            ax.plot([s for s, _ in val], [l for _, l in val], "o--", color=c, label=f"{label}: validation")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy loss (nats/token)")
    ax.set_title("Training and validation loss")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--needle", action="append", default=[],
                    help="a JSON file of `attnlab analyze needle` or its --out folder, or a run's needle.jsonl "
                         "or run folder (repeatable)")
    ap.add_argument("--metrics", action="append", default=[], help="a run's metrics.jsonl (repeatable)")
    ap.add_argument("--label", action="append", default=[],
                    help="legend name of the matching --metrics (default: the run folder's name)")
    ap.add_argument("--out", default="plots", help="output folder (default: plots)")
    args = ap.parse_args()
    if not args.needle and not args.metrics:
        ap.error("nothing to plot: give --needle and/or --metrics")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot.py: matplotlib is missing; install python3-matplotlib (tools/setup.sh does)")
    os.makedirs(args.out, exist_ok=True)
    if args.needle:
        reports, logs = needle_files(args.needle)
        if reports:
            out = os.path.join(args.out, "needle_attention.png")
            plot_needle(plt, reports, out)
            print(out)
        if logs:
            out = os.path.join(args.out, "needle_over_training.png")
            plot_needle_training(plt, logs, out)
            print(out)
    if args.metrics:
        for m in args.metrics:
            if not os.path.isfile(m):
                sys.exit(f"plot.py: --metrics '{m}' is not a file")
        out = os.path.join(args.out, "loss_curves.png")
        plot_losses(plt, args.metrics, args.label, out)
        print(out)


if __name__ == "__main__":
    main()
