// Attention-probability dropout (GPT-2's attn_pdrop; core/ops/attention.h spec.dropout): the output
// is (P ⊙ mask / (1 − p)) V with the dropout op's Philox mask over the map (checked against a host
// product with the mask drawn here from core/rng.h), the saved map stays the undropped P, the mask
// is reproducible from (seed, offset) and changes with the offset, and every gradient matches
// finite differences in double with the mask held fixed.
#include <cmath>

#include "core/ops/dropout_math.h"
#include "core/rng.h"
#include "tests/ops/attention_test_util.h"

namespace attnlab::test {
namespace {

AttnProblem dropout_problem(AttnNorm norm, uint64_t seed) {
  AttnProblem p;
  p.spec.Hq = 4, p.spec.Hkv = 2, p.spec.d = 3, p.spec.dv = 5;
  p.spec.norm = norm;
  p.spec.ramp_alpha = 0.3;
  p.spec.causal = true;
  p.spec.dropout = 0.3;
  p.B = 2, p.T = 7, p.S = 7, p.S_cap = 7;
  p.key_len = {7, 5};
  p.dropout_offset = 1000 + seed;
  p.randomize(seed, 1.5);
  return p;
}

TEST(AttentionDropout, OutputIsTheDroppedMapTimesValuesAndTheSavedMapIsUndropped) {
  Ctx& ctx = cpu_ctx();
  const AttnProblem pr = dropout_problem(AttnNorm::softmax, 3);
  AttnProblem plain = pr;
  plain.spec.dropout = 0;
  const AttnOutputs r = pr.run(ctx, DType::f64, false), r0 = plain.run(ctx, DType::f64, false);
  EXPECT_EQ(r.p, r0.p);  // the saved map is P, not the dropped one
  const double p = pr.spec.dropout;
  const uint32_t thr = uint32_t(std::ceil(p * 16777216.0));
  const int64_t G = pr.spec.Hq / pr.spec.Hkv, S = pr.S, dv = pr.dv();
  int64_t dropped = 0, visible = 0;
  for (int64_t b = 0; b < pr.B; ++b)
    for (int64_t h = 0; h < pr.spec.Hq; ++h)
      for (int64_t t = 0; t < pr.T; ++t)
        for (int64_t c = 0; c < dv; ++c) {
          const size_t row = size_t((b * pr.spec.Hq + h) * pr.T + t);
          double o = 0;
          for (int64_t j = 0; j < S; ++j) {
            const size_t i = row * size_t(S) + size_t(j);
            const bool keep = (philox_u32(ctx.seed, pr.dropout_offset, i) >> 8) >= thr;
            if (c == 0 && j < pr.visible(b, t)) {
              ++visible;
              dropped += !keep;
            }
            o += (keep ? r0.p[i] / (1 - p) : 0.0) * pr.v[size_t(((b * pr.spec.Hkv + h / G) * pr.S_cap + j) * dv + c)];
          }
          EXPECT_NEAR(r.o[row * size_t(dv) + size_t(c)], o, 1e-12) << "row " << row << " col " << c;
        }
  // Some, not all, probabilities dropped (0.3 of 150 visible entries: far from 0 and from all).
  EXPECT_GT(dropped, visible / 10);
  EXPECT_LT(dropped, visible / 2);
}

TEST(AttentionDropout, MaskIsReproducibleFromSeedAndOffsetAndChangesWithTheOffset) {
  Ctx& ctx = cpu_ctx();
  AttnProblem pr = dropout_problem(AttnNorm::softmax, 5);
  const AttnOutputs a = pr.run(ctx, DType::f64, true), b = pr.run(ctx, DType::f64, true);
  EXPECT_EQ(a.o, b.o);
  EXPECT_EQ(a.dq, b.dq);
  EXPECT_EQ(a.dv, b.dv);
  pr.dropout_offset += 7919;
  const AttnOutputs c = pr.run(ctx, DType::f64, false);
  EXPECT_NE(a.o, c.o);
}

TEST(AttentionDropout, GradientsMatchFiniteDifferencesWithTheMaskFixed) {
  Ctx& ctx = cpu_ctx();
  for (AttnNorm norm : {AttnNorm::softmax, AttnNorm::linear}) {
    AttnProblem pr = dropout_problem(norm, 11);
    const AttnOutputs g = pr.run(ctx, DType::f64, true);
    auto loss = [&] {
      const std::vector<double> o = pr.run(ctx, DType::f64, false).o;
      double s = 0;
      for (size_t i = 0; i < o.size(); ++i) s += o[i] * pr.dout[i];
      return s;
    };
    std::string report;
    const double err = fd_check(loss,
                                {{"q", pr.q.data(), pr.q.size(), &g.dq},
                                 {"k", pr.k.data(), pr.k.size(), &g.dk},
                                 {"v", pr.v.data(), pr.v.size(), &g.dv}},
                                1e-6, 48, &report);
    record_fd_error("attention_dropout", err);
    EXPECT_LT(err, 1e-6) << attn_norm_name(norm) << "\n" << report;
  }
}

TEST(AttentionDropout, FloatPathMatchesDouble) {
  Ctx& ctx = cpu_ctx();
  const AttnProblem pr = dropout_problem(AttnNorm::softmax, 17);
  const AttnOutputs d = pr.run(ctx, DType::f64, true), f = pr.run(ctx, DType::f32, true);
  for (size_t i = 0; i < d.o.size(); ++i) EXPECT_NEAR(f.o[i], d.o[i], 1e-5);
  for (size_t i = 0; i < d.dq.size(); ++i) EXPECT_NEAR(f.dq[i], d.dq[i], 1e-4);
  for (size_t i = 0; i < d.dv.size(); ++i) EXPECT_NEAR(f.dv[i], d.dv[i], 1e-4);
}

TEST(AttentionDropout, RefusesAForwardWithoutKeptMaps) {
  Ctx& ctx = cpu_ctx();
  const AttnProblem pr = dropout_problem(AttnNorm::softmax, 2);
  Buffer q = make_tensor(Device::cpu, DType::f64, {pr.B, 4, pr.T, 3}, pr.q);
  Buffer k = make_tensor(Device::cpu, DType::f64, {pr.B, 2, pr.S_cap, 3}, pr.k);
  Buffer v = make_tensor(Device::cpu, DType::f64, {pr.B, 2, pr.S_cap, 5}, pr.v);
  Buffer o = make_poisoned(Device::cpu, DType::f64, {pr.B, 4, pr.T, 5});
  Buffer lse = make_poisoned(Device::cpu, DType::f64, {pr.B, 4, pr.T});
  Buffer ws = make_poisoned(Device::cpu, DType::f32,
                            {int64_t(attention_workspace_bytes(pr.spec, pr.B, pr.T, pr.S, DType::f64, false, false, true) / 4 + 1)});
  AttentionArgs a;
  a.spec = pr.spec;
  a.q = q.t(), a.k = k.t(), a.v = v.t(), a.out = o.t(), a.lse = lse.t(), a.workspace = ws.t();
  try {
    attention_forward(ctx, a);
    ADD_FAILURE() << "dropout without kept maps was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dropout is for training"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace attnlab::test
