// The from-scratch decoders' block options (METHODS §3.5 --rope / --ffn swiglu, model.decoder):
// layer 0's attention rows against a host computation of the rotation (rotate-half for the
// baseline, interleaved pairs per sub-head for differential attention), parameter counts from the
// formulas, the options recorded in and restored from a checkpoint, and the YAML fields. The
// finite-difference checks of these models are in scratch_decoder_test.cpp (ScratchDecoderFd).
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/config/experiment.h"
#include "core/layers/differential_attention.h"
#include "core/models/scratch_decoder.h"
#include "core/models/scratch_decoder_config.h"
#include "support/testing.h"

namespace attnlab::test {
namespace {

using Preset = ScratchDecoderConfig::Preset;

ScratchDecoderConfig small(bool differential, const DecoderOptions& options) {
  ScratchDecoderConfig c;
  c.preset = Preset::paper;
  c.differential = differential;
  c.decoder = options;
  c.vocab_size = 13;
  c.pad_id = 12;
  c.hidden = 24;
  c.layers = 2;
  c.heads = 4;
  c.head_dim = 6;
  c.ffn = 40;
  c.context = 9;
  c.dropout = 0;
  return c;
}

// Rotates one head vector x[0..d) at position t by θ = 10,000 in place.
void rotate(double* x, int64_t d, int64_t t, bool interleaved) {
  for (int64_t i = 0; i < d / 2; ++i) {
    const double angle = double(t) * std::pow(10000.0, -2.0 * double(i) / double(d));
    const int64_t a = interleaved ? 2 * i : i, b = interleaved ? 2 * i + 1 : i + d / 2;
    const double x1 = x[a], x2 = x[b];
    x[a] = x1 * std::cos(angle) - x2 * std::sin(angle);
    x[b] = x2 * std::cos(angle) + x1 * std::sin(angle);
  }
}

// Layer 0's head-averaged attention rows of the paper preset, on the host: x = tok_emb[ids] (rope:
// no position table), RMSNorm (eps 1e−6), q/k projections, each (sub-)head of d rotated
// (`rotation`: none, rotate-half, interleaved), causal softmax of q·k/√d; differential: A1 − λA2.
enum class Rotation { none, rotate_half, interleaved };
std::vector<std::vector<double>> host_rows(ScratchDecoder& m, Ctx& ctx, const std::vector<int32_t>& ids,
                                           const std::vector<int32_t>& rows, Rotation rotation, double lambda) {
  const ScratchDecoderConfig& c = m.config();
  const int64_t T = int64_t(ids.size()), D = c.hidden, d = c.head_dim, subheads = c.heads;
  auto host = [&](const std::string& n) { return to_host_f64(ctx, m.params().at(n).value); };
  const auto emb = host("tok_emb.weight"), g = host("blocks.0.attn_norm.weight");
  const auto wq = host("blocks.0.attn.q_proj.weight"), wk = host("blocks.0.attn.k_proj.weight");
  std::vector<double> q(size_t(T * subheads * d)), k(q.size());
  for (int64_t t = 0; t < T; ++t) {
    const double* x = &emb[size_t(ids[size_t(t)] * D)];
    double ms = 0;
    for (int64_t j = 0; j < D; ++j) ms += x[j] * x[j] / double(D);
    const double r = 1 / std::sqrt(ms + 1e-6);
    for (int64_t o = 0; o < subheads * d; ++o) {
      double sq = 0, sk = 0;
      for (int64_t j = 0; j < D; ++j) {
        sq += wq[size_t(o * D + j)] * x[j] * r * g[size_t(j)];
        sk += wk[size_t(o * D + j)] * x[j] * r * g[size_t(j)];
      }
      q[size_t(t * subheads * d + o)] = sq;
      k[size_t(t * subheads * d + o)] = sk;
    }
    if (rotation != Rotation::none)
      for (int64_t h = 0; h < subheads; ++h) {
        rotate(&q[size_t((t * subheads + h) * d)], d, t, rotation == Rotation::interleaved);
        rotate(&k[size_t((t * subheads + h) * d)], d, t, rotation == Rotation::interleaved);
      }
  }
  auto probs = [&](int64_t h, int64_t row) {  // softmax row of (sub-)head h
    std::vector<double> p(size_t(T), 0.0);
    double mx = -1e300, z = 0;
    for (int64_t j = 0; j <= row; ++j) {
      double s = 0;
      for (int64_t e = 0; e < d; ++e) s += q[size_t((row * subheads + h) * d + e)] * k[size_t((j * subheads + h) * d + e)];
      p[size_t(j)] = s / std::sqrt(double(d));
      mx = std::max(mx, p[size_t(j)]);
    }
    for (int64_t j = 0; j <= row; ++j) z += (p[size_t(j)] = std::exp(p[size_t(j)] - mx));
    for (int64_t j = 0; j <= row; ++j) p[size_t(j)] /= z;
    return p;
  };
  const bool diff = c.differential;
  const int64_t heads = diff ? subheads / 2 : subheads;
  std::vector<std::vector<double>> out;
  for (int32_t row : rows) {
    std::vector<double> avg(size_t(T), 0.0);
    for (int64_t h = 0; h < heads; ++h) {
      const auto a1 = probs(diff ? 2 * h : h, row);
      const auto a2 = diff ? probs(2 * h + 1, row) : std::vector<double>(size_t(T), 0.0);
      for (int64_t j = 0; j < T; ++j) avg[size_t(j)] += (a1[size_t(j)] - lambda * a2[size_t(j)]) / double(heads);
    }
    out.push_back(avg);
  }
  return out;
}

double max_diff(const std::vector<std::vector<double>>& a, const std::vector<std::vector<double>>& b) {
  double m = 0;
  for (size_t r = 0; r < a.size(); ++r)
    for (size_t j = 0; j < a[r].size(); ++j) m = std::max(m, std::fabs(a[r][j] - b[r][j]));
  return m;
}

TEST(ScratchDecoderRope, LayerZeroRowsMatchTheHostRotation) {
  Ctx& ctx = cpu_ctx();
  const std::vector<int32_t> ids = {3, 1, 4, 1, 5, 9, 2, 6};
  const std::vector<int32_t> rows = {7, 2, 5};
  for (bool differential : {false, true}) {
    SCOPED_TRACE(differential ? "differential (interleaved)" : "standard (rotate-half)");
    ScratchDecoder m(small(differential, {true, "gelu"}), {Device::cpu, DType::f64}, ctx);
    init_scratch_decoder(m, ctx, 31);
    EXPECT_EQ(m.params().find("pos_emb.weight"), nullptr) << "rope replaces the learned positions";
    const auto got = m.attention_rows(ctx, ids, rows, 0);
    const double lambda = differential ? dynamic_cast<DifferentialAttention&>(m.attention(0)).lambda_values()[0] : 0.0;
    const Rotation want = differential ? Rotation::interleaved : Rotation::rotate_half;
    const Rotation other = differential ? Rotation::rotate_half : Rotation::interleaved;
    EXPECT_LT(max_diff(got, host_rows(m, ctx, ids, rows, want, lambda)), 1e-12);
    // The other layout and no rotation at all give other rows: the check can tell them apart.
    EXPECT_GT(max_diff(got, host_rows(m, ctx, ids, rows, other, lambda)), 1e-4);
    EXPECT_GT(max_diff(got, host_rows(m, ctx, ids, rows, Rotation::none, lambda)), 1e-4);
  }
}

TEST(ScratchDecoderOptions, ParameterCountsFollowTheOptions) {
  Ctx& ctx = cpu_ctx();
  auto count = [&](const ScratchDecoderConfig& c) {
    return ScratchDecoder(c, {Device::cpu, DType::f32, false}, ctx).params().total_numel();
  };
  const ScratchDecoderConfig base = small(false, {});
  const int64_t D = base.hidden, F = base.ffn, L = base.layers, P = base.context;
  // rope drops the [context, D] position table; swiglu swaps Linear(D→F)+b, Linear(F→D)+b for
  // three bias-free matrices gate, up [F, D] and down [D, F].
  EXPECT_EQ(count(small(false, {true, "gelu"})), count(base) - P * D);
  const int64_t gelu_ffn = D * F + F + F * D + D, swiglu_ffn = 3 * D * F;
  EXPECT_EQ(count(small(false, {false, "swiglu"})), count(base) - L * gelu_ffn + L * swiglu_ffn);
  EXPECT_EQ(count(small(true, {true, "swiglu"})), count(small(true, {})) - P * D - L * gelu_ffn + L * swiglu_ffn);
}

TEST(ScratchDecoderOptions, CheckpointRecordsTheOptionsAndRefusesOthers) {
  Ctx& ctx = cpu_ctx();
  const std::string dir = (std::filesystem::temp_directory_path() / "attnlab_scratch_options_rt").string();
  std::filesystem::create_directories(dir);
  const ScratchDecoderConfig c = small(true, {true, "swiglu"});
  ScratchDecoder a(c, {Device::cpu, DType::f64}, ctx), b(c, {Device::cpu, DType::f64}, ctx);
  init_scratch_decoder(a, ctx, 1);
  init_scratch_decoder(b, ctx, 2);
  a.save_weights(ctx, dir);
  const ScratchDecoderConfig back = read_scratch_decoder_config(scratch_decoder_file(dir));
  EXPECT_TRUE(back.decoder.rope);
  EXPECT_EQ(back.decoder.ffn, "swiglu");
  EXPECT_EQ(back.ffn, c.ffn);
  b.load_weights(ctx, dir);
  for (const Param& p : a.params())
    EXPECT_EQ(to_host_f64(ctx, p.value), to_host_f64(ctx, b.params().at(p.name).value)) << p.name;
  // A model built from the record is the saved one: the same logits.
  ScratchDecoder r(back, {Device::cpu, DType::f64}, ctx);
  r.load_weights(ctx, dir);
  const std::vector<int32_t> ids = {1, 7, 3, 3, 0};
  Buffer idb = make_ids(Device::cpu, {1, 5}, ids);
  a.plan(ctx, 1, 5);
  r.plan(ctx, 1, 5);
  a.forward(ctx, idb, Tensor(), 0);
  r.forward(ctx, idb, Tensor(), 0);
  EXPECT_EQ(a.logits_f64(ctx), r.logits_f64(ctx));
  // Only rope differs: same tensors but other positions, refused by name.
  ScratchDecoderConfig no_rope = c;
  no_rope.decoder.rope = false;
  ScratchDecoder other(no_rope, {Device::cpu, DType::f64}, ctx);
  try {
    other.load_weights(ctx, dir);
    ADD_FAILURE() << "a rope checkpoint loaded into a model with learned positions";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.decoder"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}

TEST(ScratchDecoderOptions, YamlDecoderFieldsReachTheConfig) {
  const std::string yaml =
      "task: pretrain\n"
      "run: {name: llama_style, out_dir: /tmp/attnlab_unused_runs, seed: 3, device: cpu}\n"
      "model:\n"
      "  from: init:decoder_paper\n"
      "  attention: {variant: differential}\n"
      "  decoder: {rope: true, ffn: swiglu}\n"
      "  arch: {hidden_size: 96, num_attention_heads: 4, num_hidden_layers: 2}\n"
      "data: {format: text, path: /tmp/attnlab_unused_corpus, seq_len: 32}\n"
      "train: {micro_batch: 8, steps: 1}\n";
  const config::ExperimentConfig cfg = config::load_experiment_text(yaml, "llama_style.yaml");
  ScratchDecoderConfig c = scratch_decoder_config(cfg.model);
  EXPECT_TRUE(c.decoder.rope);
  EXPECT_EQ(c.decoder.ffn, "swiglu");
  // 8/3·96 = 256 exactly, already a multiple of 64.
  EXPECT_EQ(c.ffn, 256);
  config::ModelSetupConfig m = cfg.model;
  m.arch["intermediate_size"] = "100";  // an explicit size wins
  EXPECT_EQ(scratch_decoder_config(m).ffn, 100);
  m.arch["hidden_size"] = "512";
  m.arch.erase("intermediate_size");
  // 8/3·512 = 1365.3 → 1408, the next multiple of 64.
  EXPECT_EQ(scratch_decoder_config(m).ffn, int64_t(std::ceil(8.0 * 512 / 3 / 64) * 64));
  EXPECT_EQ(scratch_swiglu_hidden(512), 1408);
  EXPECT_EQ(scratch_swiglu_hidden(500), int64_t(std::ceil(8.0 * 500 / 3 / 64) * 64));
}

TEST(ScratchDecoderOptions, JsonRoundTripAndErrorsNameTheValue) {
  DecoderOptions o;
  EXPECT_TRUE(decoder_options_to_json(o).empty());  // defaults are left out
  o.rope = true;
  o.ffn = "swiglu";
  EXPECT_EQ(decoder_options_from_json(decoder_options_to_json(o), "x"), o);
  auto error = [](const char* text) {
    try {
      decoder_options_from_json(nlohmann::ordered_json::parse(text), "ckpt.safetensors");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error(R"({"ffn": "relu"})").find("decoder option ffn is \"relu\"; use gelu, swiglu"), std::string::npos);
  EXPECT_NE(error(R"({"rope": 1})").find("use true or false"), std::string::npos);
  EXPECT_NE(error(R"({"rpoe": true})").find("unknown decoder option 'rpoe'"), std::string::npos);
  EXPECT_NE(error(R"({"rpoe": true})").find("ckpt.safetensors"), std::string::npos);
}

}  // namespace
}  // namespace attnlab::test
