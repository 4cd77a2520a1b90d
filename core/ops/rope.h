#pragma once
// Rotary position embedding (METHODS P4) for q and k, in the rotate-half layout (HF Llama/Qwen:
// dim i pairs with i + rot/2) or the interleaved one (dims 2i, 2i+1). Only the first
// `rotary_dim` dims of each head rotate (inv_freq over rotary_dim, as HF's partial rotary);
// the rest pass through. The input is [B, T, H, d]; the output is written either in the same
// layout or already permuted to [B, H, T, d], the layout attention consumes, which saves a
// separate permute pass. Backward applies the transposed rotation and mirrors the layouts:
// dout in forward's output layout, dx in [B, T, H, d].
// Precision: f32 and bf16 tensors use HF's float32 inv_freq and float32 angles pos·inv_freq; bf16
// values are rotated in fp32 and rounded once (HF casts cos/sin to bf16 and rounds each product,
// so it is slightly less accurate than this). f64 on the CPU runs everything in double.
#include <cstdint>

#include "core/ctx.h"

namespace attnlab {

enum class RopeLayout : uint8_t {
  rotate_half,  // pairs (i, i + rot/2): HF Llama, Qwen2/2.5/3, GPT-NeoX
  interleaved,  // pairs (2i, 2i + 1): GPT-J, Meta's original Llama, the Diff-Transformer code
};
const char* rope_layout_name(RopeLayout l);

// The rotation and layouts, shared by forward and backward (backward must get the same spec).
struct RopeSpec {
  RopeLayout layout = RopeLayout::rotate_half;
  double theta = 1e4;       // frequency base: 1e4 (Llama, GPT-NeoX), 1e6 (Qwen2.5)
  int64_t rotary_dim = 0;   // rotate the first rotary_dim dims of each head (even, <= d); 0 = d
  int64_t pos_offset = 0;   // token t sits at position pos_offset + t (KV-cache decoding)
  Tensor positions;         // optional i32 [B, T]: explicit positions; overrides pos_offset
  bool heads_first = false; // rotated tensor in [B, H, T, d] instead of [B, T, H, d]
};

struct RopeArgs {
  Tensor out;  // [B, T, H, d], or [B, H, T, d] when spec.heads_first; written. May be x itself
               // (in place) only when !heads_first.
  Tensor x;    // [B, T, H, d], head dim d even and <= 256
  RopeSpec spec;
};
struct RopeBackwardArgs {
  Tensor dx;    // [B, T, H, d] written (overwrite); may be dout itself when !heads_first
  Tensor dout;  // gradient of out: [B, T, H, d], or [B, H, T, d] when spec.heads_first
  RopeSpec spec;
};

void rope_forward(Ctx& ctx, const RopeArgs& a);
void rope_backward(Ctx& ctx, const RopeBackwardArgs& a);

// The single transform both directions run: out = R(±pos·inv_freq)·in, where in and out are each
// [B, T, H, d] or [B, H, T, d]. Built (and validated) by the dispatcher.
struct RopePlan {
  Tensor out, in;
  const int32_t* positions = nullptr;  // [B, T] or null (then pos_offset + t)
  int64_t B = 0, T = 0, H = 0, d = 0, rot = 0, pos_offset = 0;
  double theta = 1e4;
  bool interleaved = false;
  bool in_heads_first = false, out_heads_first = false;
  bool inverse = false;  // backward: the transposed (inverse) rotation
};

namespace cuda {
// Forward and backward differ only in the plan, so CUDA has one entry point.
void rope_apply(Ctx& ctx, const RopePlan& p);
}  // namespace cuda

}  // namespace attnlab
