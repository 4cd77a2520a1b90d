// The model's logits and loss against a naive double-precision forward written from METHODS §6
// (P1–P8, P10) with plain loops and none of attnlab's ops: catches layout and wiring mistakes
// (head order, GQA groups, RoPE pairing, q/k norm placement, tied head, Conv1D bands) that a
// finite-difference check, being self-consistent, cannot see.
#include <cmath>

#include "models/model_test_util.h"

namespace attnlab::test {
namespace {

using Vec = std::vector<double>;

struct Ref {
  const Model& m;
  Ctx& ctx;
  Vec get(const std::string& name) const { return to_host_f64(ctx, m.params().find(name)->value); }
};

// y[r, o] = Σ_i x[r, i] W[o, i] + b[o], W [out, in] (rows [row0, row0 + out) of a taller W).
Vec linear(const Vec& x, int64_t rows, int64_t in, const Vec& w, int64_t out, const Vec* b, int64_t row0 = 0) {
  Vec y(size_t(rows * out));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double s = b ? (*b)[size_t(row0 + o)] : 0.0;
      for (int64_t i = 0; i < in; ++i) s += x[size_t(r * in + i)] * w[size_t((row0 + o) * in + i)];
      y[size_t(r * out + o)] = s;
    }
  return y;
}

Vec norm_rows(const Vec& x, int64_t rows, int64_t C, const Vec& w, const Vec* b, double eps, bool rms) {
  Vec y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    const double* xr = &x[size_t(r * C)];
    double mean = 0, var = 0;
    if (!rms) {
      for (int64_t c = 0; c < C; ++c) mean += xr[c];
      mean /= double(C);
    }
    for (int64_t c = 0; c < C; ++c) var += (xr[c] - mean) * (xr[c] - mean);
    const double inv = 1.0 / std::sqrt(var / double(C) + eps);
    for (int64_t c = 0; c < C; ++c) y[size_t(r * C + c)] = (xr[c] - mean) * inv * w[size_t(c)] + (b ? (*b)[size_t(c)] : 0.0);
  }
  return y;
}

// Rotate-half RoPE (P4) of x [B·T, H, d] in place, position = t.
void rope(Vec& x, int64_t B, int64_t T, int64_t H, int64_t d, double theta) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h) {
        double* v = &x[size_t(((b * T + t) * H + h) * d)];
        for (int64_t i = 0; i < d / 2; ++i) {
          const double phi = double(t) * std::pow(theta, -2.0 * double(i) / double(d));
          const double a = v[i], c = v[i + d / 2];
          v[i] = a * std::cos(phi) - c * std::sin(phi);
          v[i + d / 2] = c * std::cos(phi) + a * std::sin(phi);
        }
      }
}

double gelu_tanh(double x) {
  return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
}

struct RefOut {
  Vec logits;
  double loss = 0;
};

RefOut reference_forward(const Model& m, Ctx& ctx, const TokenBatch& tb, int64_t B, int64_t T) {
  const ModelConfig& c = m.config();
  const bool gpt2 = c.arch == ModelArch::gpt2;
  const int64_t D = c.hidden_size, Hq = c.num_heads, Hkv = c.num_kv_heads, d = c.head_dim, I = c.intermediate_size;
  const int64_t V = c.vocab_size, N = B * T, G = Hq / Hkv;
  Ref r{m, ctx};
  const Vec wte = r.get(gpt2 ? "transformer.wte.weight" : "model.embed_tokens.weight");
  Vec x(size_t(N * D));
  const Vec wpe = gpt2 ? r.get("transformer.wpe.weight") : Vec();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < D; ++k)
      x[size_t(n * D + k)] = wte[size_t(tb.ids[size_t(n)] * D + k)] + (gpt2 ? wpe[size_t((n % T) * D + k)] : 0.0);

  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = (gpt2 ? "transformer.h." : "model.layers.") + std::to_string(l);
    Vec h;
    Vec q, k, v, o_w, o_b;
    if (gpt2) {
      const Vec w1 = r.get(p + ".ln_1.weight"), b1 = r.get(p + ".ln_1.bias");
      h = norm_rows(x, N, D, w1, &b1, c.norm_eps, false);
      const Vec wa = r.get(p + ".attn.c_attn.weight"), ba = r.get(p + ".attn.c_attn.bias");
      q = linear(h, N, D, wa, D, &ba, 0);
      k = linear(h, N, D, wa, D, &ba, D);
      v = linear(h, N, D, wa, D, &ba, 2 * D);
    } else {
      h = norm_rows(x, N, D, r.get(p + ".input_layernorm.weight"), nullptr, c.norm_eps, true);
      const std::string a = p + ".self_attn.";
      auto bias = [&](const char* nm) { return c.attention_bias ? r.get(a + nm + ".bias") : Vec(); };
      const Vec bq = bias("q_proj"), bk = bias("k_proj"), bv = bias("v_proj");
      q = linear(h, N, D, r.get(a + "q_proj.weight"), Hq * d, c.attention_bias ? &bq : nullptr);
      k = linear(h, N, D, r.get(a + "k_proj.weight"), Hkv * d, c.attention_bias ? &bk : nullptr);
      v = linear(h, N, D, r.get(a + "v_proj.weight"), Hkv * d, c.attention_bias ? &bv : nullptr);
      if (c.qk_norm) {
        q = norm_rows(q, N * Hq, d, r.get(a + "q_norm.weight"), nullptr, c.norm_eps, true);
        k = norm_rows(k, N * Hkv, d, r.get(a + "k_norm.weight"), nullptr, c.norm_eps, true);
      }
      rope(q, B, T, Hq, d, c.rope_theta);
      rope(k, B, T, Hkv, d, c.rope_theta);
    }
    // Causal softmax attention per (b, query head), kv head = h / G (P5, P6); output [N, Hq·d].
    Vec att(size_t(N * Hq * d), 0.0);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t hh = 0; hh < Hq; ++hh) {
        const int64_t kvh = hh / G;
        for (int64_t t = 0; t < T; ++t) {
          Vec s(size_t(t + 1));
          double mx = -1e300;
          for (int64_t j = 0; j <= t; ++j) {
            double dot = 0;
            for (int64_t e = 0; e < d; ++e)
              dot += q[size_t(((b * T + t) * Hq + hh) * d + e)] * k[size_t(((b * T + j) * Hkv + kvh) * d + e)];
            s[size_t(j)] = dot / std::sqrt(double(d));
            mx = std::max(mx, s[size_t(j)]);
          }
          double z = 0;
          for (double& e : s) z += (e = std::exp(e - mx));
          for (int64_t j = 0; j <= t; ++j)
            for (int64_t e = 0; e < d; ++e)
              att[size_t(((b * T + t) * Hq + hh) * d + e)] +=
                  s[size_t(j)] / z * v[size_t(((b * T + j) * Hkv + kvh) * d + e)];
        }
      }
    Vec ao;
    if (gpt2) {
      const Vec wo = r.get(p + ".attn.c_proj.weight"), bo = r.get(p + ".attn.c_proj.bias");
      ao = linear(att, N, D, wo, D, &bo);
    } else {
      const std::string on = p + ".self_attn.o_proj.";
      const bool ob = m.params().find(on + "bias") != nullptr;
      const Vec bo = ob ? r.get(on + "bias") : Vec();
      ao = linear(att, N, Hq * d, r.get(on + "weight"), D, ob ? &bo : nullptr);
    }
    for (size_t i = 0; i < x.size(); ++i) x[i] += ao[i];

    Vec mo;
    if (gpt2) {
      const Vec w2 = r.get(p + ".ln_2.weight"), b2 = r.get(p + ".ln_2.bias");
      const Vec h2 = norm_rows(x, N, D, w2, &b2, c.norm_eps, false);
      const Vec bf = r.get(p + ".mlp.c_fc.bias"), bp = r.get(p + ".mlp.c_proj.bias");
      Vec a = linear(h2, N, D, r.get(p + ".mlp.c_fc.weight"), I, &bf);
      for (double& e : a) e = gelu_tanh(e);
      mo = linear(a, N, I, r.get(p + ".mlp.c_proj.weight"), D, &bp);
    } else {
      const Vec h2 = norm_rows(x, N, D, r.get(p + ".post_attention_layernorm.weight"), nullptr, c.norm_eps, true);
      const Vec g = linear(h2, N, D, r.get(p + ".mlp.gate_proj.weight"), I, nullptr);
      const Vec u = linear(h2, N, D, r.get(p + ".mlp.up_proj.weight"), I, nullptr);
      Vec a(g.size());
      for (size_t i = 0; i < a.size(); ++i) a[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
      mo = linear(a, N, I, r.get(p + ".mlp.down_proj.weight"), D, nullptr);
    }
    for (size_t i = 0; i < x.size(); ++i) x[i] += mo[i];
  }
  Vec hf;
  if (gpt2) {
    const Vec wf = r.get("transformer.ln_f.weight"), bf = r.get("transformer.ln_f.bias");
    hf = norm_rows(x, N, D, wf, &bf, c.norm_eps, false);
  } else {
    hf = norm_rows(x, N, D, r.get("model.norm.weight"), nullptr, c.norm_eps, true);
  }
  RefOut out;
  out.logits = linear(hf, N, D, c.tie_word_embeddings ? wte : r.get("lm_head.weight"), V, nullptr);
  int64_t valid = 0;
  for (int64_t n = 0; n < N; ++n) {
    const int32_t tgt = tb.targets[size_t(n)];
    if (tgt == kIgnoreIndex) continue;
    double mx = -1e300, z = 0;
    for (int64_t u = 0; u < V; ++u) mx = std::max(mx, out.logits[size_t(n * V + u)]);
    for (int64_t u = 0; u < V; ++u) z += std::exp(out.logits[size_t(n * V + u)] - mx);
    out.loss += mx + std::log(z) - out.logits[size_t(n * V + tgt)];
    ++valid;
  }
  out.loss /= double(valid);
  return out;
}

struct RefCase {
  const char* name;
  ModelArch arch;
  bool tied;
};

class ModelReference : public ::testing::TestWithParam<RefCase> {};

TEST_P(ModelReference, LogitsAndLossMatchNaiveForward) {
  Ctx& ctx = cpu_ctx();
  const RefCase& rc = GetParam();
  TinyShape s;
  s.L = 3;
  Model m(tiny_config(rc.arch, rc.tied, s), {Device::cpu, DType::f64}, ctx);
  randomize_params(m, ctx, 31, 1.5);
  const int64_t B = 2, T = 7;
  m.plan(ctx, B, T);
  TokenBatch tb = random_batch(B, T, s.V, 77);
  Buffer ids = make_ids(Device::cpu, {B, T}, tb.ids), targets = make_ids(Device::cpu, {B, T}, tb.targets);
  const double loss = to_host_f64(ctx, m.forward(ctx, ids, targets, double(tb.valid)))[0];
  RefOut ref = reference_forward(m, ctx, tb, B, T);
  EXPECT_LT(rel_err(m.logits_f64(ctx), ref.logits), 1e-12);
  EXPECT_NEAR(loss, ref.loss, 1e-12 * std::fabs(ref.loss));
  // f32 runs the same model within single-precision rounding.
  Model mf(m.config(), {Device::cpu, DType::f32}, ctx);
  copy_params(ctx, m, ctx, mf);
  mf.plan(ctx, B, T);
  const double loss_f = to_host_f64(ctx, mf.forward(ctx, ids, targets, double(tb.valid)))[0];
  EXPECT_LT(rel_err(mf.logits_f64(ctx), ref.logits), 1e-5);
  EXPECT_NEAR(loss_f, ref.loss, 1e-5 * std::fabs(ref.loss));
}

INSTANTIATE_TEST_SUITE_P(Tiny, ModelReference,
                         ::testing::Values(RefCase{"gpt2_tied", ModelArch::gpt2, true},
                                           RefCase{"gpt2_untied", ModelArch::gpt2, false},
                                           RefCase{"qwen2_tied", ModelArch::qwen2, true},
                                           RefCase{"qwen2_untied", ModelArch::qwen2, false},
                                           RefCase{"qwen3_tied", ModelArch::qwen3, true},
                                           RefCase{"qwen3_untied", ModelArch::qwen3, false}),
                         [](const auto& i) { return std::string(i.param.name); });

}  // namespace
}  // namespace attnlab::test
