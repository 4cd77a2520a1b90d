// The backward attention head in the head slot (METHODS §5.3): registered as "backward_head", its
// parameters declared with the identity rule (a plain GPT-2 folder initialises and lists them), the
// model's loss equal to a naive host evaluation of §5.3 from GPT-2's own logits, parameter gradients
// checked by finite differences in double, the trunk frozen, and generation through logits_rows equal
// to the full forward's log-probabilities.
#include <cmath>

#include "core/layers/backward_attention_head.h"
#include "core/models/cached_forward.h"
#include "core/models/weights.h"
#include "io/io_test_util.h"
#include "models/model_test_util.h"

namespace attnlab::test {
namespace {

ModelConfig with_head(ModelConfig c, nlohmann::ordered_json head) {
  c.attnlab["head"] = std::move(head);
  return c;
}

TinyShape shape() {
  TinyShape s;
  s.D = 12, s.L = 2, s.Hq = 3, s.V = 37, s.P = 16;
  return s;
}

// METHODS §5.3 on the host, in double, from GPT-2's logits z [N, V] and the embedding E [V, D].
std::vector<double> naive_loss(const std::vector<double>& z, const std::vector<double>& E, int64_t N, int64_t V,
                               int64_t D, const std::map<std::string, std::vector<double>>& P, int64_t H, int64_t r,
                               bool latent, const std::vector<int32_t>& y) {
  const double eps = 1e-6;
  const auto& ge = P.at("backward_head.embed_norm.weight");
  std::vector<double> Eh(size_t(V * D)), X;
  for (int64_t j = 0; j < V; ++j) {
    double ss = 0;
    for (int64_t c = 0; c < D; ++c) ss += E[size_t(j * D + c)] * E[size_t(j * D + c)];
    const double rs = 1 / std::sqrt(ss / double(D) + eps);
    for (int64_t c = 0; c < D; ++c) Eh[size_t(j * D + c)] = E[size_t(j * D + c)] * rs * ge[size_t(c)];
  }
  auto proj = [&](const std::vector<double>& A, int64_t rows, int64_t in, const std::vector<double>& W, int64_t out) {
    std::vector<double> o(size_t(rows * out), 0.0);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t k = 0; k < out; ++k)
        for (int64_t c = 0; c < in; ++c) o[size_t(i * out + k)] += A[size_t(i * in + c)] * W[size_t(k * in + c)];
    return o;
  };
  X = latent ? proj(Eh, V, D, P.at("backward_head.latent_proj.weight"), r) : Eh;
  const int64_t dk = r, dv = r, dkh = dk / H, dvh = dv / H;
  const auto K = proj(X, V, r, P.at("backward_head.k_proj.weight"), dk);
  const auto Vv = proj(X, V, r, P.at("backward_head.v_proj.weight"), dv);
  const auto& gq = P.at("backward_head.q_norm.weight");
  const auto& WQ = P.at("backward_head.q_proj.weight");
  const auto& beta = P.at("backward_head.beta");
  std::vector<double> loss(size_t(N), 0.0);
  for (int64_t t = 0; t < N; ++t) {
    if (y[size_t(t)] < 0) continue;
    double mx = -1e300, sum = 0;
    for (int64_t j = 0; j < V; ++j) mx = std::max(mx, z[size_t(t * V + j)]);
    std::vector<double> m(size_t(dv), 0.0);
    for (int64_t j = 0; j < V; ++j) {
      const double w = std::exp(z[size_t(t * V + j)] - mx);
      sum += w;
      for (int64_t c = 0; c < dv; ++c) m[size_t(c)] += w * Vv[size_t(j * dv + c)];
    }
    for (double& v : m) v /= sum;
    double p = 0;
    for (int64_t h = 0; h < H; ++h) {
      double ss = 0;
      for (int64_t c = 0; c < dvh; ++c) ss += m[size_t(h * dvh + c)] * m[size_t(h * dvh + c)];
      const double rs = 1 / std::sqrt(ss / double(dvh) + eps);
      std::vector<double> q(size_t(dkh), 0.0);
      for (int64_t a = 0; a < dkh; ++a)
        for (int64_t c = 0; c < dvh; ++c)
          q[size_t(a)] += WQ[size_t((h * dkh + a) * dvh + c)] * m[size_t(h * dvh + c)] * rs * gq[size_t(h * dvh + c)];
      std::vector<double> s(static_cast<size_t>(V));
      double smax = -1e300;
      for (int64_t j = 0; j < V; ++j) {
        double u = 0;
        for (int64_t a = 0; a < dkh; ++a) u += q[size_t(a)] * K[size_t(j * dk + h * dkh + a)];
        s[size_t(j)] = beta[size_t(h)] * u / std::sqrt(double(dkh));
        smax = std::max(smax, s[size_t(j)]);
      }
      double se = 0;
      for (double v : s) se += std::exp(v - smax);
      p += std::exp(s[size_t(y[size_t(t)])] - smax) / se / double(H);
    }
    loss[size_t(t)] = -std::log(p);
  }
  return loss;
}

double mean_loss(const std::vector<double>& l, int64_t valid) {
  double s = 0;
  for (double v : l) s += v;
  return s / double(valid);
}

// Randomises only the head's parameters (the trunk keeps its values).
void randomize_head(Model& m, Ctx& ctx, uint64_t seed) {
  for (Param& p : m.params()) {
    if (p.name.rfind("backward_head.", 0) != 0) continue;
    const size_t n = size_t(p.numel());
    from_host_f64(ctx, p.value,
                  p.shape.size() == 2 ? rand_normal(n, 1.0 / std::sqrt(double(p.shape[1])), ++seed)
                                      : rand_uniform(n, 0.6, 1.4, ++seed));
  }
}

struct Case {
  int64_t heads, latent;
};

TEST(BackwardHeadModel, LossEqualsNaiveEvaluationFromGpt2Logits) {
  Ctx& ctx = cpu_ctx();
  for (Case cs : {Case{1, 0}, Case{3, 0}, Case{1, 6}}) {
    const ModelConfig base = tiny_config(ModelArch::gpt2, true, shape());
    nlohmann::ordered_json head = {{"kind", "backward_head"}, {"heads", cs.heads}, {"tile", 5}};
    if (cs.latent) head["latent"] = cs.latent;
    Model lm(base, {Device::cpu, DType::f64}, ctx);
    Model bh(with_head(base, head), {Device::cpu, DType::f64}, ctx);
    randomize_params(lm, ctx, 21);
    for (const Param& p : lm.params()) from_host_f64(ctx, bh.params().at(p.name).value, to_host_f64(ctx, p.value));
    randomize_head(bh, ctx, 40 + uint64_t(cs.heads));
    const int64_t B = 2, T = 7, V = base.vocab_size, D = base.hidden_size, N = B * T;
    TokenBatch tb = random_batch(B, T, V, 5);
    Buffer ids = make_ids(ctx.device, {B, T}, tb.ids), targets = make_ids(ctx.device, {B, T}, tb.targets);
    lm.plan(ctx, B, T);
    lm.forward(ctx, ids, targets, double(tb.valid));
    const std::vector<double> z = lm.logits_f64(ctx);
    bh.plan(ctx, B, T);
    const double got = to_host_f64(ctx, bh.forward(ctx, ids, targets, double(tb.valid)))[0];
    std::map<std::string, std::vector<double>> P;
    for (const Param& p : bh.params()) P[p.name] = to_host_f64(ctx, p.value);
    const std::vector<double> E(P["transformer.wte.weight"].begin(), P["transformer.wte.weight"].begin() + V * D);
    const int64_t r = cs.latent ? cs.latent : D;
    const double want = mean_loss(naive_loss(z, E, N, V, D, P, cs.heads, r, cs.latent > 0, tb.targets), tb.valid);
    EXPECT_NEAR(got, want, 1e-10 * std::max(1.0, std::abs(want))) << "heads " << cs.heads << " latent " << cs.latent;
  }
}

TEST(BackwardHeadModel, ParameterGradientsMatchFiniteDifferencesAndTheTrunkGetsNone) {
  Ctx& ctx = cpu_ctx();
  const ModelConfig c = with_head(tiny_config(ModelArch::gpt2, true, shape()),
                                  {{"kind", "backward_head"}, {"heads", 2}, {"latent", 6}, {"tile", 8}});
  Model m(c, {Device::cpu, DType::f64}, ctx);
  randomize_params(m, ctx, 8);
  m.params().set_trainable(ctx, {"backward_head.*"});
  const int64_t B = 2, T = 5;
  TokenBatch tb = random_batch(B, T, c.vocab_size, 9);
  Buffer ids = make_ids(ctx.device, {B, T}, tb.ids), targets = make_ids(ctx.device, {B, T}, tb.targets);
  m.plan(ctx, B, T);
  auto loss = [&] { return to_host_f64(ctx, m.forward(ctx, ids, targets, double(tb.valid)))[0]; };
  m.params().zero_grads(ctx);
  loss();
  m.backward(ctx);
  const auto grads = read_grads(ctx, m);
  EXPECT_EQ(grads.size(), 7u);  // every head parameter (latent on), nothing of GPT-2
  for (const auto& [name, g] : grads) {
    ASSERT_EQ(name.rfind("backward_head.", 0), 0u) << name;
    Param& p = m.params().at(name);
    std::vector<double> v = to_host_f64(ctx, p.value);
    const std::vector<size_t> picks = {0, v.size() / 2, v.size() - 1};
    for (size_t i : picks) {
      const double h = 1e-5, keep = v[i];
      v[i] = keep + h;
      from_host_f64(ctx, p.value, v);
      const double up = loss();
      v[i] = keep - h;
      from_host_f64(ctx, p.value, v);
      const double down = loss();
      v[i] = keep;
      from_host_f64(ctx, p.value, v);
      EXPECT_NEAR(g[i], (up - down) / (2 * h), 1e-7 * std::max(1.0, std::abs(g[i]))) << name << "[" << i << "]";
    }
  }
}

TEST(BackwardHeadModel, PlainGpt2FolderInitialisesTheHeadToTheIdentityRule) {
  Ctx& ctx = cpu_ctx();
  ScratchDir d;
  const ModelConfig base = tiny_config(ModelArch::gpt2, true, shape());
  {
    Model plain(base, {Device::cpu, DType::f32, false}, ctx);
    randomize_params(plain, ctx, 3);
    save_model(plain, ctx, d.file("gpt2"));
  }
  Model m(with_head(base, {{"kind", "backward_head"}, {"heads", 3}, {"latent", 6}}), {Device::cpu, DType::f32, false},
          ctx);
  load_weights(m, ctx, d.file("gpt2"));
  auto eye = [](int64_t rows, int64_t cols, int64_t block) {
    std::vector<double> v(size_t(rows * cols), 0.0);
    for (int64_t i = 0; i < rows; ++i) v[size_t(i * cols + i % block)] = 1.0;
    return v;
  };
  EXPECT_EQ(to_host_f64(ctx, m.params().at("backward_head.latent_proj.weight").value), eye(6, 12, 12));
  EXPECT_EQ(to_host_f64(ctx, m.params().at("backward_head.k_proj.weight").value), eye(6, 6, 6));
  EXPECT_EQ(to_host_f64(ctx, m.params().at("backward_head.v_proj.weight").value), eye(6, 6, 6));
  EXPECT_EQ(to_host_f64(ctx, m.params().at("backward_head.q_proj.weight").value), eye(6, 2, 2));  // I per head
  EXPECT_EQ(to_host_f64(ctx, m.params().at("backward_head.beta").value), std::vector<double>(3, 1.0));
  EXPECT_EQ(to_host_f64(ctx, m.params().at("backward_head.q_norm.weight").value), std::vector<double>(6, 1.0));
  // The identity head equals the op's own identity initialisation.
  const auto& bh = dynamic_cast<const BackwardAttentionHead&>(m.head());
  std::vector<Buffer> bufs;
  BackwardHeadParams ref;
  auto make = [&](const char* n) {
    bufs.emplace_back(Device::cpu, DType::f32, std::initializer_list<int64_t>{m.params().at(n).numel()});
    return bufs.back().t();
  };
  ref.embed_norm = make("backward_head.embed_norm.weight");
  ref.latent_proj = make("backward_head.latent_proj.weight").view({6, 12});
  ref.k_proj = make("backward_head.k_proj.weight").view({6, 6});
  ref.v_proj = make("backward_head.v_proj.weight").view({6, 6});
  ref.q_norm = make("backward_head.q_norm.weight");
  ref.q_proj = make("backward_head.q_proj.weight").view({6, 2});
  ref.beta = make("backward_head.beta");
  backward_head_identity_init(ctx, bh.spec(), ref);
  EXPECT_EQ(to_host_f64(ctx, ref.q_proj), to_host_f64(ctx, m.params().at("backward_head.q_proj.weight").value));
  EXPECT_EQ(to_host_f64(ctx, ref.latent_proj),
            to_host_f64(ctx, m.params().at("backward_head.latent_proj.weight").value));
}

TEST(BackwardHeadModel, GenerationRowsEqualTheFullForwardLogProbabilities) {
  Ctx& ctx = cpu_ctx();
  const ModelConfig c = with_head(tiny_config(ModelArch::gpt2, true, shape()), {{"kind", "backward_head"}, {"heads", 3}, {"tile", 7}});
  Model m(c, {Device::cpu, DType::f64, false}, ctx);
  randomize_params(m, ctx, 31);
  const int64_t T = 6, V = c.vocab_size;
  const std::vector<int32_t> prompt = rand_ints(size_t(T), 0, int32_t(V), 77);
  m.plan(ctx, 1, T);
  Buffer ids = make_ids(ctx.device, {1, T}, prompt);
  m.forward(ctx, ids, Tensor(), 0);
  const std::vector<double> full = m.logits_f64(ctx);  // log p [T, V]
  double total = 0;
  for (int64_t j = 0; j < V; ++j) total += std::exp(full[size_t((T - 1) * V + j)]);
  EXPECT_NEAR(total, 1.0, 1e-12);  // a distribution
  CachedForward cf(m, ctx, 1, T, T + 2);
  const std::vector<double> last = to_host_f64(ctx, cf.prefill(ctx, {prompt}));
  ASSERT_EQ(int64_t(last.size()), V);
  for (int64_t j = 0; j < V; ++j) EXPECT_NEAR(last[size_t(j)], full[size_t((T - 1) * V + j)], 1e-12) << j;
}

TEST(BackwardHeadModel, AFrozenTrunkRunsWithoutDropoutInTrainingMode) {
  Ctx& ctx = cpu_ctx();
  ModelConfig c = with_head(tiny_config(ModelArch::gpt2, true, shape()), {{"kind", "backward_head"}});
  c.raw["attn_pdrop"] = 0.3;
  c.raw["resid_pdrop"] = 0.3;
  c.raw["embd_pdrop"] = 0.3;
  Model m(c, {Device::cpu, DType::f64}, ctx);
  randomize_params(m, ctx, 12);
  const int64_t B = 2, T = 6;
  TokenBatch tb = random_batch(B, T, c.vocab_size, 4);
  Buffer ids = make_ids(ctx.device, {B, T}, tb.ids), targets = make_ids(ctx.device, {B, T}, tb.targets);
  m.plan(ctx, B, T);
  auto loss = [&] { return to_host_f64(ctx, m.forward(ctx, ids, targets, double(tb.valid)))[0]; };
  const double eval_loss = loss();
  m.set_training(true);
  EXPECT_NE(loss(), eval_loss);  // every parameter trains: the trunk's dropout is on
  m.params().set_trainable(ctx, {"backward_head.*"});
  EXPECT_EQ(loss(), eval_loss);  // only the head trains: GPT-2 runs as in eval mode (METHODS §5.3)
}

}  // namespace
}  // namespace attnlab::test
