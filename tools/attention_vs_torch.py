#!/usr/bin/env python3
"""attnlab's attention (materialized and fused) against PyTorch on the same GPU, side by side.

For every variant — causal softmax, softmax with a per-row temperature controller (x = Sc·τ + a),
linear (METHODS §4.4), ramp (α = 0.5) and differential (softmax, same width: H/2 heads, dv = 2d) —
times, forward and forward+backward (CUDA events, warm-up, median, L2 flushed), bf16:
  eager  PyTorch as HF "eager" runs it: q @ kᵀ · scale, mask, normalisation in fp32, @ v
         (linear / ramp / differential written out the same way);
  sdpa   F.scaled_dot_product_attention where it can express the variant: softmax; the temperature
         folded into q (x = (q·τ)·k·s; the additive part cancels in softmax); differential as two
         calls (A1 V − λ A2 V); linear and ramp: n/a;
  flex   torch.nn.attention.flex_attention (torch.compile'd): softmax with the controllers as a
         score_mod; linear by the log trick — a min pre-pass (q kᵀ, masked min per row, no grad)
         then softmax of log(x − m + 1), which is (x − m + 1)/Z; ramp as two calls; differential
         as two calls. (The pre-pass's m is a constant to autograd: the argmin term of the true
         gradient is missing, so flex's linear backward is a lower bound on the work.)
then runs `attnlab bench attention d T 2 B H --impl both` on the same shapes (2: every variant and
softmax with both per-row controllers, the "temperature" rows) and prints attnlab's
speed ratio to each peer (peer time / attnlab time: > 1 means attnlab is faster).
TFLOP/s use FlashAttention's FLOP convention: 4·B·T²·H·d forward, halved when causal, backward
2.5× forward (fwd+bwd = 3.5×), with the same width H·d for every variant (differential: H/2·2d).

Usage (on the GPU machine, where torch is installed):
    python3 tools/attention_vs_torch.py build/attnlab [--shapes 64x1024,128x4096] [--repeats 20]
                                        [--variants softmax,temperature,linear,ramp,differential]
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
DEFAULT_SHAPES = [(64, 1024), (64, 4096), (128, 1024), (128, 4096)]
VARIANTS = ["softmax", "temperature", "linear", "ramp", "differential"]
ALPHA, LAMBDA = 0.5, 0.45

try:
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    FLEX = torch.compile(flex_attention, dynamic=False)
except Exception:  # older torch: no FlexAttention
    FLEX = None


def flops_fwd(B, H, T, dv):
    return 4.0 * B * T * T * H * dv / 2.0  # causal


def causal_mask(T, device):
    return torch.ones(T, T, dtype=torch.bool, device=device).triu(1)


# ---- eager ------------------------------------------------------------------------------------

def eager_scores(q, k, tau, add):
    x = (q @ k.transpose(-1, -2)).float() * q.shape[-1] ** -0.5
    if tau is not None:
        x = x * tau[..., None] + add[..., None]
    return x


def eager_norm(x, norm):
    mask = causal_mask(x.shape[-1], x.device)
    sm = torch.softmax(x.masked_fill(mask, float("-inf")), dim=-1)
    if norm == "softmax":
        return sm
    m = x.masked_fill(mask, float("inf")).amin(dim=-1, keepdim=True)
    num = (x - m + 1).masked_fill(mask, 0.0)
    lin = num / num.sum(dim=-1, keepdim=True)
    return lin if norm == "linear" else ALPHA * lin + (1 - ALPHA) * sm


def eager(inp, norm):
    q, k, v, q2, k2, tau, add = inp
    p = eager_norm(eager_scores(q, k, tau, add), norm)
    if q2 is not None:
        p = p - LAMBDA * eager_norm(eager_scores(q2, k2, tau, add), norm)
    return p.to(v.dtype) @ v


# ---- SDPA -------------------------------------------------------------------------------------

def sdpa(inp, norm):
    q, k, v, q2, k2, tau, add = inp
    if norm != "softmax":
        return None
    if tau is not None:
        q = q * tau[..., None].to(q.dtype)  # softmax((q·τ)·k·s + a) = softmax(τ·Sc + a): a cancels
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    if q2 is not None:
        out = out - LAMBDA * F.scaled_dot_product_attention(q2, k2, v, is_causal=True)
    return out


# ---- FlexAttention ----------------------------------------------------------------------------

_masks = {}


def block_mask(B, H, T, device):
    key = (B, H, T)
    if key not in _masks:
        _masks[key] = create_block_mask(lambda b, h, qi, ki: qi >= ki, None, None, T, T, device=device)
    return _masks[key]


def flex_call(q, k, v, tau, add, mn):
    bm = block_mask(q.shape[0], q.shape[1], q.shape[2], q.device)
    if tau is None and mn is None:
        return FLEX(q, k, v, block_mask=bm)

    def mod(score, b, h, qi, ki):
        x = score
        if tau is not None:
            x = x * tau[b, h, qi] + add[b, h, qi]
        if mn is not None:
            x = torch.log(x - mn[b, h, qi] + 1.0)
        return x

    return FLEX(q, k, v, score_mod=mod, block_mask=bm)


def flex_map(q, k, v, tau, add, norm):
    if norm == "softmax":
        return flex_call(q, k, v, tau, add, None)
    with torch.no_grad():  # the min pre-pass
        mn = eager_scores(q, k, tau, add).masked_fill(causal_mask(q.shape[2], q.device), float("inf")).amin(-1)
    lin = flex_call(q, k, v, tau, add, mn)
    if norm == "linear":
        return lin
    return ALPHA * lin + (1 - ALPHA) * flex_call(q, k, v, tau, add, None)


def flex(inp, norm):
    if FLEX is None:
        return None
    q, k, v, q2, k2, tau, add = inp
    out = flex_map(q, k, v, tau, add, norm)
    if q2 is not None:
        out = out - LAMBDA * flex_map(q2, k2, v, tau, add, norm)
    return out


# ---- timing -----------------------------------------------------------------------------------

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


def shape_of(variant, d, T):
    B, H = TOKENS // T, WIDTH // d
    return (B, H // 2, d, 2 * d) if variant == "differential" else (B, H, d, d)


def inputs(variant, d, T):
    B, H, dq, dv = shape_of(variant, d, T)
    gen = torch.Generator(device="cuda").manual_seed(0)
    u = lambda *s, lo=-1.0, hi=1.0: (torch.rand(*s, device="cuda", generator=gen) * (hi - lo) + lo)
    q, k = u(B, H, T, dq, lo=-2, hi=2).bfloat16(), u(B, H, T, dq, lo=-2, hi=2).bfloat16()
    v = u(B, H, T, dv).bfloat16()
    q2 = k2 = tau = add = None
    if variant == "differential":
        q2, k2 = u(B, H, T, dq, lo=-2, hi=2).bfloat16(), u(B, H, T, dq, lo=-2, hi=2).bfloat16()
    if variant == "temperature":
        tau, add = u(B, H, T, lo=0.5, hi=1.5), u(B, H, T, lo=-0.5, hi=0.5)
    dout = u(B, H, T, dv).bfloat16()
    return [q, k, v, q2, k2, tau, add], dout


def time_peer(peer, variant, d, T, warmup, repeats):
    norm = variant if variant in ("linear", "ramp") else "softmax"
    inp, dout = inputs(variant, d, T)
    with torch.no_grad():
        if peer(inp, norm) is None:
            return None
        fwd = time_ms(lambda: peer(inp, norm), warmup, repeats)
    grads = [t.detach().requires_grad_() if t is not None and t.dtype == torch.bfloat16 else t for t in inp]
    leaves = [t for t in grads[:5] if t is not None]

    def fwd_bwd():
        torch.autograd.grad(peer(grads, norm), leaves, dout)

    fb = time_ms(fwd_bwd, warmup, repeats)
    del inp, grads, leaves, dout
    torch.cuda.empty_cache()
    return fwd, fb


LABEL = re.compile(r"(materialized|fused) bf16 (ctrl-)?(diff-)?(\w+) d=(\d+) T=(\d+) B=(\d+) H=(\d+)")


def run_attnlab(binary, shapes, repeats):
    """{(backend, variant, pass, d, T): ms} from `attnlab bench attention d T 1 B H --impl both`."""
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for d, T in shapes:
            B, H = TOKENS // T, WIDTH // d
            path = os.path.join(tmp, f"a{d}_{T}.csv")
            cmd = [binary, "bench", "attention", str(d), str(T), "2", str(B), str(H), "--impl", "both",
                   "--csv", path, "--repeats", str(repeats)]
            res = subprocess.run(cmd, capture_output=True, text=True)
            sys.stdout.write(res.stdout)
            if res.returncode != 0:
                sys.stderr.write(res.stderr)
                raise SystemExit(f"attnlab bench failed for d={d} T={T} (exit {res.returncode})")
            with open(path) as f:
                for r in csv.DictReader(f):
                    m = LABEL.match(r["shape"])
                    if not m or r["op"] not in ("attention_fwd", "attention_fwd_bwd"):
                        continue
                    variant = "temperature" if m.group(2) else "differential" if m.group(3) else m.group(4)
                    pss = "fwd" if r["op"] == "attention_fwd" else "fwd+bwd"
                    rows[(m.group(1), variant, pss, d, T)] = float(r["us"]) / 1000.0
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("attnlab", help="path to the attnlab binary")
    ap.add_argument("--shapes", default=",".join(f"{d}x{T}" for d, T in DEFAULT_SHAPES),
                    help="comma-separated dxT list (B = 16384/T, H = 2048/d)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--csv", help="also write the table to this CSV file")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("attention_vs_torch.py needs a CUDA GPU")
    shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes.split(",")]
    variants = args.variants.split(",")

    ours = run_attnlab(args.attnlab, shapes, args.repeats)
    print(f"\ndevice: {torch.cuda.get_device_name()}  torch {torch.__version__}  flex: "
          f"{'yes' if FLEX else 'no'}  (causal bf16, B·T = {TOKENS}, H·d = {WIDTH}; TFLOP/s by FlashAttention's "
          f"FLOP convention: 4·B·T²·H·d fwd, /2 causal, bwd 2.5× fwd)")
    peers = [("eager", eager), ("sdpa", sdpa), ("flex", flex)]
    header = ["variant", "d", "T", "pass", "fused ms", "fused TF/s", "mat ms", "mat TF/s"]
    for name, _ in peers:
        header += [f"{name} ms", f"{name} TF/s"]
    header += ["fused/mat x"] + [f"fused/{name} x" for name, _ in peers]
    print(" ".join(f"{h:>13}" for h in header))
    table = []
    for d, T in shapes:
        for variant in variants:
            B, H, _, dv = shape_of(variant, d, T)
            timed = {name: time_peer(fn, variant, d, T, args.warmup, args.repeats) for name, fn in peers}
            ours_variant = variant  # temperature: attnlab's ctrl-softmax rows (τ and a per row)
            for i, (pss, mult) in enumerate([("fwd", 1.0), ("fwd+bwd", 3.5)]):
                fl = flops_fwd(B, H, T, dv) * mult
                tf = lambda t: fl / (t * 1e-3) / 1e12 if t else float("nan")
                fu = ours.get(("fused", ours_variant, pss, d, T))
                ma = ours.get(("materialized", ours_variant, pss, d, T))
                row = [variant, d, T, pss, fu, tf(fu), ma, tf(ma)]
                ratios = [ma / fu if fu and ma else float("nan")]
                for name, _ in peers:
                    t = timed[name][i] if timed[name] else None
                    row += [t, tf(t)]
                    ratios.append(t / fu if fu and t else float("nan"))
                row += ratios
                table.append(row)
                print(" ".join(f"{x:>13.3f}" if isinstance(x, float) else f"{str(x):>13}" for x in row))
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(table)


if __name__ == "__main__":
    main()
