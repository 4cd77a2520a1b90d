#pragma once
// Next-token sampling for generation (METHODS P14), in HF's order: repetition penalty, then
// temperature, top-k, top-p, softmax, multinomial; greedy = argmax of the penalised logits.
//
// Rules (the CPU and the CUDA implementation follow them exactly; core/ops/sampling_math.h):
//  - Processed logit x_v = penalise(logit_v) · (1/T): for a token already seen in the row,
//    logit·rp when logit < 0, else logit·(1/rp) (1/rp and 1/T rounded to the logits' precision,
//    as PyTorch's CUDA division by a scalar does). f32 and bf16 logits are processed in f32.
//  - Order: tokens are ranked by processed logit, descending; equal logits by token id,
//    descending. This is the reverse of HF's ascending (stable) sort, so top-p cuts inside a group
//    of equal logits keep the higher ids, as HF does.
//  - Top-k (k > 0, k < V): keep every token whose logit is ≥ the k-th largest logit (all ties at
//    the k-th value are kept, as HF's `scores < topk(scores)[-1]` removal does).
//  - Top-p (top_p < 1): with r = float32(1 − top_p) (HF: Python double, rounded by the float32
//    comparison) a token is removed iff the probability mass at or after it in the order is ≤ r,
//    i.e. kept iff the mass strictly ahead of it is < 1 − r: the smallest prefix whose mass
//    reaches 1 − r ≈ top_p, never fewer than one token. With probabilities 0.5, 0.3, 0.2 and
//    top_p = 0.8 the last token's at-or-after mass is 0.2 ≤ float32(0.2) and it is removed: two
//    tokens are kept. (A float top_p of 0.8f would be 0.800000012 and keep three: top_p is
//    a double for that reason.)
//  - Probabilities: exp(x − max) over the kept set, quantised to integers (sampling_math.h),
//    so every cut and the draw are exact integer comparisons.
//  - Multinomial: u = philox_uniform(ctx.seed, rng_offset, b) for row b; the chosen token is the
//    first kept token, in the order above, whose inclusive cumulative mass exceeds u · (kept mass)
//    (floor of it, in integers).
//  - Greedy (greedy flag or temperature 0): argmax of the penalised logits (no temperature,
//    top-k or top-p, as HF's greedy search); ties go to the lowest id, as torch.argmax does.
//  - out_logprobs: log of the chosen token's probability under the final distribution: the
//    softmax over the kept set of the processed logits (greedy: of all penalised logits).
//  - Every row needs at least one finite logit; NaN and +inf are not supported (the CPU throws;
//    the GPU writes some in-range id and a NaN log-prob).
//
// CUDA: one 512-thread block per row, no sort of the vocabulary. With 0 < top_k ≤ 512 the k-th
// largest of the 512 per-thread maxima bounds the k-th largest logit from below; the tokens above
// that bound (usually a few times k) are gathered and sorted in shared memory, and the cuts and
// the draw run on them. Otherwise (no top-k with V > 4096, top_k > 512, or more than 4096 tokens
// above the bound, e.g. long runs of equal bf16 logits) a radix search over the logit's order key
// (12 + 10 + 10 bits, weighted by counts or integer masses, then by id within equal logits) finds
// the k-th logit, the top-p cut and the drawn token, each in a few passes over the row.
// Deterministic; no scratch memory; the host never waits.
#include <cstdint>

#include "core/ctx.h"

namespace attnlab {

struct SamplingArgs {
  Tensor logits;  // [B, V] in: f32/bf16 on CUDA, f32/f64 on the CPU. V ≤ 2^19. Not modified.
  // [B, ceil(V/32)] u32 in: bit (v & 31) of word v >> 5 is set when token v occurs in row b's
  // prompt or generated text (sampling_mark_seen maintains it). Required when
  // repetition_penalty != 1, ignored otherwise (may be undefined).
  Tensor seen;
  float repetition_penalty = 1.0f;  // > 0; 1 = off
  float temperature = 1.0f;         // ≥ 0; 0 = greedy
  bool greedy = false;              // argmax whatever the temperature
  int64_t top_k = 0;                // ≥ 0; 0 (or ≥ V) = off
  double top_p = 1.0;               // in (0, 1]; 1 = off
  uint64_t rng_offset = 0;          // Philox counter base: reserve with ctx.take_rng(B)
  Tensor out_ids;                   // [B] i32 out: the chosen token per row
  Tensor out_logprobs;              // [B] acc dtype out (f32; f64 for f64 logits); may be undefined
};

void sampling_forward(Ctx& ctx, const SamplingArgs& a);

// Words per row of the `seen` bitmask for a vocabulary of V tokens.
inline int64_t sampling_seen_words(int64_t vocab) { return (vocab + 31) / 32; }

// Sets the bits of `ids` in `seen` ([B, W] u32): ids is [B] (the tokens just generated) or
// [B, T] (a prompt). Negative ids (padding) are skipped. An id ≥ 32·W is an error on the CPU and
// skipped on the GPU (which cannot throw without a host sync).
void sampling_mark_seen(Ctx& ctx, const Tensor& seen, const Tensor& ids);

namespace cuda {
void sampling_forward(Ctx& ctx, const SamplingArgs& a);
void sampling_mark_seen(Ctx& ctx, const Tensor& seen, const Tensor& ids);
}  // namespace cuda

}  // namespace attnlab
