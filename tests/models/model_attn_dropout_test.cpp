// GPT-2's attention-probability dropout (attn_pdrop) in the model: off in eval mode, on in training
// mode, seeded like the other dropouts (the context's Philox stream: the same offsets give the same
// masks), and the model's gradients match finite differences with the masks held fixed.
#include "models/model_test_util.h"

namespace attnlab::test {
namespace {

ModelConfig dropout_config(double attn, double resid) {
  TinyShape s;
  s.D = 12, s.L = 2, s.Hq = 3, s.V = 29, s.P = 16;
  ModelConfig c = tiny_config(ModelArch::gpt2, true, s);
  c.raw["attn_pdrop"] = attn;
  c.raw["resid_pdrop"] = resid;
  c.raw["embd_pdrop"] = 0.0;
  return c;
}

TEST(ModelAttnDropout, TrainingModeDropsReproduciblyAndGradientsMatchFiniteDifferences) {
  Ctx ctx = Ctx::make_cpu(99);
  Model m(dropout_config(0.25, 0.0), {Device::cpu, DType::f64}, ctx);
  Model plain(dropout_config(0.0, 0.0), {Device::cpu, DType::f64}, ctx);
  randomize_params(m, ctx, 4);
  copy_params(ctx, m, ctx, plain);
  const int64_t B = 2, T = 7;
  TokenBatch tb = random_batch(B, T, 29, 6);
  Buffer ids = make_ids(ctx.device, {B, T}, tb.ids), targets = make_ids(ctx.device, {B, T}, tb.targets);
  m.plan(ctx, B, T);
  plain.plan(ctx, B, T);
  auto loss_at = [&](Model& model, uint64_t offset) {
    ctx.rng_offset = offset;
    return to_host_f64(ctx, model.forward(ctx, ids, targets, double(tb.valid)))[0];
  };
  const double eval_loss = loss_at(m, 0), plain_loss = loss_at(plain, 0);
  EXPECT_EQ(eval_loss, plain_loss);  // eval mode: no dropout
  m.set_training(true);
  plain.set_training(true);
  const double a = loss_at(m, 0), b = loss_at(m, 0), c = loss_at(m, 5000);
  EXPECT_EQ(a, b);        // the same offsets, the same masks
  EXPECT_NE(a, c);        // other offsets, other masks
  EXPECT_NE(a, plain_loss);
  EXPECT_EQ(loss_at(plain, 0), plain_loss);  // attn_pdrop 0: training changes nothing

  m.params().zero_grads(ctx);
  loss_at(m, 0);
  m.backward(ctx);
  const auto grads = read_grads(ctx, m);
  for (const char* name : {"transformer.h.0.attn.c_attn.weight", "transformer.h.1.attn.c_attn.bias",
                           "transformer.h.0.ln_1.weight"}) {
    Param& p = m.params().at(name);
    std::vector<double> v = to_host_f64(ctx, p.value);
    for (size_t i : {size_t(1), v.size() / 3, v.size() - 2}) {
      const double h = 1e-6, keep = v[i];
      v[i] = keep + h;
      from_host_f64(ctx, p.value, v);
      const double up = loss_at(m, 0);
      v[i] = keep - h;
      from_host_f64(ctx, p.value, v);
      const double down = loss_at(m, 0);
      v[i] = keep;
      from_host_f64(ctx, p.value, v);
      EXPECT_NEAR(grads.at(name)[i], (up - down) / (2 * h), 1e-6) << name << "[" << i << "]";
    }
  }
}

}  // namespace
}  // namespace attnlab::test
