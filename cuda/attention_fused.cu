// Fused attention on CUDA: the host side. Fills the kernels' parameter blocks from the tiled
// reference's arguments (core/ops/attention_tiled.h, already validated by its dispatcher) and
// launches forward + statistics pass, or the backward's four steps. bf16 calls that
// core/ops/attention_fused_path.h's one predicate admits take the tensor-core kernels
// (attention_fused_mma_forward.cu / _backward.cu) instead, forward and backward alike.
#include <type_traits>

#include "core/ops/attention_fused_path.h"
#include "cuda/attention_fused.cuh"
#include "cuda/attention_fused_mma.cuh"

namespace attnlab::cuda {

namespace fused {

Common make_common(const AttentionSpec& s, const AttnShape& sh, const Tensor& key_lengths, const Tensor& add,
                   const Tensor& mul, const Tensor& lambda) {
  Common c;
  c.B = sh.B, c.Hq = sh.Hq, c.Hkv = sh.Hkv, c.G = sh.G, c.T = sh.T, c.S = sh.S, c.S_cap = sh.S_cap;
  c.offset = sh.offset;
  c.d = int(sh.d), c.dv = int(sh.dv);
  c.nmaps = s.differential ? 2 : 1;
  c.mode = int(s.norm);
  c.scale = float(sh.scale);
  c.alpha = float(s.ramp_alpha);
  c.causal = s.causal;
  c.klen = dptr_or_null<int32_t>(key_lengths);
  c.add = dptr_or_null<float>(add);
  c.mul = dptr_or_null<float>(mul);
  c.lam = dptr_or_null<float>(lambda);
  c.nlam = lambda.defined() ? lambda.dim(0) : 0;
  return c;
}

}  // namespace fused

int attention_fused_device_sm(const Ctx& ctx) {
  constexpr int kMaxDevices = 64;
  static int cache[kMaxDevices] = {};  // 0: not asked yet
  int dev = ctx.device_index;
  if (dev < 0) CUDA_CHECK(cudaGetDevice(&dev));
  if (dev < kMaxDevices && cache[dev] != 0) return cache[dev];
  int major = 0, minor = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
  const int sm = major * 10 + minor;
  if (dev < kMaxDevices) cache[dev] = sm;
  return sm;
}

void attention_fused_forward(Ctx& ctx, const AttentionTiledArgs& ta, const AttnShape& sh) {
  const AttentionArgs& a = ta.attn;
  const AttentionSpec& s = a.spec;
  dispatch_cuda_float(a.q.dtype, "attention_forward (fused)", [&](auto tag) {
    using T = decltype(tag);
    fused::FwdParams<T> p;
    p.c = fused::make_common(s, sh, a.key_lengths, a.score_add, a.score_mul, a.lambda);
    p.q[0] = dptr<T>(a.q), p.q[1] = dptr_or_null<T>(a.q2);
    p.k[0] = dptr<T>(a.k), p.k[1] = dptr_or_null<T>(a.k2);
    p.v = dptr<T>(a.v);
    p.out = dptr<T>(a.out);
    p.parts = dptr_or_null<T>(ta.out_parts);
    p.nparts = int(attention_tiled_nparts(s));
    p.lse[0] = dptr_or_null<float>(a.lse), p.lse[1] = dptr_or_null<float>(a.lse2);
    p.rsum[0] = dptr_or_null<float>(a.row_sum), p.rsum[1] = dptr_or_null<float>(a.row_sum2);
    p.rmin[0] = dptr_or_null<int32_t>(a.row_min), p.rmin[1] = dptr_or_null<int32_t>(a.row_min2);
    const AttentionCaptures& c = a.captures;
    p.ent = dptr_or_null<float>(c.entropy), p.kl = dptr_or_null<float>(c.kl);
    p.var = dptr_or_null<float>(c.variance), p.span_mass = dptr_or_null<float>(c.span_mass);
    p.spans = dptr_or_null<int32_t>(c.spans);
    p.nspans = int(sh.nspans);
    p.softmax_stats = s.norm == AttnNorm::softmax && !s.differential;
    p.second_stats = (p.ent || p.kl) && !p.softmax_stats;
    p.gram = p.var || (p.ent && p.softmax_stats);
    p.raw_on = p.kl && p.softmax_stats;  // linear / ramp KL takes the statistics pass
    p.cap_rows = dptr_or_null<int32_t>(c.rows);
    p.nrows = sh.nrows_capture;
    p.cap_scores[0] = dptr_or_null<float>(c.scores), p.cap_scores[1] = dptr_or_null<float>(c.scores2);
    p.cap_probs = dptr_or_null<float>(c.probs);
    if constexpr (std::is_same_v<T, bf16_t>) {
      if (fused_path(fused_path_query(a, attention_fused_device_sm(ctx))) == FusedPath::mma)
        return fused::mma_path::launch_mma_forward(ctx, p);
    }
    fused::launch_forward<T>(ctx, p);
    fused::launch_stats<T>(ctx, p);
  });
}

void attention_fused_backward(Ctx& ctx, const AttentionTiledBackwardArgs& ta, const AttnShape& sh) {
  const AttentionBackwardArgs& a = ta.attn;
  const AttentionSpec& s = a.spec;
  dispatch_cuda_float(a.q.dtype, "attention_backward (fused)", [&](auto tag) {
    using T = decltype(tag);
    fused::BwdParams<T> p;
    p.c = fused::make_common(s, sh, a.key_lengths, a.score_add, a.score_mul, a.lambda);
    p.q[0] = dptr<T>(a.q), p.q[1] = dptr_or_null<T>(a.q2);
    p.k[0] = dptr<T>(a.k), p.k[1] = dptr_or_null<T>(a.k2);
    p.v = dptr<T>(a.v);
    p.dout = dptr<T>(a.dout);
    p.nparts = int(attention_tiled_nparts(s));
    p.out = p.nparts == 1 ? dptr<T>(ta.out) : nullptr;
    p.parts = dptr_or_null<T>(ta.out_parts);
    p.lse[0] = dptr_or_null<float>(a.lse), p.lse[1] = dptr_or_null<float>(a.lse2);
    p.rsum[0] = dptr_or_null<float>(a.row_sum), p.rsum[1] = dptr_or_null<float>(a.row_sum2);
    p.rmin[0] = dptr_or_null<int32_t>(a.row_min), p.rmin[1] = dptr_or_null<int32_t>(a.row_min2);
    p.dq[0] = dptr_or_null<T>(a.dq), p.dq[1] = dptr_or_null<T>(a.dq2);
    p.dk[0] = dptr_or_null<T>(a.dk), p.dk[1] = dptr_or_null<T>(a.dk2);
    p.dv = dptr_or_null<T>(a.dv);
    p.dadd = dptr_or_null<float>(a.dscore_add), p.dmul = dptr_or_null<float>(a.dscore_mul);
    p.dlam = dptr_or_null<float>(a.dlambda);
    p.ndlam = a.dlambda.defined() ? a.dlambda.dim(0) : 0;
    p.stats = static_cast<float*>(a.workspace.data);
    if constexpr (std::is_same_v<T, bf16_t>) {
      if (fused_path(fused_path_query(a, attention_fused_device_sm(ctx))) == FusedPath::mma)
        return fused::mma_path::launch_mma_backward(ctx, p);
    }
    fused::launch_backward<T>(ctx, p);
  });
}

}  // namespace attnlab::cuda
