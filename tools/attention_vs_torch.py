#!/usr/bin/env python3
"""attnlab's materialized attention against PyTorch on the same GPU, side by side.

Times PyTorch scaled_dot_product_attention and PyTorch eager attention (as HF "eager" runs it:
q @ kᵀ · scale in bf16, masked_fill, softmax in fp32, cast back, @ v) for causal bf16 attention at
B·T = 16k tokens and H·d = 2048, forward and forward+backward (CUDA events, warm-up, median),
then runs `attnlab bench attention --csv FILE` and prints attnlab's speed-up over each.
TFLOP/s use the FlashAttention count: 4·B·T²·H·d forward, halved when causal, backward 2.5×.

Usage (on the GPU machine, where torch is installed):
    python3 tools/attention_vs_torch.py build/attnlab [--shapes 64x1024,128x4096] [--repeats 20]
Not part of attnlab itself.
"""
import argparse
import csv
import os
import re
import statistics
import subprocess
import sys
import tempfile

import torch
import torch.nn.functional as F

TOKENS, WIDTH = 16384, 2048
DEFAULT_SHAPES = [(64, 512), (64, 1024), (64, 2048), (64, 4096), (128, 512), (128, 1024), (128, 2048), (128, 4096)]


def flops_fwd(B, H, T, d):
    return 4.0 * B * T * T * H * d / 2.0  # causal


def eager_attention(q, k, v):
    scale = q.shape[-1] ** -0.5
    scores = (q @ k.transpose(-1, -2)) * scale
    T = q.shape[-2]
    mask = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1)
    scores = scores.masked_fill(mask, torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores.float(), dim=-1).to(q.dtype)
    return probs @ v


def sdpa_attention(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def time_ms(fn, warmup, repeats):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    flush = torch.empty(128 << 20, dtype=torch.uint8, device="cuda")
    times = []
    for i in range(repeats):
        flush.fill_(i & 0xFF)  # start each repeat with a cold L2, as attnlab's bench does
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def time_torch(impl, d, T, warmup, repeats):
    B, H = TOKENS // T, WIDTH // d
    gen = torch.Generator(device="cuda").manual_seed(0)
    mk = lambda: (torch.rand(B, H, T, d, device="cuda", generator=gen) * 4 - 2).to(torch.bfloat16)
    q, k, v = mk(), mk(), (torch.rand(B, H, T, d, device="cuda", generator=gen) * 2 - 1).to(torch.bfloat16)
    dout = (torch.rand(B, H, T, d, device="cuda", generator=gen) * 2 - 1).to(torch.bfloat16)
    with torch.no_grad():
        fwd = time_ms(lambda: impl(q, k, v), warmup, repeats)
    qg, kg, vg = (t.detach().requires_grad_() for t in (q, k, v))

    def fwd_bwd():
        out = impl(qg, kg, vg)
        torch.autograd.grad(out, (qg, kg, vg), dout)

    fb = time_ms(fwd_bwd, warmup, repeats)
    del q, k, v, qg, kg, vg, dout
    torch.cuda.empty_cache()
    return fwd, fb


def run_attnlab(binary, shapes, repeats):
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for d, T in shapes:
            path = os.path.join(tmp, f"a{d}_{T}.csv")
            cmd = [binary, "bench", "attention", str(d), str(T), "--csv", path, "--repeats", str(repeats)]
            res = subprocess.run(cmd, capture_output=True, text=True)
            sys.stdout.write(res.stdout)
            if res.returncode != 0:
                sys.stderr.write(res.stderr)
                raise SystemExit(f"attnlab bench failed for d={d} T={T} (exit {res.returncode})")
            with open(path) as f:
                for r in csv.DictReader(f):
                    m = re.match(r"bf16 softmax d=(\d+) T=(\d+)", r["shape"])
                    if m and r["op"] in ("attention_fwd", "attention_fwd_bwd"):
                        rows[(r["op"], int(m.group(1)), int(m.group(2)))] = float(r["us"]) / 1000.0
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("attnlab", help="path to the attnlab binary")
    ap.add_argument("--shapes", default=",".join(f"{d}x{T}" for d, T in DEFAULT_SHAPES),
                    help="comma-separated dxT list (B = 16384/T, H = 2048/d)")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--csv", help="also write the table to this CSV file")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("attention_vs_torch.py needs a CUDA GPU")
    shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes.split(",")]

    ours = run_attnlab(args.attnlab, shapes, args.repeats)
    print(f"\ndevice: {torch.cuda.get_device_name()}  torch {torch.__version__}  "
          f"(causal bf16, B·T = {TOKENS}, H·d = {WIDTH}; TFLOP/s by the FlashAttention count)")
    header = ["d", "T", "pass", "attnlab ms", "attnlab TF/s", "eager ms", "eager TF/s", "sdpa ms", "sdpa TF/s",
              "x eager", "x sdpa"]
    print(" ".join(f"{h:>12}" for h in header))
    table = []
    for d, T in shapes:
        B, H = TOKENS // T, WIDTH // d
        eager = time_torch(eager_attention, d, T, args.warmup, args.repeats)
        sdpa = time_torch(sdpa_attention, d, T, args.warmup, args.repeats)
        for i, (pss, op, mult) in enumerate([("fwd", "attention_fwd", 1.0), ("fwd+bwd", "attention_fwd_bwd", 3.5)]):
            fl = flops_fwd(B, H, T, d) * mult
            ms = ours.get((op, d, T))
            if ms is None:
                print(f"attnlab printed no {op} row for d={d} T={T}", file=sys.stderr)
                continue
            tf = lambda t: fl / (t * 1e-3) / 1e12
            row = [d, T, pss, ms, tf(ms), eager[i], tf(eager[i]), sdpa[i], tf(sdpa[i]), eager[i] / ms, sdpa[i] / ms]
            table.append(row)
            print(" ".join(f"{x:>12.3f}" if isinstance(x, float) else f"{x:>12}" for x in row))
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(table)


if __name__ == "__main__":
    main()
