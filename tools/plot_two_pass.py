#!/usr/bin/python3
"""Figures of the two-pass study (METHODS §1): from the two SFT runs' metrics.jsonl and, when given,
the gate analysis of `attnlab chat --analyze-gates` (its --out JSON).

    /usr/bin/python3 tools/plot_two_pass.py --out DIR \\
        --plain runs/two-pass-plain-sft/metrics.jsonl --gated runs/two-pass-sft/metrics.jsonl \\
        [--chat chat_gates.json]

Writes into DIR:
  loss.png            training loss per optimizer step, both runs (and val_loss points when logged)
  gate_grad_norms.png the per-layer sum over the 12 gate tensors of grads_norm/<name> per step
                      (gated run: metrics of `log.grad_norms`)
  gate_magnitude_layers.png    (--chat) mean gate magnitude per layer over the generated tokens
  gate_magnitude_tokens.png    (--chat) gate magnitude per generated token, one line per layer and
                               the layer mean; the token with the largest mean is marked
The chat JSON is {"tokens": [str...], "layers": L, "magnitude": [[per-layer floats] per token]}.
Prints the per-layer means and the largest-magnitude token (METHODS §1.8's report).
"""
import argparse
import json
import os
import re
import sys


def read_metrics(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    return rows


def plot_loss(plt, plain, gated, out):
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, rows, color in (("plain SFT", plain, "tab:blue"), ("two-pass SFT", gated, "tab:orange")):
        train = [r for r in rows if r.get("kind") == "train"]
        ax.plot([r["step"] for r in train], [r["loss"] for r in train], label=f"{label} (train)", color=color)
        val = [r for r in rows if r.get("kind") == "eval"]
        if val:
            ax.plot([r["step"] for r in val], [r["val_loss"] for r in val], "o--", color=color, label=f"{label} (val)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (nats / token)")
    ax.grid(True, linestyle="--", alpha=0.5)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def plot_gate_grads(plt, gated, out):
    pattern = re.compile(r"^grads_norm/.*(?:layers|h)\.(\d+)\..*attn\.gate_")
    per_layer = {}
    for r in gated:
        if r.get("kind") != "train":
            continue
        sums = {}
        for k, v in r.items():
            m = pattern.match(k)
            if m:
                sums[int(m.group(1))] = sums.get(int(m.group(1)), 0.0) + v
        for layer, v in sums.items():
            per_layer.setdefault(layer, []).append((r["step"], v))
    if not per_layer:
        return False
    fig, ax = plt.subplots(figsize=(7, 4))
    for layer in sorted(per_layer):
        pts = per_layer[layer]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3, label=f"layer {layer}")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("sum of the gate tensors' gradient L2 norms")
    ax.grid(True, linestyle="--", alpha=0.5)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return True


def plot_chat(plt, chat, out_dir):
    tokens, L, mag = chat["tokens"], int(chat["layers"]), chat["magnitude"]
    if len(tokens) != len(mag) or any(len(row) != L for row in mag):
        raise SystemExit("chat JSON: 'magnitude' must hold one row of 'layers' floats per token")
    if not mag:
        raise SystemExit("chat JSON: no generated tokens")
    per_layer = [sum(row[l] for row in mag) / len(mag) for l in range(L)]
    mean_per_token = [sum(row) / L for row in mag]
    top = max(range(len(mag)), key=lambda i: mean_per_token[i])
    print("layer mean gate magnitude:", " ".join(f"{l}:{v:.4g}" for l, v in enumerate(per_layer)))
    print(f"overall mean: {sum(per_layer) / L:.4g}")
    print(f"largest mean magnitude: token {top} {tokens[top]!r} ({mean_per_token[top]:.4g})")

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(range(L), per_layer, color="tab:green")
    ax.set_xlabel("layer")
    ax.set_ylabel("mean gate magnitude over generated tokens")
    ax.grid(True, axis="y", linestyle="--", alpha=0.5)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "gate_magnitude_layers.png"), dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 4))
    for l in range(L):
        ax.plot(range(len(mag)), [row[l] for row in mag], alpha=0.5, linewidth=1, label=f"layer {l}")
    ax.plot(range(len(mag)), mean_per_token, color="black", linewidth=2, label="layer mean")
    ax.annotate(repr(tokens[top]), (top, mean_per_token[top]), textcoords="offset points", xytext=(0, 8),
                ha="center")
    ax.set_xlabel("generated token")
    ax.set_ylabel("(|adj_q| + |adj_k| + |adj_v|) / 3")
    ax.grid(True, linestyle="--", alpha=0.5)
    if L <= 12:
        ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "gate_magnitude_tokens.png"), dpi=100)
    plt.close(fig)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder for the PNGs")
    ap.add_argument("--plain", required=True, help="metrics.jsonl of the plain SFT run")
    ap.add_argument("--gated", required=True, help="metrics.jsonl of the two-pass SFT run")
    ap.add_argument("--chat", help="JSON of attnlab chat --analyze-gates --out")
    a = ap.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(a.out, exist_ok=True)
    plain, gated = read_metrics(a.plain), read_metrics(a.gated)
    plot_loss(plt, plain, gated, os.path.join(a.out, "loss.png"))
    if not plot_gate_grads(plt, gated, os.path.join(a.out, "gate_grad_norms.png")):
        print(f"note: {a.gated} has no grads_norm/*gate_* records (log.grad_norms unset): no gate_grad_norms.png")
    if a.chat:
        with open(a.chat, encoding="utf-8") as f:
            plot_chat(plt, json.load(f), a.out)


if __name__ == "__main__":
    main(sys.argv[1:])
