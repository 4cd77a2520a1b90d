// The cost of one two_pass attention layer (METHODS §1.3–1.4) against the standard layer it
// replaces, on the same weights and input, forward and forward+backward, and of the entropy pass
// alone (the lm_entropy op at the layer's shape: the extra T×V×D GEMM, twice in the exact mode).
//   GPU: a Qwen2.5-1.5B layer (D 1536, Hq 12, Hkv 2, d 128, V 151936), f32 (two_pass runs in f32).
//   CPU: D 128, Hq 4, Hkv 2, d 32 and a vocabulary of `V` (size 3), f32, so a run takes seconds.
// Verification: with fresh gates (fc2 = 0) the two_pass layer's output equals the standard layer's
// exactly (the layer's defining property); rel_err is that difference.
#include "core/layers/attention_layer.h"
#include "core/models/decoder_block.h"
#include "core/memory.h"
#include "core/models/weights.h"
#include "core/ops/lm_entropy.h"
#include "tools/bench/bench.h"
#include "tools/bench/bench_util.h"

namespace attnlab::bench {
namespace {

ModelConfig layer_config(bool gpu, int64_t V, bool two_pass) {
  ModelConfig c = model_config_defaults(ModelArch::qwen2);
  c.hidden_size = gpu ? 1536 : 128;
  c.num_layers = 1;
  c.num_heads = gpu ? 12 : 4;
  c.num_kv_heads = 2;
  c.head_dim = gpu ? 128 : 32;
  c.intermediate_size = gpu ? 8960 : 256;
  c.vocab_size = V;
  c.max_position_embeddings = 32768;
  c.rope_theta = 1e6;
  c.norm_eps = 1e-6;
  c.tie_word_embeddings = true;
  if (two_pass) c.attnlab = nlohmann::ordered_json::parse(R"({"attention": {"variant": "two_pass"}})");
  c.source = gpu ? "a Qwen2.5-1.5B-shaped layer" : "a small Qwen2-shaped layer";
  return c;
}

struct PlannedLayer {
  ActivationPlanner planner;
  AttentionLayer* layer = nullptr;
  PlannedLayer(Model& m, Ctx& ctx, DType dt, int64_t B, int64_t T) : planner(ctx.device) {
    layer = &m.block(0).attention();
    planner.begin_sizing();
    layer->plan(planner, ctx, dt, B, T);
    planner.begin_carving();
    layer->plan(planner, ctx, dt, B, T);
    planner.finish();
  }
};

void run(Runner& r, const std::vector<int64_t>& s) {
  CHECK(s.size() == 2 || s.size() == 3, "two_pass_layer sizes: B T [V] (V: vocabulary, default 151936)");
  const int64_t B = s[0], T = s[1], V = s.size() == 3 ? s[2] : 151936;
  CHECK(B >= 1 && T >= 1 && V >= 2, "two_pass_layer: need B >= 1, T >= 1, V >= 2");
  Ctx& ctx = r.ctx();
  const bool gpu = ctx.is_cuda();
  const DType dt = DType::f32;
  Model plain(layer_config(gpu, V, false), {ctx.device, dt, true}, ctx);
  Model gated(layer_config(gpu, V, true), {ctx.device, dt, true}, ctx);
  init_weights(plain, ctx, 1);
  init_weights(gated, ctx, 1);  // the gates' fc1 drawn, fc2 zero by rule
  for (const Param& p : plain.params()) copy_tensor(ctx, gated.params().at(p.name).value, p.value);
  const int64_t D = plain.config().hidden_size;
  const std::string shape = "f32 B=" + std::to_string(B) + " T=" + std::to_string(T) + " D=" + std::to_string(D) +
                            " V=" + std::to_string(V);

  Buffer x = upload(ctx, dt, {B, T, D}, random_values(size_t(B * T * D), 3, -1, 1));
  Buffer y_plain(ctx.device, dt, {B, T, D}), y_gated(ctx.device, dt, {B, T, D});
  Buffer dy = upload(ctx, dt, {B, T, D}, random_values(size_t(B * T * D), 4, -1, 1));
  Buffer dx(ctx.device, dt, {B, T, D});
  PlannedLayer lp(plain, ctx, dt, B, T), lg(gated, ctx, dt, B, T);
  lp.layer->forward(ctx, x, y_plain);
  lg.layer->forward(ctx, x, y_gated);
  const double err = rel_error(to_host_f64(ctx, y_gated.t()), to_host_f64(ctx, y_plain.t()));

  auto add = [&](const char* op, const std::function<void()>& fn, const std::string& note) {
    Row row{op, shape};
    row.rel_err = err;
    verify(r, row, dt, 0.0, 0.0);
    row.us = r.time_us(fn);
    row.note = note;
    r.add(row);
  };
  add("standard_layer_fwd", [&] { lp.layer->forward(ctx, x, y_plain); }, "the layer two_pass replaces");
  add("two_pass_layer_fwd", [&] { lg.layer->forward(ctx, x, y_gated); }, "draft + entropy + gather + gates + gated pass");
  add("standard_layer_fwd_bwd", [&] {
    lp.layer->forward(ctx, x, y_plain);
    lp.layer->backward(ctx, dy, x, dx);
  }, "");
  add("two_pass_layer_fwd_bwd", [&] {
    lg.layer->forward(ctx, x, y_gated);
    lg.layer->backward(ctx, dy, x, dx);
  }, "no backward through the draft / entropy");

  // The entropy pass alone (exact mode: the vocabulary GEMM twice), the layer's dominant extra.
  const int64_t tile = std::min<int64_t>(4096, V);
  Buffer e(ctx.device, dt, {B * T}), scratch(ctx.device, dt, {B * T, tile}), state(ctx.device, dt, {B * T, 3});
  LmEntropyArgs a;
  a.x = x.t().view({B * T, D});
  a.emb = gated.params().at("model.embed_tokens.weight").value;
  a.entropy = e;
  a.scratch = scratch;
  a.state = state;
  a.vocab = V;
  Row row{"two_pass_entropy", shape};
  row.rel_err = err;
  verify(r, row, dt, 0.0, 0.0);
  row.us = r.time_us([&] { lm_entropy_forward(ctx, a); });
  row.flops = 2.0 * 2.0 * double(B * T) * double(V) * double(D);
  row.peak_tflops = kPeakFp32Tflops;
  row.note = "lm_entropy, exact mode (two passes over the vocabulary)";
  r.add(row);
}

ATTNLAB_BENCH("two_pass_layer",
              "B T [V] (GPU: a Qwen2.5-1.5B layer; CPU: D 128, Hq 4, Hkv 2, d 32; f32; V default 151936)",
              {{1, 2048}}, run, false, {{1, 128, 8192}});

}  // namespace
}  // namespace attnlab::bench
