#include <cmath>

#include "optim/grad_norm.h"
#include "tools/bench/bench.h"
#include "tools/bench/bench_optim_util.h"
#include "tools/bench/bench_util.h"

namespace attnlab::bench {
namespace {

void run(Runner& r, const std::vector<int64_t>& s) {
  CHECK(s.size() == 4, "grad_norm sizes: L C V T (GPT-2 layout)");
  Ctx& c = r.ctx();
  const auto sizes = gpt2_param_sizes(s[0], s[1], s[2], s[3]);
  int64_t total = 0;
  for (int64_t n : sizes) total += n;
  auto g = round_values(DType::f32, tiled_random(size_t(total), 3, -1e-3, 1e-3));
  Buffer flat = upload(c, DType::f32, {total}, g);
  std::vector<ParamSlot> slots;
  for (const Tensor& t : carve(flat.t(), sizes)) {
    ParamSlot p;
    p.grad = t;
    slots.push_back(p);
  }
  ParamTable table(c, slots);
  Buffer norm(c.device, DType::f32, {1}), scale(c.device, DType::f32, {1}), flag(c.device, DType::i32, {1});
  GradNormArgs args{norm.t(), scale.t(), flag.t(), 1.0};
  grad_norm(c, table, args);
  double sumsq = 0;
  for (double x : g) sumsq += x * x;
  Row row{"grad_norm", "f32 " + std::to_string(sizes.size()) + " tensors, " + std::to_string(total) + " params"};
  row.rel_err = rel_error(to_host_f64(c, norm.t()), {std::sqrt(sumsq)});
  verify(r, row, DType::f32, 1e-6);
  row.us = r.time_us([&] { grad_norm(c, table, args); });
  row.bytes = 4.0 * double(total);
  row.note = "+ clip scale and NaN flag; deterministic";
  r.add(row);
}

ATTNLAB_BENCH("grad_norm", "L C V T (GPT-2 parameter layout)", {{12, 768, 50257, 1024}}, run);

}  // namespace
}  // namespace attnlab::bench
