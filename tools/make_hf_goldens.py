#!/usr/bin/env python3
"""Generate the Hugging Face parity goldens for tests/models/hf_parity_test.cpp.

For each case below this builds a tiny random transformers model (GPT-2; Qwen2 with GQA and
q/k/v biases; Qwen3 with q/k norm, GQA and head_dim != hidden/heads; tied and untied LM heads),
gives every parameter non-trivial random values, runs one fp32 forward and backward with
labels = input_ids (transformers shifts them inside the model), and writes to
tests/goldens/hf/<name>/:

  config.json, model.safetensors   save_pretrained (tied embeddings stored once, GPT-2 Conv1D [in, out])
  inputs.safetensors               input_ids  int32 [B, T]
  reference.safetensors            logits fp32 [B, T, V], loss fp32 [1],
                                   grad.<name> fp32 for every model.named_parameters() entry

Each file stays well under 200 KB. Needs torch, transformers and safetensors; runs on the CPU:

  python3 tools/make_hf_goldens.py            # all cases
  python3 tools/make_hf_goldens.py --only qwen3_tied --out /tmp/goldens
"""
import argparse
import os
import sys

import torch
from safetensors.torch import save_file
import transformers
from transformers import (GPT2Config, GPT2LMHeadModel, Qwen2Config, Qwen2ForCausalLM, Qwen3Config,
                          Qwen3ForCausalLM)

V5 = int(transformers.__version__.split(".")[0]) >= 5
B, T, V = 2, 7, 101  # V prime: no accidental alignment with any block size
MAX_FILE_BYTES = 200 * 1024


def gpt2(tied):
    return GPT2LMHeadModel, GPT2Config(
        vocab_size=V, n_positions=16, n_embd=32, n_layer=2, n_head=4, n_inner=None,
        activation_function="gelu_new", layer_norm_epsilon=1e-5, initializer_range=0.02,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=tied,
        bos_token_id=0, eos_token_id=0)


def rope(theta):
    """transformers >= 5 takes (and writes) rope_parameters; older versions a top-level rope_theta.
    attnlab reads both layouts, so the goldens test whichever this transformers writes."""
    if V5:
        return {"rope_parameters": {"rope_type": "default", "rope_theta": theta}}
    return {"rope_theta": theta}


def qwen2(tied):
    return Qwen2ForCausalLM, Qwen2Config(
        vocab_size=V, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
        rms_norm_eps=1e-6, hidden_act="silu", attention_dropout=0.0,
        use_sliding_window=False, tie_word_embeddings=tied, initializer_range=0.02,
        bos_token_id=0, eos_token_id=0, **rope(10000.0))


def qwen3(tied):
    # head_dim 16 with 4 heads: Hq*d = 64 != hidden 32, as in the real Qwen3 models.
    return Qwen3ForCausalLM, Qwen3Config(
        vocab_size=V, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=64,
        rms_norm_eps=1e-6, hidden_act="silu", attention_bias=False,
        attention_dropout=0.0, use_sliding_window=False, tie_word_embeddings=tied,
        initializer_range=0.02, bos_token_id=0, eos_token_id=0, **rope(10000.0))


# The names hf_parity_test.cpp looks for.
CASES = {
    "gpt2": lambda: gpt2(True),
    "gpt2_untied": lambda: gpt2(False),
    "qwen2_gqa_bias_untied": lambda: qwen2(False),
    "qwen2_tied": lambda: qwen2(True),
    "qwen3_gqa_untied": lambda: qwen3(False),
    "qwen3_tied": lambda: qwen3(True),
}


def build_eager(cls, config):
    """The model with eager attention (explicit softmax, as attnlab's materialized attention)."""
    try:
        model = cls._from_config(config, attn_implementation="eager")
    except TypeError:  # older transformers: no attn_implementation argument
        config._attn_implementation = "eager"
        model = cls(config)
    impl = getattr(model.config, "_attn_implementation", "eager")
    if impl != "eager":
        sys.exit(f"could not select eager attention (got {impl!r}); upgrade transformers")
    return model.to(torch.float32)


def randomize(model, gen):
    """Every parameter random and non-zero, larger than HF's init so the nonlinearities matter:
    matrices and embeddings ~N(0, 0.15^2 / 0.3^2), norm weights 1 + N(0, 0.2^2), biases N(0, 0.2^2)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if p.dim() >= 2:
                p.copy_(noise * (0.3 if ("wte" in name or "wpe" in name or "embed" in name) else 0.15))
            elif name.endswith(".bias"):
                p.copy_(noise * 0.2)
            else:
                p.copy_(1.0 + noise * 0.2)


def make_case(name, out_root, seed):
    cls, config = CASES[name]()
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = build_eager(cls, config)
    randomize(model, gen)
    model.eval()  # no dropout (the configs say 0 anyway)

    ids = torch.randint(0, V, (B, T), generator=gen, dtype=torch.int64)
    model.zero_grad(set_to_none=True)
    out = model(input_ids=ids, labels=ids)
    out.loss.backward()

    folder = os.path.join(out_root, name)
    os.makedirs(folder, exist_ok=True)
    model.save_pretrained(folder)  # safetensors (the only format in transformers >= 5)
    for extra in ("generation_config.json",):
        p = os.path.join(folder, extra)
        if os.path.exists(p):
            os.remove(p)
    save_file({"input_ids": ids.to(torch.int32).contiguous()}, os.path.join(folder, "inputs.safetensors"),
              metadata={"format": "pt"})
    ref = {"logits": out.logits.detach().float().contiguous(),
           "loss": out.loss.detach().float().reshape(1).contiguous()}
    for pname, p in model.named_parameters():  # tied weights appear once, under the embedding's name
        if p.grad is None:
            sys.exit(f"{name}: parameter {pname} got no gradient")
        ref["grad." + pname] = p.grad.detach().float().contiguous()
    save_file(ref, os.path.join(folder, "reference.safetensors"),
              metadata={"format": "pt", "transformers": transformers.__version__, "torch": torch.__version__})

    for fname in sorted(os.listdir(folder)):
        size = os.path.getsize(os.path.join(folder, fname))
        if size > MAX_FILE_BYTES:
            sys.exit(f"{folder}/{fname} is {size} bytes (> {MAX_FILE_BYTES}); shrink the case")
    print(f"{folder}: loss {out.loss.item():.6f}, {len(ref) - 2} gradients")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "goldens", "hf"),
                    help="root folder (default: tests/goldens/hf in this repository)")
    ap.add_argument("--only", choices=sorted(CASES), action="append", help="generate only this case (repeatable)")
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    for i, name in enumerate(args.only or CASES):
        make_case(name, os.path.abspath(args.out), args.seed + i)


if __name__ == "__main__":
    main()
