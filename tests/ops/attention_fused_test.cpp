// The attention op's fused backend on the CPU (the tiled reference behind attention_forward /
// attention_backward with backend = fused) and the backend selection: the support matrix, what
// impl auto / fused / materialized resolve to on each device, and the refusals.
#include <algorithm>

#include "tests/ops/attention_tiled_test_util.h"

namespace attnlab::test {
namespace {

AttentionSpec spec_of(int64_t d, int64_t dv, AttnNorm norm, bool diff) {
  AttentionSpec s;
  s.Hq = 4, s.Hkv = 2, s.d = d, s.dv = dv, s.norm = norm, s.differential = diff;
  return s;
}

std::string thrown(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(AttentionFusedSelection, SupportMatrix) {
  for (AttnNorm n : {AttnNorm::softmax, AttnNorm::linear, AttnNorm::ramp, AttnNorm::relaxed_linear})
    for (int64_t d : {5, 64, 96})
      EXPECT_EQ(attention_backend_support(AttentionBackend::fused, spec_of(d, d, n, true), Device::cpu, DType::f64), "")
          << "the tiled reference runs every spec";
  for (int64_t d : {64, 128})
    for (int64_t dv : {d, 2 * d})
      for (DType dt : {DType::f32, DType::bf16})
        EXPECT_EQ(attention_backend_support(AttentionBackend::fused, spec_of(d, dv, AttnNorm::ramp, true), Device::cuda, dt), "");
  EXPECT_NE(attention_backend_support(AttentionBackend::fused, spec_of(96, 96, AttnNorm::softmax, false), Device::cuda,
                                      DType::bf16).find("head dims 64 and 128 (this layer's is 96)"),
            std::string::npos);
  EXPECT_NE(attention_backend_support(AttentionBackend::fused, spec_of(64, 96, AttnNorm::softmax, false), Device::cuda,
                                      DType::f32).find("value dims"),
            std::string::npos);
  EXPECT_NE(attention_backend_support(AttentionBackend::fused, spec_of(64, 64, AttnNorm::relaxed_linear, false),
                                      Device::cuda, DType::f32).find("relaxed_linear"),
            std::string::npos);
  EXPECT_EQ(attention_backend_support(AttentionBackend::materialized, spec_of(96, 96, AttnNorm::softmax, false),
                                      Device::cuda, DType::bf16), "");
}

TEST(AttentionFusedSelection, ImplResolvesPerDevice) {
  const AttentionSpec ok = spec_of(64, 64, AttnNorm::linear, false), odd = spec_of(80, 80, AttnNorm::linear, false);
  EXPECT_EQ(attention_impl_from_name("auto"), AttentionImpl::automatic);
  EXPECT_EQ(attention_impl_from_name("fused"), AttentionImpl::fused);
  EXPECT_EQ(attention_impl_from_name("materialized"), AttentionImpl::materialized);
  EXPECT_NE(thrown([] { attention_impl_from_name("flash"); }).find("auto, materialized, fused"), std::string::npos);
  // auto: fused on CUDA where supported (once the kernels are verified on a GPU); the CPU keeps
  // the materialized maps analyses read.
  const AttentionImpl a = AttentionImpl::automatic;
  EXPECT_EQ(attention_backend_for(a, ok, Device::cuda, DType::bf16, true), AttentionBackend::fused);
  EXPECT_EQ(attention_backend_for(a, ok, Device::cuda, DType::bf16, false), AttentionBackend::materialized);
  EXPECT_EQ(attention_backend_for(a, ok, Device::cuda, DType::bf16),
            kAttentionFusedCudaVerified ? AttentionBackend::fused : AttentionBackend::materialized);
  EXPECT_EQ(attention_backend_for(a, odd, Device::cuda, DType::bf16, true), AttentionBackend::materialized);
  EXPECT_EQ(attention_backend_for(a, ok, Device::cpu, DType::f32, true), AttentionBackend::materialized);
  EXPECT_EQ(attention_backend_for(AttentionImpl::fused, odd, Device::cpu, DType::f64), AttentionBackend::fused);
  EXPECT_EQ(attention_backend_for(AttentionImpl::materialized, ok, Device::cuda, DType::f32), AttentionBackend::materialized);
  const std::string why = thrown([&] { attention_backend_for(AttentionImpl::fused, odd, Device::cuda, DType::f32); });
  EXPECT_NE(why.find("head dims 64 and 128"), std::string::npos) << why;
  EXPECT_NE(why.find("impl: auto"), std::string::npos) << why;
}

// attention_forward / attention_backward with backend = fused equal the materialized op in double:
// GQA, KV-cache offset, key padding with a fully masked sequence, both controllers, captured rows
// and statistics, every normalisation, differential with λ per head.
TEST(AttentionFusedBackend, OpContractEqualsMaterializedInDouble) {
  for (AttnNorm norm : {AttnNorm::softmax, AttnNorm::linear, AttnNorm::ramp})
    for (bool diff : {false, true}) {
      SCOPED_TRACE(std::string(attn_norm_name(norm)) + (diff ? " differential" : ""));
      AttnProblem pr;
      pr.spec = spec_of(5, 7, norm, diff);
      pr.spec.Hq = 6, pr.spec.ramp_alpha = 0.3;
      pr.nlambda = diff ? 6 : 1;
      pr.B = 3, pr.T = 7, pr.S = 11, pr.S_cap = 13;
      pr.key_len = {11, 5, 0};
      pr.add = pr.mul = true;
      pr.randomize(41 + int(norm) + (diff ? 8 : 0), 1.5);
      Ctx& ctx = cpu_ctx();
      const AttnOutputs m = pr.run(ctx, DType::f64, true);
      const AttentionSpec& s = pr.spec;
      const int64_t B = pr.B, T = pr.T, S = pr.S, Sc = pr.S_cap, dv = pr.dv(), np = attention_fused_nparts(s);
      auto mk = [&](DType t, std::initializer_list<int64_t> dims, const std::vector<double>& v) {
        return make_tensor(Device::cpu, t, dims, v);
      };
      auto poison = [&](DType t, std::initializer_list<int64_t> dims) { return make_poisoned(Device::cpu, t, dims); };
      const DType f = DType::f64;
      Buffer q = mk(f, {B, 6, T, 5}, pr.q), k = mk(f, {B, 2, Sc, 5}, pr.k), v = mk(f, {B, 2, Sc, dv}, pr.v);
      Buffer q2, k2, lam;
      if (diff) q2 = mk(f, {B, 6, T, 5}, pr.q2), k2 = mk(f, {B, 2, Sc, 5}, pr.k2), lam = mk(f, {6}, pr.lam);
      Buffer kl = make_ids(Device::cpu, {B}, pr.key_len), add = mk(f, {B, 6, T}, pr.sadd), mul = mk(f, {B, 6, T}, pr.smul);
      Buffer o = poison(f, {B, 6, T, dv}), parts = np > 1 ? poison(f, {B, 6, T, np * dv}) : Buffer();
      Buffer lse[2], rmin[2], rsum[2];
      for (int i = 0; i < (diff ? 2 : 1); ++i) {
        lse[i] = poison(f, {B, 6, T});
        rmin[i] = poison(DType::i32, {B, 6, T});
        rsum[i] = poison(f, {B, 6, T});
      }
      AttentionArgs a;
      a.spec = s, a.backend = AttentionBackend::fused, a.keys = S, a.query_offset = pr.offset;
      a.q = q.t(), a.k = k.t(), a.v = v.t(), a.q2 = q2.t(), a.k2 = k2.t(), a.lambda = lam.t();
      a.key_lengths = kl.t(), a.score_add = add.t(), a.score_mul = mul.t();
      a.out = o.t(), a.out_parts = parts.t();
      a.lse = lse[0].t(), a.row_min = rmin[0].t(), a.row_sum = rsum[0].t();
      a.lse2 = lse[1].t(), a.row_min2 = rmin[1].t(), a.row_sum2 = rsum[1].t();
      attention_forward(ctx, a);
      EXPECT_LT(rel_err(to_host_f64(ctx, o.t()), m.o), 1e-12);

      Buffer dout = mk(f, {B, 6, T, dv}, pr.dout), dq = poison(f, {B, 6, T, 5}), dk = poison(f, {B, 2, Sc, 5});
      Buffer dvb = poison(f, {B, 2, Sc, dv}), dadd = poison(f, {B, 6, T}), dmul = poison(f, {B, 6, T});
      Buffer dq2, dk2, dlam;
      if (diff) dq2 = poison(f, {B, 6, T, 5}), dk2 = poison(f, {B, 2, Sc, 5}), dlam = poison(f, {6});
      Buffer ws = poison(DType::f32, {int64_t(attention_backend_workspace_bytes(AttentionBackend::fused, s, B, T, S, f,
                                                                                true, true) / 4 + 1)});
      AttentionBackwardArgs g;
      static_cast<AttentionInputs&>(g) = a;
      static_cast<AttentionSaved&>(g) = a;
      g.out = np == 1 ? o.t() : Tensor();
      g.dout = dout.t(), g.dq = dq.t(), g.dk = dk.t(), g.dv = dvb.t(), g.dq2 = dq2.t(), g.dk2 = dk2.t();
      g.dlambda = dlam.t(), g.dscore_add = dadd.t(), g.dscore_mul = dmul.t(), g.workspace = ws.t();
      attention_backward(ctx, g);
      EXPECT_LT(rel_err(to_host_f64(ctx, dq.t()), m.dq), 1e-12);
      EXPECT_LT(rel_err(to_host_f64(ctx, dk.t()), m.dk), 1e-12);
      EXPECT_LT(rel_err(to_host_f64(ctx, dvb.t()), m.dv), 1e-12);
      EXPECT_LT(rel_err(to_host_f64(ctx, dmul.t()), m.dmul), 1e-12);
      if (diff) {
        EXPECT_LT(rel_err(to_host_f64(ctx, dq2.t()), m.dq2), 1e-12);
        EXPECT_LT(rel_err(to_host_f64(ctx, dk2.t()), m.dk2), 1e-12);
        EXPECT_LT(rel_err(to_host_f64(ctx, dlam.t()), m.dlambda), 1e-12);
      }
      // The fused backend keeps no map: a caller that passes one is told to capture rows instead.
      AttentionArgs bad = a;
      Buffer probs = poison(f, {B, 6, T, S});
      bad.probs = probs.t();
      EXPECT_NE(thrown([&] { attention_forward(ctx, bad); }).find("captures.rows"), std::string::npos);
    }
}

}  // namespace
}  // namespace attnlab::test
