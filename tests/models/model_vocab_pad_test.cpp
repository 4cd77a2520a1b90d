// The padded vocabulary (ModelOptions::vocab_multiple, core/models/model.h): a model whose
// embedding / LM head rows are rounded up to a multiple of 64 must be the same model as the
// unpadded one in everything users see: logits, loss, the [V, C] gradients, AdamW updates,
// generation and checkpoints. V = 37 (tiny_config) pads to 64.
#include <algorithm>
#include <cmath>

#include "core/io/safetensors.h"
#include "core/models/scratch_decoder.h"
#include "core/models/weights.h"
#include "train/optimizer.h"
#include "io/io_test_util.h"
#include "models/generate_test_util.h"
#include "models/vocab_pad_test_util.h"

namespace attnlab::test {
namespace {

ModelOptions options(DType dt, int64_t multiple, bool grads = true) {
  ModelOptions o{Device::cpu, dt, grads};
  o.vocab_multiple = multiple;
  return o;
}

struct PadCase {
  const char* name;
  ModelArch arch;
  bool tied;
};

class VocabPad : public ::testing::TestWithParam<PadCase> {};

// Padding on and off: the same logits, loss and gradients. The head's extra columns are zero
// logits that the loss never reads, and the extra rows add exact zeros to dh, so in f64 the
// results agree to rounding (bitwise on this CPU build, checked at 1e-12 to allow a different
// GEMM blocking for the wider head).
TEST_P(VocabPad, SameLogitsLossAndGradientsWithAndWithoutPadding) {
  const PadCase& pc = GetParam();
  Ctx& ctx = cpu_ctx();
  const ModelConfig cfg = tiny_config(pc.arch, pc.tied);
  ASSERT_NE(cfg.vocab_size % 64, 0) << "the test needs a vocabulary that is not a multiple of 64";
  Model padded(cfg, options(DType::f64, 64), ctx), plain(cfg, options(DType::f64, 1), ctx);
  EXPECT_EQ(padded.vocab(), cfg.vocab_size);
  EXPECT_EQ(padded.padded_vocab(), 64);
  EXPECT_EQ(plain.padded_vocab(), cfg.vocab_size);
  EXPECT_EQ(padded.token_embedding()->shape[0], 64);
  EXPECT_EQ(padded.lm_head_weight()->shape[0], 64);
  EXPECT_EQ(padded.lm_head_weight() == padded.token_embedding(), pc.tied);
  EXPECT_EQ(padded.params().total_numel(), plain.params().total_numel()) << "counts exclude the padding";
  randomize_params(padded, ctx, 41);
  randomize_params(plain, ctx, 41);

  const int64_t B = 2, T = 6;
  const TokenBatch tb = random_batch(B, T, cfg.vocab_size, 42);
  const PadPass a = pad_pass(padded, ctx, tb, B, T), b = pad_pass(plain, ctx, tb, B, T);
  EXPECT_EQ(padded.padded_logits().dim(2), 64);
  ASSERT_EQ(a.logits.size(), size_t(B * T * cfg.vocab_size));
  EXPECT_LE(max_abs_diff(a.logits, b.logits), 1e-12);
  EXPECT_LE(std::fabs(a.loss - b.loss), 1e-12 * std::fabs(b.loss));
  ASSERT_EQ(a.grads.size(), b.grads.size());
  for (const auto& [name, g] : b.grads) {
    ASSERT_EQ(a.grads.at(name).size(), g.size()) << name;
    EXPECT_LE(rel_err(a.grads.at(name), g), 1e-12) << name;
  }

  // The padding rows: zero values and exactly zero gradients.
  for (Param* p : {padded.token_embedding(), padded.lm_head_weight()}) {
    EXPECT_EQ(p->pad_rows, 64 - cfg.vocab_size) << p->name;
    EXPECT_TRUE(all_zero(padding_of(ctx, *p, p->value))) << p->name;
    EXPECT_TRUE(all_zero(padding_of(ctx, *p, p->grad))) << p->name << ": padding rows got gradient";
  }
}

// The loss must not depend on the padding rows at all: with garbage in them (which an unmasked
// loss would see as huge logits) the loss and the real rows' gradients are unchanged, and the
// padding rows still get zero gradient (the loss's padding columns are zeroed in backward).
TEST_P(VocabPad, LossIgnoresWhateverThePaddingRowsHold) {
  const PadCase& pc = GetParam();
  Ctx& ctx = cpu_ctx();
  const ModelConfig cfg = tiny_config(pc.arch, pc.tied);
  Model m(cfg, options(DType::f64, 64), ctx);
  randomize_params(m, ctx, 43);
  const int64_t B = 2, T = 5;
  const TokenBatch tb = random_batch(B, T, cfg.vocab_size, 44);
  const PadPass clean = pad_pass(m, ctx, tb, B, T);

  Param* head = m.lm_head_weight();
  const int64_t V = m.vocab(), Vp = m.padded_vocab(), D = head->shape[1];
  std::vector<double> w = to_host_f64(ctx, head->value);
  for (size_t i = size_t(V * D); i < w.size(); ++i) w[i] = 30.0 + double(i % 7);
  from_host_f64(ctx, head->value, w);
  const PadPass dirty = pad_pass(m, ctx, tb, B, T);
  // The padded logits really are large now (the poke is not a no-op; backward overwrote the
  // logits buffer, so a forward without loss reads them again) ...
  Buffer ids = make_ids(Device::cpu, {B, T}, tb.ids);
  m.forward(ctx, ids, Tensor(), 0);
  const std::vector<double> all = to_host_f64(ctx, m.padded_logits());
  double pad_max = -INFINITY;
  for (int64_t r = 0; r < B * T; ++r)
    for (int64_t v = V; v < Vp; ++v) pad_max = std::max(pad_max, std::fabs(all[size_t(r * Vp + v)]));
  EXPECT_GT(pad_max, 1.0);
  // ... and nothing the loss gives back changed.
  EXPECT_EQ(dirty.loss, clean.loss);
  EXPECT_EQ(dirty.logits, clean.logits);
  for (const auto& [name, g] : clean.grads) EXPECT_EQ(dirty.grads.at(name), g) << name;
  EXPECT_TRUE(all_zero(padding_of(ctx, *head, head->grad)));
}

// Several AdamW steps with weight decay (the trainer's optimizer, gradient clipping on): the real
// rows move, the padding rows keep exactly zero gradients and values. The optimizer leaves the
// padding out altogether (no state for it: its element count is the checkpoint count).
TEST_P(VocabPad, AdamWWithWeightDecayKeepsThePaddingZero) {
  const PadCase& pc = GetParam();
  Ctx& ctx = cpu_ctx();
  Model m(tiny_config(pc.arch, pc.tied), options(DType::f32, 64), ctx);
  randomize_params(m, ctx, 45);
  const config::OptimConfig oc = decaying_adamw();
  train::TrainOptimizer opt(m.params(), oc, ctx, nullptr);
  EXPECT_EQ(opt.trainable_numel(), m.params().trainable_numel());
  Param* head = m.lm_head_weight();
  const std::vector<double> before = to_host_f64(ctx, head->unpadded(head->value));
  const int64_t B = 2, T = 6;
  for (int step = 0; step < 4; ++step) {
    const TokenBatch tb = random_batch(B, T, m.vocab(), 46 + uint64_t(step));
    pad_pass(m, ctx, tb, B, T);
    EXPECT_TRUE(all_zero(padding_of(ctx, *head, head->grad))) << "step " << step;
    opt.step(ctx, oc.lr);
    ASSERT_EQ(to_host_f64(ctx, opt.nonfinite())[0], 0.0);
    opt.record_outcome(true);
  }
  EXPECT_NE(to_host_f64(ctx, head->unpadded(head->value)), before) << "the real rows should have trained";
  for (Param* p : {m.token_embedding(), head})
    EXPECT_TRUE(all_zero(padding_of(ctx, *p, p->value))) << p->name << ": padding rows moved";
}

// Generation never emits a padding id, even when the padding rows are made adversarial: each of
// the first D padding rows gets a huge multiple of one unit vector, so the largest padded logit of
// every position is huge (checked on the training path's padded logits) and an argmax or sampler
// over all Vp columns would pick a padding id. Greedy and sampled generation must stay below V and
// produce exactly what the unpoked model produces.
TEST_P(VocabPad, GenerationNeverEmitsPaddingIds) {
  const PadCase& pc = GetParam();
  Ctx& ctx = cpu_ctx();
  const ModelConfig cfg = gen_config({pc.name, pc.arch, pc.tied, nullptr});
  Model m(cfg, options(DType::f64, 64, false), ctx);
  randomize_params(m, ctx, 47);
  const std::vector<std::vector<int32_t>> prompts = {rand_ints(5, 0, int32_t(cfg.vocab_size), 48),
                                                     rand_ints(3, 0, int32_t(cfg.vocab_size), 49)};
  GenerationConfig greedy;
  greedy.max_new_tokens = 6;
  GenerationConfig sampled = greedy;
  sampled.do_sample = true;
  sampled.top_k = 0;  // every column a candidate
  const GenerationResult clean_greedy = generate(m, ctx, prompts, greedy);
  ctx.rng_offset = 0;
  const GenerationResult clean_sampled = generate(m, ctx, prompts, sampled);

  Param* head = m.lm_head_weight();
  const int64_t V = m.vocab(), Vp = m.padded_vocab(), D = head->shape[1];
  ASSERT_GE(Vp - V, D) << "the poke needs one padding row per hidden dimension";
  std::vector<double> w = to_host_f64(ctx, head->value);
  for (int64_t j = 0; j < D; ++j) w[size_t((V + j) * D + j)] = 1e6;
  from_host_f64(ctx, head->value, w);

  // The poke is adversarial: an unmasked argmax over the padded logits picks a padding column.
  m.plan(ctx, 1, int64_t(prompts[0].size()));
  Buffer ids = make_ids(Device::cpu, {1, int64_t(prompts[0].size())}, prompts[0]);
  m.forward(ctx, ids, Tensor(), 0);
  const std::vector<double> all = to_host_f64(ctx, m.padded_logits());
  for (size_t t = 0; t < prompts[0].size(); ++t) {
    const auto row = all.begin() + std::ptrdiff_t(t * size_t(Vp));
    EXPECT_GE(std::max_element(row, row + Vp) - row, V) << "position " << t;
  }

  const GenerationResult got_greedy = generate(m, ctx, prompts, greedy);
  ctx.rng_offset = 0;
  const GenerationResult got_sampled = generate(m, ctx, prompts, sampled);
  for (const GenerationResult* r : {&got_greedy, &got_sampled})
    for (const auto& row : r->tokens)
      for (int32_t id : row) EXPECT_TRUE(id >= 0 && id < V) << "generated id " << id << " of V = " << V;
  EXPECT_EQ(got_greedy.tokens, clean_greedy.tokens);
  EXPECT_EQ(got_sampled.tokens, clean_sampled.tokens);
}

// Checkpoints are HF's [V, C]: the padded model writes no padding rows, the file loads into a
// padded and an unpadded model alike, and loading zeroes padding rows that held anything.
TEST_P(VocabPad, CheckpointsHoldTheUnpaddedTable) {
  const PadCase& pc = GetParam();
  Ctx& ctx = cpu_ctx();
  const ModelConfig cfg = tiny_config(pc.arch, pc.tied);
  Model m(cfg, options(DType::f32, 64), ctx);
  randomize_params(m, ctx, 50);
  ScratchDir dir;
  save_model(m, ctx, dir.path());

  SafetensorsFile f = SafetensorsFile::open(dir.file("model.safetensors"));
  const std::string wte = pc.arch == ModelArch::gpt2 ? "transformer.wte.weight" : "model.embed_tokens.weight";
  const std::vector<int64_t> want{cfg.vocab_size, cfg.hidden_size};
  EXPECT_EQ(f.info(wte).shape, want);
  EXPECT_EQ(f.has("lm_head.weight"), !pc.tied) << "a tied head is stored once, as the embedding";
  if (!pc.tied) EXPECT_EQ(f.info("lm_head.weight").shape, want);

  Model plain(cfg, options(DType::f32, 1), ctx);
  load_weights(plain, ctx, dir.path());
  Model padded(cfg, options(DType::f32, 64), ctx);
  randomize_params(padded, ctx, 51);
  for (Param& p : padded.params())  // garbage in the padding rows: load must clear it
    if (p.pad_rows > 0) from_host_f64(ctx, p.value, std::vector<double>(size_t(p.numel()), 5.0));
  load_weights(padded, ctx, dir.path());
  for (const Param& p : m.params()) {
    const std::vector<double> real = to_host_f64(ctx, p.unpadded(p.value));
    EXPECT_EQ(to_host_f64(ctx, plain.params().at(p.name).value), real) << p.name;
    const Param& q = padded.params().at(p.name);
    EXPECT_EQ(to_host_f64(ctx, q.unpadded(q.value)), real) << p.name;
    if (q.pad_rows > 0) EXPECT_TRUE(all_zero(padding_of(ctx, q, q.value))) << p.name;
  }

  // init_weights draws the same values with padding on and off (padding rows zero).
  init_weights(padded, ctx, 7);
  init_weights(plain, ctx, 7);
  for (const Param& p : plain.params()) {
    const Param& q = padded.params().at(p.name);
    EXPECT_EQ(to_host_f64(ctx, q.unpadded(q.value)), to_host_f64(ctx, p.value)) << p.name;
    if (q.pad_rows > 0) EXPECT_TRUE(all_zero(padding_of(ctx, q, q.value))) << p.name;
  }
}

INSTANTIATE_TEST_SUITE_P(Tiny, VocabPad,
                         ::testing::Values(PadCase{"gpt2_tied", ModelArch::gpt2, true},
                                           PadCase{"qwen2_untied", ModelArch::qwen2, false},
                                           PadCase{"qwen3_tied", ModelArch::qwen3, true}),
                         [](const auto& i) { return std::string(i.param.name); });

// The from-scratch decoders (untied output Linear with bias) pad their output layer the same way:
// the same logits, loss and [V, ·] gradients as unpadded, zero gradient in the padding (weight
// rows and bias entries), and checkpoints without the padding that load into either.
TEST(VocabPadScratchDecoder, SameAsUnpaddedAndCheckpointsUnpadded) {
  Ctx& ctx = cpu_ctx();
  for (bool differential : {false, true}) {
    SCOPED_TRACE(differential ? "differential" : "standard");
    const ScratchDecoderConfig c{.differential = differential, .vocab_size = 11, .hidden = 8, .layers = 2,
                                 .heads = 4, .head_dim = 2, .ffn = 16, .context = 7, .pad_id = 10, .dropout = 0};
    ScratchDecoder padded(c, options(DType::f64, 64), ctx), plain(c, options(DType::f64, 1), ctx);
    EXPECT_EQ(padded.padded_vocab(), 64);
    EXPECT_EQ(plain.padded_vocab(), 11);
    EXPECT_EQ(padded.params().total_numel(), plain.params().total_numel());
    init_scratch_decoder(padded, ctx, 3);
    init_scratch_decoder(plain, ctx, 3);
    const int64_t B = 2, T = 6;
    const TokenBatch tb = random_batch(B, T, c.vocab_size, 52);
    Buffer ids = make_ids(Device::cpu, {B, T}, tb.ids), targets = make_ids(Device::cpu, {B, T}, tb.targets);
    std::vector<double> logits[2], loss(2);
    std::map<std::string, std::vector<double>> grads[2];
    ScratchDecoder* models[2] = {&padded, &plain};
    for (int i = 0; i < 2; ++i) {
      ScratchDecoder& m = *models[i];
      m.plan(ctx, B, T);
      m.params().zero_grads(ctx);
      loss[size_t(i)] = to_host_f64(ctx, m.forward(ctx, ids, targets, double(tb.valid)))[0];
      logits[i] = m.logits_f64(ctx);
      m.backward(ctx);
      for (const Param& p : m.params()) grads[i][p.name] = to_host_f64(ctx, p.unpadded(p.grad));
    }
    EXPECT_LE(max_abs_diff(logits[0], logits[1]), 1e-12);
    EXPECT_LE(std::fabs(loss[0] - loss[1]), 1e-12 * loss[1]);
    for (const auto& [name, g] : grads[1]) EXPECT_LE(rel_err(grads[0].at(name), g), 1e-12) << name;
    for (const char* name : {"output.weight", "output.bias"}) {
      const Param& p = padded.params().at(name);
      EXPECT_EQ(p.pad_rows, 64 - 11) << name;
      const std::vector<double> g = to_host_f64(ctx, p.grad), v = to_host_f64(ctx, p.value);
      const size_t real = size_t(p.stored_numel());
      EXPECT_TRUE(all_zero({g.begin() + std::ptrdiff_t(real), g.end()})) << name << " gradient";
      EXPECT_TRUE(all_zero({v.begin() + std::ptrdiff_t(real), v.end()})) << name << " value";
    }

    ScratchDir dir;
    save_scratch_decoder(padded, ctx, dir.file("m.safetensors"));
    SafetensorsFile f = SafetensorsFile::open(dir.file("m.safetensors"));
    EXPECT_EQ(f.info("output.weight").shape, (std::vector<int64_t>{11, 8}));
    EXPECT_EQ(f.info("output.bias").shape, (std::vector<int64_t>{11}));
    ScratchDecoder back(c, options(DType::f64, 1), ctx);
    load_scratch_decoder(back, ctx, dir.file("m.safetensors"));
    for (const Param& p : plain.params())
      EXPECT_EQ(to_host_f64(ctx, back.params().at(p.name).value), to_host_f64(ctx, p.value)) << p.name;
  }
}

TEST(VocabPadSize, RoundsUpAndRejectsBadMultiples) {
  EXPECT_EQ(padded_vocab_size(50257, 64), 50304);
  EXPECT_EQ(padded_vocab_size(151936, 64), 151936);
  EXPECT_EQ(padded_vocab_size(37, 1), 37);
  EXPECT_EQ(padded_vocab_size(1, 64), 64);
  EXPECT_THROW(padded_vocab_size(37, 0), Error);
  EXPECT_THROW(padded_vocab_size(0, 64), Error);
}

}  // namespace
}  // namespace attnlab::test
