#!/usr/bin/python3
"""Figures of the standard-vs-differential study (spec/METHODS.md §3.8), as PNG files.

  needle_attention.png  answer and noise attention mass per needle depth for every model, one
                        log-scale figure (from the JSON files `attnlab analyze needle` writes)
  loss_curves.png       training and validation loss of every run (from their metrics.jsonl)

Example:
  /usr/bin/python3 tools/plot.py --needle runs/diff-vs-standard-needle \\
      --metrics runs/diff-vs-standard-standard/metrics.jsonl \\
      --metrics runs/diff-vs-standard-differential/metrics.jsonl --out runs/diff-vs-standard-plots

Needs matplotlib (Debian: python3-matplotlib, installed by tools/setup.sh).
"""
import argparse
import glob
import json
import os
import sys


def needle_files(paths):
    """The analysis JSON files named by `paths` (files, or folders holding needle_*.json)."""
    files = []
    for p in paths:
        if os.path.isdir(p):
            found = sorted(glob.glob(os.path.join(p, "needle_*.json")))
            if not found:
                sys.exit(f"plot.py: folder '{p}' holds no needle_*.json (the output of `attnlab analyze needle --out`)")
            files += found
        elif os.path.isfile(p):
            files.append(p)
        else:
            sys.exit(f"plot.py: --needle '{p}' is neither a file nor a folder")
    return files


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
    for i, path in enumerate(files):
        label, depths, answer, noise = read_needle(path)
        c = colors[i % len(colors)]
        x, y = positive(depths, answer, f"{label} answer")
        ax.plot(x, y, "o-", color=c, label=f"{label}: answer span")
        x, y = positive(depths, noise, f"{label} noise")
        ax.plot(x, y, "s--", color=c, label=f"{label}: noise context")
    ax.set_yscale("log")
    ax.set_xlabel("needle depth (fraction of the context)")
    ax.set_ylabel("attention mass (mean over question rows and samples)")
    ax.set_title("Answer vs noise attention per needle depth (last layer, heads averaged)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
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
        label = labels[i] if i < len(labels) else os.path.basename(os.path.dirname(os.path.abspath(path)))
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
                    help="a JSON file of `attnlab analyze needle`, or its --out folder (repeatable)")
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
        out = os.path.join(args.out, "needle_attention.png")
        plot_needle(plt, needle_files(args.needle), out)
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
