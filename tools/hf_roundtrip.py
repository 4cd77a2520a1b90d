#!/usr/bin/env python3
"""attnlab -> Hugging Face transformers round trip (issue 4: "a model saved by attnlab loads in HF").

For each architecture (GPT-2, Qwen2, Qwen3; tied and untied heads) this
  1. writes a random checkpoint with `attnlab init --tiny` (attnlab's safetensors + config.json writer),
  2. runs `attnlab forward --grads` on fixed random token ids (f32, CPU) and dumps logits, loss, grads,
  3. loads the same folder with transformers' AutoModelForCausalLM (eager attention, fp32) and runs
     the same ids with labels = ids,
  4. compares logits, loss and every parameter gradient (relative max error),
  5. saves the HF model again with save_pretrained into a new folder and checks that attnlab loads
     that one and gives the same logits (HF -> attnlab on a file transformers wrote).
Prints one line per case and exits non-zero when any comparison exceeds the tolerance.

  python3 tools/hf_roundtrip.py build/attnlab [--tol 1e-4] [--work /tmp/attnlab-roundtrip]

Needs torch, transformers and safetensors (the GPU machine's Python has them); attnlab itself
never imports them.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

import torch
from safetensors.torch import load_file
import transformers
from transformers import AutoModelForCausalLM

# transformers >= 5 calls the dtype argument dtype (torch_dtype before).
DTYPE_ARG = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"

CASES = [
    ("gpt2", "gpt2", []),
    ("gpt2_untied", "gpt2", ["tie_word_embeddings=false"]),
    ("qwen2_tied", "qwen2", ["tie_word_embeddings=true"]),
    ("qwen2_untied", "qwen2", ["tie_word_embeddings=false"]),
    ("qwen3_tied", "qwen3", ["tie_word_embeddings=true"]),
    ("qwen3_untied", "qwen3", ["tie_word_embeddings=false"]),
]
B, T = 2, 9


def rel_err(a, b):
    a = a.double()
    b = b.double()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def attnlab_forward(exe, folder, ids_file, dump, grads):
    cmd = [exe, "forward", "--model", folder, "--tokens", ids_file, "--dump", dump]
    if grads:
        cmd.append("--grads")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return load_file(dump)


def run_case(exe, work, name, arch, overrides, tol, gen):
    folder = os.path.join(work, name)
    shutil.rmtree(folder, ignore_errors=True)
    subprocess.run([exe, "init", "--arch", arch, "--tiny", "--out", folder, "--seed", "11"] + overrides,
                   check=True, stdout=subprocess.DEVNULL)
    vocab = json.load(open(os.path.join(folder, "config.json")))["vocab_size"]
    ids = torch.randint(0, vocab, (B, T), generator=gen)
    ids_file = os.path.join(work, name + ".ids")
    with open(ids_file, "w") as f:
        for row in ids.tolist():
            f.write(" ".join(map(str, row)) + "\n")
    ours = attnlab_forward(exe, folder, ids_file, os.path.join(work, name + ".attnlab.safetensors"), True)

    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager", **{DTYPE_ARG: torch.float32})
    model.train(False)
    out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    errs = {"logits": rel_err(ours["logits"], out.logits.detach()), "loss": rel_err(ours["loss"], out.loss.detach().reshape(1))}
    worst_grad, worst_name, missing = 0.0, "", []
    for pname, p in model.named_parameters():
        key = "grad." + pname
        if key not in ours:
            missing.append(pname)
            continue
        e = rel_err(ours[key], p.grad)
        if e > worst_grad:
            worst_grad, worst_name = e, pname
    errs["grads"] = worst_grad

    # HF writes, attnlab reads.
    back = folder + "_hf_saved"
    shutil.rmtree(back, ignore_errors=True)
    model.save_pretrained(back)  # as transformers writes it (rope_parameters in >= 5: attnlab reads both)
    again = attnlab_forward(exe, back, ids_file, os.path.join(work, name + ".again.safetensors"), False)
    errs["hf_saved_logits"] = rel_err(again["logits"], out.logits.detach())

    ok = not missing and all(v <= tol for v in errs.values())
    print(f"{'PASS' if ok else 'FAIL'} {name:14s} " + " ".join(f"{k}={v:.2e}" for k, v in errs.items())
          + (f" (worst grad {worst_name})" if worst_name else "") + (f" missing grads: {missing}" if missing else ""))
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("attnlab", help="path to the attnlab executable")
    ap.add_argument("--tol", type=float, default=1e-4, help="largest relative error accepted (default 1e-4)")
    ap.add_argument("--work", default="/tmp/attnlab-roundtrip", help="scratch folder")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    gen = torch.Generator().manual_seed(0)
    results = [run_case(args.attnlab, args.work, *c, args.tol, gen) for c in CASES]
    print(f"{sum(results)}/{len(results)} round trips within {args.tol:g}")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
