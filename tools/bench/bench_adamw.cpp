#include <cmath>

#include "optim/adamw.h"
#include "tools/bench/bench.h"
#include "tools/bench/bench_optim_util.h"
#include "tools/bench/bench_util.h"

namespace attnlab::bench {
namespace {

void run(Runner& r, const std::vector<int64_t>& s) {
  CHECK(s.size() == 4, "adamw sizes: L C V T (GPT-2 layout)");
  Ctx& c = r.ctx();
  const auto sizes = gpt2_param_sizes(s[0], s[1], s[2], s[3]);
  const auto decay = gpt2_decay_mask(s[0]);
  int64_t total = 0;
  for (int64_t n : sizes) total += n;
  const auto p0 = round_values(DType::f32, tiled_random(size_t(total), 1, -0.1, 0.1));
  const auto g0 = round_values(DType::f32, tiled_random(size_t(total), 2, -1e-3, 1e-3));
  const auto m0 = round_values(DType::f32, tiled_random(size_t(total), 3, -1e-4, 1e-4));
  const auto v0 = round_values(DType::f32, tiled_random(size_t(total), 4, 1e-9, 1e-7));
  Buffer param = upload(c, DType::f32, {total}, p0), grad = upload(c, DType::f32, {total}, g0);
  Buffer m(c.device, DType::f32, {total}), v(c.device, DType::f32, {total});
  Buffer work(c.device, DType::bf16, {total});
  Buffer scale = upload(c, DType::f32, {1}, {0.5});
  const auto ps = carve(param.t(), sizes), gs = carve(grad.t(), sizes), ms = carve(m.t(), sizes),
             vs = carve(v.t(), sizes), ws = carve(work.t(), sizes);
  AdamWHyper h;
  h.lr = 6e-4;
  h.weight_decay = 0.1;
  h.beta2 = 0.95;
  h.step = 1;

  for (bool with_bf16 : {true, false}) {
    std::vector<ParamSlot> slots;
    for (size_t k = 0; k < sizes.size(); ++k)
      slots.push_back({ps[k], gs[k], ms[k], vs[k], with_bf16 ? ws[k] : Tensor{}, bool(decay[k])});
    ParamTable table(c, slots);
    from_host_f64(c, param.t(), p0);
    from_host_f64(c, m.t(), m0);
    from_host_f64(c, v.t(), v0);
    const AdamWArgs args{h, scale.t(), Tensor{}};
    adamw_step(c, args, table);

    // Every 9973rd element against METHODS P12 in double (gradient scale 0.5).
    auto got = to_host_f64(c, param.t());
    std::vector<double> sample_got, sample_ref;
    size_t slot = 0;
    int64_t slot_end = sizes[0];
    for (int64_t i = 0; i < total; i += 9973) {
      while (i >= slot_end) slot_end += sizes[++slot];
      const double g = 0.5 * g0[size_t(i)];
      double p = p0[size_t(i)] * (decay[slot] ? 1 - h.lr * h.weight_decay : 1.0);
      const double mi = h.beta1 * m0[size_t(i)] + (1 - h.beta1) * g;
      const double vi = h.beta2 * v0[size_t(i)] + (1 - h.beta2) * g * g;
      p -= h.lr * (mi / (1 - h.beta1)) / (std::sqrt(vi / (1 - h.beta2)) + h.eps);
      sample_got.push_back(got[size_t(i)]);
      sample_ref.push_back(p);
    }
    const std::string what = with_bf16 ? "f32 master + bf16 copy" : "f32 master";
    Row row{"adamw", what + ", " + std::to_string(sizes.size()) + " tensors, " + std::to_string(total)};
    row.rel_err = rel_error(sample_got, sample_ref);
    verify(r, row, DType::f32, 1e-6);
    row.us = r.time_us([&] { adamw_step(c, args, table); });
    // Read param, grad, m, v; write param, m, v (and the bf16 copy).
    row.bytes = double(total) * (with_bf16 ? 30.0 : 28.0);
    row.note = "one launch (multi-tensor table)";
    r.add(row);

    if (with_bf16) {
      Row loop = row;
      loop.us = r.time_us([&] {
        for (const ParamSlot& p : slots) adamw_step(c, args, p);
      });
      loop.note = "one launch per tensor (" + std::to_string(slots.size()) + ")";
      r.add(loop);
    }
  }
}

ATTNLAB_BENCH("adamw", "L C V T (GPT-2 parameter layout)", {{12, 768, 50257, 1024}}, run);

}  // namespace
}  // namespace attnlab::bench
