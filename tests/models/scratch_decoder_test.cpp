// The from-scratch decoders of METHODS §3.5: parameter counts of both presets and both attention
// types at the published sizes (expected counts computed here from the formulas of §3.2–§3.5),
// whole-model finite differences in double on tiny versions, the padding row, and a checkpoint
// save/load round trip.
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/config/experiment.h"
#include "core/layers/differential_attention.h"
#include "core/models/scratch_decoder.h"
#include "core/models/scratch_decoder_config.h"
#include "core/ops/cross_entropy.h"
#include "support/testing.h"

namespace attnlab::test {
namespace {

using Preset = ScratchDecoderConfig::Preset;

ScratchDecoderConfig published(Preset preset, bool differential) {
  ScratchDecoderConfig c;  // the defaults are the published sizes; set them explicitly anyway
  c.preset = preset;
  c.differential = differential;
  c.vocab_size = 50257;
  c.hidden = 512;
  c.layers = 4;
  c.heads = 8;
  c.head_dim = 64;
  c.ffn = 2048;
  c.context = 512;
  return c;
}

int64_t count_params(const ScratchDecoderConfig& c) {
  Ctx& ctx = cpu_ctx();
  ScratchDecoder m(c, {Device::cpu, DType::f32, false}, ctx);
  return m.params().total_numel();
}

// Formulas of METHODS §3.2–§3.5 (D model width, H baseline heads, d = D/H, F FFN width).
struct Sizes {
  int64_t V = 50257, D = 512, P = 512, F = 2048, H = 8, L = 4;
  int64_t d() const { return D / H; }
  int64_t shared() const { return V * D + P * D + L * (D * F + F + F * D + D) + V * D + V; }
};

TEST(ScratchDecoder, PaperPresetParameterCountsMatchTheFormulas) {
  const Sizes s;
  const int64_t D = s.D, d = s.d(), L = s.L;
  // standard: bias-free Wq, Wk, Wv, Wo; two RMSNorm weights per block; final RMSNorm.
  const int64_t standard = s.shared() + L * (4 * D * D + 2 * D) + D;
  // differential: the same four D×D projections (h = H/2 heads of 2d), plus λq1, λk1, λq2, λk2 ∈ R^d
  // and the shared headwise-norm weight ∈ R^{2d}.
  const int64_t differential = s.shared() + L * (4 * D * D + 4 * d + 2 * d + 2 * D) + D;
  EXPECT_EQ(count_params(published(Preset::paper, false)), standard);
  EXPECT_EQ(count_params(published(Preset::paper, true)), differential);
  // The projections (every matrix of the attention) are parameter-matched; the only extra
  // parameters are the λ vectors and the norm weight, 6d per layer.
  EXPECT_EQ(differential - standard, L * 6 * d);
}

TEST(ScratchDecoder, SeedPresetParameterCountsMatchTheFormulas) {
  const Sizes s;
  const int64_t D = s.D, H = s.H, L = s.L;
  // standard: q, k, v per-head Linear(D→d, bias) = D×D + D each, out Linear(D→D, bias), its
  // LayerNorm(D), the block's one shared LayerNorm(D); final LayerNorm.
  const int64_t std_block = 4 * (D * D + D) + 2 * D + 2 * D;
  const int64_t standard = s.shared() + L * std_block + 2 * D;
  // DIFF: q, k Linear(D→2D, bias), v Linear(D→D, bias), out Linear(D→D, bias), λ' per head,
  // LayerNorm(D), the shared SimpleRMSNorm scale (D); final SimpleRMSNorm.
  const int64_t diff_block = 2 * (2 * D * D + 2 * D) + 2 * (D * D + D) + H + 2 * D + D;
  const int64_t differential = s.shared() + L * diff_block + D;
  EXPECT_EQ(count_params(published(Preset::seed, false)), standard);
  EXPECT_EQ(count_params(published(Preset::seed, true)), differential);
  // METHODS §3.3: ≈0.53 M more per block than the baseline.
  const double extra_per_block = double(diff_block - std_block);
  EXPECT_GT(extra_per_block, 0.50e6);
  EXPECT_LT(extra_per_block, 0.55e6);
}

ScratchDecoderConfig tiny(Preset preset, bool differential, double dropout, const DecoderOptions& options = {}) {
  ScratchDecoderConfig c;
  c.decoder = options;
  c.preset = preset;
  c.differential = differential;
  c.vocab_size = 11;
  c.pad_id = 10;
  c.hidden = 8;
  c.layers = 2;
  c.heads = 4;
  c.head_dim = 2;
  c.ffn = 16;
  c.context = 7;
  c.dropout = dropout;
  if (options.rope) {  // head_dim 4: with 2 dims interleaved and rotate-half pairs coincide
    c.hidden = 16;
    c.head_dim = 4;
  }
  return c;
}

struct Batch {
  std::vector<int32_t> ids, targets;
  double valid = 0;
};

// Random ids with some pad tokens; targets are the next id, pad targets ignored.
Batch make_batch(int64_t B, int64_t T, int64_t V, int64_t pad, uint64_t seed) {
  Batch b;
  b.ids = rand_ints(size_t(B * T), 0, int32_t(V), seed);
  b.ids[1] = int32_t(pad);
  b.ids[size_t(B * T - 2)] = int32_t(pad);
  causal_lm_targets(b.ids, B, T, b.targets);
  for (auto& t : b.targets)
    if (t == pad) t = kIgnoreIndex;
  for (auto t : b.targets) b.valid += t != kIgnoreIndex;
  return b;
}

struct FdCase {
  const char* name;
  Preset preset;
  bool differential;
  double dropout;
  DecoderOptions options = {};
};

class ScratchDecoderFd : public ::testing::TestWithParam<FdCase> {};

TEST_P(ScratchDecoderFd, EveryParameterMatchesFiniteDifferences) {
  const FdCase fc = GetParam();
  Ctx& ctx = cpu_ctx();
  const ScratchDecoderConfig c = tiny(fc.preset, fc.differential, fc.dropout, fc.options);
  ScratchDecoder m(c, {Device::cpu, DType::f64}, ctx);
  init_scratch_decoder(m, ctx, 5);
  // The λ vectors start at N(0, 0.1²): their gradients are then so small that the finite
  // difference measures round-off. Widen them for the check.
  uint64_t lam_seed = 40;
  for (Param& p : m.params())
    if (p.name.find(".lambda_") != std::string::npos)
      from_host_f64(ctx, p.value, rand_uniform(size_t(p.numel()), -0.6, 0.6, lam_seed++));
  m.set_training(fc.dropout > 0);
  const int64_t B = 2, T = 6;
  m.plan(ctx, B, T);
  Batch batch = make_batch(B, T, c.vocab_size, c.pad_id, 17);
  Buffer ids = make_ids(Device::cpu, {B, T}, batch.ids), targets = make_ids(Device::cpu, {B, T}, batch.targets);
  auto loss = [&] {
    ctx.rng_offset = 0;  // the same dropout masks in every forward
    return to_host_f64(ctx, m.forward(ctx, ids, targets, batch.valid))[0];
  };
  m.params().zero_grads(ctx);
  const double l0 = loss();
  EXPECT_TRUE(std::isfinite(l0) && l0 > 0) << l0;
  m.backward(ctx);
  std::vector<std::vector<double>> grads;
  grads.reserve(m.params().size());
  for (Param& p : m.params()) grads.push_back(to_host_f64(ctx, p.grad));
  std::vector<GradInput> inputs;
  size_t i = 0;
  for (Param& p : m.params()) {
    const std::vector<double>& g = grads[i++];
    size_t n = size_t(p.numel());
    if (p.name == "tok_emb.weight") {
      // padding_idx: the pad row (the last) gets no gradient although the forward reads it.
      for (int64_t j = c.pad_id * c.hidden; j < (c.pad_id + 1) * c.hidden; ++j) EXPECT_EQ(g[size_t(j)], 0.0);
      n = size_t(c.pad_id * c.hidden);
    }
    if (p.name.find("k_proj.bias") != std::string::npos && !c.decoder.rope) {
      // Softmax ignores a key bias (it shifts a row's scores by q·b): the true gradient is zero.
      // (With RoPE the bias is rotated by each key's position, so it does move the scores.)
      for (double x : g) EXPECT_LT(std::fabs(x), 1e-12) << p.name;
      continue;
    }
    double norm = 0;
    for (size_t j = 0; j < n; ++j) norm += g[j] * g[j];
    EXPECT_GT(norm, 0) << p.name << " has an all-zero gradient";
    inputs.push_back({p.name, p.value.ptr<double>(), n, &g});
  }
  std::string report;
  const double err = fd_check(loss, inputs, 1e-5, 8, &report);
  record_fd_error(std::string("scratch_decoder_") + fc.name, err);
  EXPECT_LT(err, 1e-6) << report;
}

INSTANTIATE_TEST_SUITE_P(Tiny, ScratchDecoderFd,
                         ::testing::Values(FdCase{"paper_standard", Preset::paper, false, 0.0},
                                           FdCase{"paper_differential", Preset::paper, true, 0.0},
                                           FdCase{"paper_differential_dropout", Preset::paper, true, 0.3},
                                           FdCase{"seed_standard", Preset::seed, false, 0.0},
                                           FdCase{"seed_differential", Preset::seed, true, 0.0},
                                           FdCase{"seed_standard_dropout", Preset::seed, false, 0.3},
                                           // METHODS §3.5 --rope / --ffn swiglu (model.decoder)
                                           FdCase{"paper_standard_rope_swiglu", Preset::paper, false, 0.0, {true, "swiglu"}},
                                           FdCase{"paper_differential_rope_swiglu", Preset::paper, true, 0.0, {true, "swiglu"}},
                                           FdCase{"seed_differential_rope", Preset::seed, true, 0.0, {true, "gelu"}},
                                           FdCase{"seed_standard_swiglu_dropout", Preset::seed, false, 0.3, {false, "swiglu"}}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(ScratchDecoder, InitLeavesThePadRowZeroAndLambdaVectorsSmall) {
  Ctx& ctx = cpu_ctx();
  ScratchDecoderConfig c = tiny(Preset::paper, true, 0.0);
  c.head_dim = 2;
  ScratchDecoder m(c, {Device::cpu, DType::f64}, ctx);
  init_scratch_decoder(m, ctx, 3);
  const auto emb = to_host_f64(ctx, m.params().at("tok_emb.weight").value);
  for (int64_t j = 0; j < c.hidden; ++j) EXPECT_EQ(emb[size_t(c.pad_id * c.hidden + j)], 0.0);
  double other = 0;
  for (int64_t j = 0; j < c.hidden; ++j) other += std::fabs(emb[size_t(j)]);
  EXPECT_GT(other, 0);
  // Output weights U(±1/√D).
  for (double w : to_host_f64(ctx, m.params().at("output.weight").value)) EXPECT_LE(std::fabs(w), 1 / std::sqrt(8.0));
}

TEST(ScratchDecoder, CheckpointRoundTripRestoresEveryParameterAndTheLoss) {
  Ctx& ctx = cpu_ctx();
  const std::string path = (std::filesystem::temp_directory_path() / "attnlab_scratch_decoder_rt.safetensors").string();
  for (bool differential : {false, true}) {
    const ScratchDecoderConfig c = tiny(Preset::seed, differential, 0.0);
    ScratchDecoder a(c, {Device::cpu, DType::f64}, ctx), b(c, {Device::cpu, DType::f64}, ctx);
    init_scratch_decoder(a, ctx, 21);
    init_scratch_decoder(b, ctx, 22);
    save_scratch_decoder(a, ctx, path);
    const ScratchDecoderConfig back = read_scratch_decoder_config(path);
    EXPECT_EQ(back.preset, c.preset);
    EXPECT_EQ(back.differential, c.differential);
    EXPECT_EQ(back.vocab_size, c.vocab_size);
    EXPECT_EQ(back.hidden, c.hidden);
    EXPECT_EQ(back.layers, c.layers);
    EXPECT_EQ(back.heads, c.heads);
    EXPECT_EQ(back.head_dim, c.head_dim);
    EXPECT_EQ(back.ffn, c.ffn);
    EXPECT_EQ(back.context, c.context);
    EXPECT_EQ(back.pad_id, c.pad_id);
    load_scratch_decoder(b, ctx, path);
    for (const Param& p : a.params())
      EXPECT_EQ(to_host_f64(ctx, p.value), to_host_f64(ctx, b.params().at(p.name).value)) << p.name;
    const int64_t B = 1, T = 5;
    a.plan(ctx, B, T);
    b.plan(ctx, B, T);
    Batch batch = make_batch(B, T, c.vocab_size, c.pad_id, 4);
    Buffer ids = make_ids(Device::cpu, {B, T}, batch.ids), targets = make_ids(Device::cpu, {B, T}, batch.targets);
    const double la = to_host_f64(ctx, a.forward(ctx, ids, targets, batch.valid))[0];
    const double lb = to_host_f64(ctx, b.forward(ctx, ids, targets, batch.valid))[0];
    EXPECT_EQ(la, lb);
    // A model of the other attention type has other tensors: loading must refuse.
    ScratchDecoder other(tiny(Preset::seed, !differential, 0.0), {Device::cpu, DType::f64}, ctx);
    EXPECT_THROW(load_scratch_decoder(other, ctx, path), Error);
  }
  std::remove(path.c_str());
}

}  // namespace
}  // namespace attnlab::test

namespace attnlab::test {
namespace {

TEST(ScratchDecoderConfig, YamlModelFieldsSelectPresetVariantAndSizes) {
  config::ModelSetupConfig m;
  m.from = "init:decoder_seed";
  m.attention.variant = "differential";
  m.arch = {{"hidden_size", "64"}, {"num_hidden_layers", "2"}, {"num_attention_heads", "4"}, {"dropout", "0.25"}};
  ASSERT_TRUE(is_scratch_decoder(m));
  ScratchDecoderConfig c = scratch_decoder_config(m);
  EXPECT_EQ(c.preset, ScratchDecoderConfig::Preset::seed);
  EXPECT_TRUE(c.differential);
  EXPECT_EQ(c.hidden, 64);
  EXPECT_EQ(c.layers, 2);
  EXPECT_EQ(c.heads, 4);
  EXPECT_EQ(c.head_dim, 16);  // 64 / 4
  EXPECT_EQ(c.dropout, 0.25);
  EXPECT_EQ(c.vocab_size, 50257);  // untouched defaults: the published sizes
  EXPECT_EQ(c.pad_id, 50256);

  m.from = "init:decoder_paper";
  m.attention.variant = "standard";
  m.arch.clear();
  c = scratch_decoder_config(m);
  EXPECT_EQ(c.preset, ScratchDecoderConfig::Preset::paper);
  EXPECT_FALSE(c.differential);
  EXPECT_EQ(c.head_dim, 64);

  m.attention.variant = "two_pass";
  EXPECT_THROW(scratch_decoder_config(m), Error);
  m.attention.variant = "standard";
  m.arch = {{"n_embd", "64"}};
  EXPECT_THROW(scratch_decoder_config(m), Error);
  m.from = "init:gpt2";
  EXPECT_FALSE(is_scratch_decoder(m));
}

}  // namespace
}  // namespace attnlab::test

namespace attnlab::test {
namespace {

TEST(ScratchDecoder, AttentionRowsFromCapturesMatchTheSavedMaps) {
  Ctx& ctx = cpu_ctx();
  const std::vector<int32_t> ids = {3, 1, 4, 1, 5, 9, 2};
  const std::vector<int32_t> rows = {6, 2, 4};
  for (Preset preset : {Preset::paper, Preset::seed}) {
    // Differential: the captured rows are the head average of A1 − λA2 read from the saved maps.
    ScratchDecoder m(tiny(preset, true, 0.0), {Device::cpu, DType::f64}, ctx);
    init_scratch_decoder(m, ctx, 8);
    const int64_t T = int64_t(ids.size()), last = m.config().layers - 1;
    const auto got = m.attention_rows(ctx, ids, rows, last);
    auto& layer = dynamic_cast<DifferentialAttention&>(m.attention(last));
    const auto a1 = to_host_f64(ctx, layer.probs1()), a2 = to_host_f64(ctx, layer.probs2());
    const auto lam = layer.lambda_values();
    const int64_t H = layer.heads();
    ASSERT_EQ(got.size(), rows.size());
    for (size_t r = 0; r < rows.size(); ++r)
      for (int64_t j = 0; j < T; ++j) {
        double want = 0;
        for (int64_t h = 0; h < H; ++h) {
          const size_t at = size_t((h * T + rows[r]) * T + j);
          want += (a1[at] - lam[lam.size() == 1 ? 0 : size_t(h)] * a2[at]) / double(H);
        }
        EXPECT_NEAR(got[r][size_t(j)], want, 1e-14) << "row " << rows[r] << " key " << j;
        if (j > rows[r]) EXPECT_EQ(got[r][size_t(j)], 0.0) << "causal";
      }
    // Standard: softmax rows over the visible keys sum to one, nothing beyond the query.
    ScratchDecoder s(tiny(preset, false, 0.0), {Device::cpu, DType::f64}, ctx);
    init_scratch_decoder(s, ctx, 8);
    const auto srows = s.attention_rows(ctx, ids, rows, 0);
    for (size_t r = 0; r < rows.size(); ++r) {
      double sum = 0;
      for (int64_t j = 0; j < T; ++j) {
        sum += srows[r][size_t(j)];
        if (j > rows[r]) EXPECT_EQ(srows[r][size_t(j)], 0.0);
        else EXPECT_GT(srows[r][size_t(j)], 0.0);
      }
      EXPECT_NEAR(sum, 1.0, 1e-12);
    }
  }
}

}  // namespace
}  // namespace attnlab::test


namespace attnlab::test {
namespace {

TEST(ScratchDecoderConfig, ExperimentYamlSelectsTheDecoder) {
  const std::string yaml =
      "task: pretrain\n"
      "run: {name: diff, out_dir: /tmp/attnlab_unused_runs, seed: 3, device: cpu}\n"
      "model:\n"
      "  from: init:decoder_seed\n"
      "  attention: {variant: differential}\n"
      "  arch: {hidden_size: 64, num_attention_heads: 4, num_hidden_layers: 2}\n"
      "data: {format: text, path: /tmp/attnlab_unused_corpus, seq_len: 32}\n"
      "train: {micro_batch: 8, steps: 1}\n";
  const config::ExperimentConfig cfg = config::load_experiment_text(yaml, "diff.yaml");
  ASSERT_TRUE(is_scratch_decoder(cfg.model));
  const ScratchDecoderConfig c = scratch_decoder_config(cfg.model);
  EXPECT_EQ(c.preset, ScratchDecoderConfig::Preset::seed);
  EXPECT_TRUE(c.differential);
  EXPECT_EQ(c.hidden, 64);
  EXPECT_EQ(c.heads, 4);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.layers, 2);
}

}  // namespace
}  // namespace attnlab::test
