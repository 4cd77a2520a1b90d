// CUDA materialized attention: the launch sequence. Forward: scores GEMM (written straight into
// the probability buffers), one fused row kernel (in place), P·V GEMM. Backward: dP = dO·Vᵀ,
// optionally the recomputed scores, one fused row kernel, then dQ, dK, dV GEMMs.
#include "cuda/attention_internal.cuh"

namespace attnlab::cuda {

namespace {

template <class T>
T* opt_ptr(const Tensor& t) { return t.defined() ? dptr<T>(t) : nullptr; }

template <class T>
attn::RowCommon row_common(const AttentionSpec& s, const AttnShape& sh, const Tensor& key_lengths,
                           const Tensor& score_add, const Tensor& score_mul, const Tensor& lambda) {
  attn::RowCommon c;
  c.S = sh.S, c.T = sh.T, c.Hq = sh.Hq, c.rows = sh.rows(), c.offset = sh.offset;
  c.nmaps = s.differential ? 2 : 1;
  c.mode = int(s.norm);
  c.alpha = float(s.ramp_alpha);
  c.causal = s.causal;
  c.nlambda = s.differential ? lambda.dim(0) : 0;
  c.key_lengths = opt_ptr<int32_t>(key_lengths);
  c.score_add = opt_ptr<float>(score_add);
  c.score_mul = opt_ptr<float>(score_mul);
  c.lambda = opt_ptr<float>(lambda);
  return c;
}

template <class T>
void forward_impl(Ctx& ctx, const AttentionArgs& a, const AttnShape& sh) {
  const AttentionSpec& s = a.spec;
  const DType dt = a.q.dtype;
  const int64_t S = sh.S, GT = sh.G * sh.T;
  const Tensor* qs[2] = {&a.q, &a.q2};
  const Tensor* ks[2] = {&a.k, &a.k2};
  const Tensor* maps[2] = {&a.probs, &a.probs2};
  const int nmaps = s.differential ? 2 : 1;
  for (int m = 0; m < nmaps; ++m)
    attn::gemm_groups(ctx, dt, sh, false, true, GT, S, sh.d, float(sh.scale), qs[m]->data, sh.d, GT * sh.d,
                      ks[m]->data, sh.d, sh.S_cap * sh.d, maps[m]->data, S, GT * S);

  attn::FwdRowParams<T> p;
  p.c = row_common<T>(s, sh, a.key_lengths, a.score_add, a.score_mul, a.lambda);
  p.maps[0] = dptr<T>(a.probs);
  p.maps[1] = opt_ptr<T>(a.probs2);
  p.pcomb = s.differential ? static_cast<T*>(a.workspace.data) : nullptr;
  p.lse[0] = opt_ptr<float>(a.lse), p.lse[1] = opt_ptr<float>(a.lse2);
  p.row_min[0] = opt_ptr<int32_t>(a.row_min), p.row_min[1] = opt_ptr<int32_t>(a.row_min2);
  p.row_sum[0] = opt_ptr<float>(a.row_sum), p.row_sum[1] = opt_ptr<float>(a.row_sum2);
  const AttentionCaptures& c = a.captures;
  p.cap_rows = opt_ptr<int32_t>(c.rows);
  p.nrows = sh.nrows_capture;
  p.cap_scores[0] = opt_ptr<float>(c.scores), p.cap_scores[1] = opt_ptr<float>(c.scores2);
  p.cap_probs = opt_ptr<float>(c.probs);
  p.entropy = opt_ptr<float>(c.entropy);
  p.kl = opt_ptr<float>(c.kl);
  p.variance = opt_ptr<float>(c.variance);
  p.spans = opt_ptr<int32_t>(c.spans);
  p.nspans = sh.nspans;
  p.span_mass = opt_ptr<float>(c.span_mass);
  attn::launch_forward_rows<T>(ctx, p);

  const void* pv = s.differential ? a.workspace.data : a.probs.data;
  if (s.dropout > 0) {
    // Dropout runs only with caller-kept maps (training): no maps in the workspace.
    const AttnWorkspace lay = attention_workspace_layout(s, sh, dt, false, a.score_mul.defined(), false);
    void* dropped = static_cast<char*>(a.workspace.data) + lay.dropped_off;
    attention_drop_map(ctx, s, sh, dt, dropped, pv, a.dropout_offset);
    pv = dropped;
  }
  attn::gemm_groups(ctx, dt, sh, false, false, GT, sh.dv, S, 1.f, pv, S, GT * S, a.v.data, sh.dv,
                    sh.S_cap * sh.dv, a.out.data, sh.dv, GT * sh.dv);
}

template <class T>
void backward_impl(Ctx& ctx, const AttentionBackwardArgs& a, const AttnShape& sh) {
  const AttentionSpec& s = a.spec;
  const DType dt = a.q.dtype;
  const int64_t S = sh.S, GT = sh.G * sh.T;
  const bool diff = s.differential;
  const bool need_scores = attention_backward_needs_scores(s, a.score_mul.defined());
  const AttnWorkspace lay = attention_workspace_layout(s, sh, dt, true, a.score_mul.defined());
  char* ws = static_cast<char*>(a.workspace.data);
  T* dp = reinterpret_cast<T*>(ws);                                                // dP → dSc1
  T* x1 = lay.nmaps > 1 ? reinterpret_cast<T*>(ws + lay.map_bytes) : nullptr;      // Sc1 → P
  T* x2 = lay.nmaps > 2 ? reinterpret_cast<T*>(ws + 2 * lay.map_bytes) : nullptr;  // Sc2 → dSc2
  float* partials = diff ? reinterpret_cast<float*>(ws + lay.partials_off) : nullptr;

  attn::gemm_groups(ctx, dt, sh, false, true, GT, S, sh.dv, 1.f, a.dout.data, sh.dv, GT * sh.dv, a.v.data,
                    sh.dv, sh.S_cap * sh.dv, dp, S, GT * S);
  if (s.dropout > 0) attention_drop_map(ctx, s, sh, dt, dp, dp, a.dropout_offset);  // dP = mask ⊙ dP_drop / (1 − p)
  const Tensor* qs[2] = {&a.q, &a.q2};
  const Tensor* ks[2] = {&a.k, &a.k2};
  T* scores[2] = {need_scores ? x1 : nullptr, need_scores && diff ? x2 : nullptr};
  for (int m = 0; m < (diff ? 2 : 1); ++m)
    if (scores[m])
      attn::gemm_groups(ctx, dt, sh, false, true, GT, S, sh.d, float(sh.scale), qs[m]->data, sh.d, GT * sh.d,
                        ks[m]->data, sh.d, sh.S_cap * sh.d, scores[m], S, GT * S);

  attn::BwdRowParams<T> p;
  p.c = row_common<T>(s, sh, a.key_lengths, a.score_add, a.score_mul, a.lambda);
  p.probs[0] = dptr<T>(a.probs);
  p.probs[1] = opt_ptr<T>(a.probs2);
  p.dp = dp;
  p.scores[0] = scores[0], p.scores[1] = scores[1];
  p.dsc2 = diff ? x2 : nullptr;
  p.pcomb = diff ? x1 : nullptr;
  p.lse[0] = opt_ptr<float>(a.lse), p.lse[1] = opt_ptr<float>(a.lse2);
  p.row_min[0] = opt_ptr<int32_t>(a.row_min), p.row_min[1] = opt_ptr<int32_t>(a.row_min2);
  p.row_sum[0] = opt_ptr<float>(a.row_sum), p.row_sum[1] = opt_ptr<float>(a.row_sum2);
  p.dscore_add = opt_ptr<float>(a.dscore_add);
  p.dscore_mul = opt_ptr<float>(a.dscore_mul);
  p.dlambda_partials = partials;
  attn::launch_backward_rows<T>(ctx, p);

  const Tensor* dqs[2] = {&a.dq, &a.dq2};
  const Tensor* dks[2] = {&a.dk, &a.dk2};
  const void* dsc[2] = {dp, x2};
  for (int m = 0; m < (diff ? 2 : 1); ++m) {
    if (dqs[m]->defined())
      attn::gemm_groups(ctx, dt, sh, false, false, GT, sh.d, S, float(sh.scale), dsc[m], S, GT * S,
                        ks[m]->data, sh.d, sh.S_cap * sh.d, dqs[m]->data, sh.d, GT * sh.d);
    if (dks[m]->defined()) {
      attn::gemm_groups(ctx, dt, sh, true, false, S, sh.d, GT, float(sh.scale), dsc[m], S, GT * S,
                        qs[m]->data, sh.d, GT * sh.d, dks[m]->data, sh.d, sh.S_cap * sh.d);
      attn::zero_tail_rows(ctx, sh, dks[m]->data, sh.d, dt);
    }
  }
  if (a.dv.defined()) {
    const void* pv = diff ? static_cast<const void*>(x1) : a.probs.data;
    if (s.dropout > 0) {
      void* dropped = ws + lay.dropped_off;
      attention_drop_map(ctx, s, sh, dt, dropped, pv, a.dropout_offset);
      pv = dropped;
    }
    attn::gemm_groups(ctx, dt, sh, true, false, S, sh.dv, GT, 1.f, pv, S, GT * S, a.dout.data, sh.dv,
                      GT * sh.dv, a.dv.data, sh.dv, sh.S_cap * sh.dv);
    attn::zero_tail_rows(ctx, sh, a.dv.data, sh.dv, dt);
  }
  if (a.dlambda.defined())
    attn::launch_dlambda_reduce(ctx, partials, dptr<float>(a.dlambda), a.dlambda.dim(0), sh.B, sh.Hq, sh.T);
}

}  // namespace

void attention_forward(Ctx& ctx, const AttentionArgs& a, const AttnShape& sh) {
  dispatch_cuda_float(a.q.dtype, "attention_forward", [&](auto t) { forward_impl<decltype(t)>(ctx, a, sh); });
}

void attention_backward(Ctx& ctx, const AttentionBackwardArgs& a, const AttnShape& sh) {
  dispatch_cuda_float(a.q.dtype, "attention_backward", [&](auto t) { backward_impl<decltype(t)>(ctx, a, sh); });
}

}  // namespace attnlab::cuda
