#include "core/memory.h"
#include "core/ops/permute.h"
#include "tools/bench/bench.h"
#include "tools/bench/bench_util.h"

namespace attnlab::bench {
namespace {

void run(Runner& r, const std::vector<int64_t>& s) {
  CHECK(s.size() == 4, "permute sizes: B T H d");
  const int64_t B = s[0], T = s[1], H = s[2], d = s[3], n = B * T * H * d;
  const std::string shape = std::to_string(B) + "x" + std::to_string(T) + "x" + std::to_string(H) + "x" + std::to_string(d);
  auto x = random_values(size_t(n), 7);
  Ctx cpu = Ctx::make_cpu();
  for (DType dt : bench_dtypes(r.ctx())) {
    Buffer cx = upload(cpu, DType::f64, {B, T, H, d}, round_values(dt, x)), cy(Device::cpu, DType::f64, {B, H, T, d});
    permute_forward(cpu, {cy.t(), cx.t()});
    Buffer tx = upload(r.ctx(), dt, {B, T, H, d}, x), ty(r.ctx().device, dt, {B, H, T, d});
    PermuteArgs a{ty.t(), tx.t()};
    permute_forward(r.ctx(), a);
    Row row{"permute_forward", dtype_label(dt) + " BTHd->BHTd " + shape};
    row.rel_err = rel_error(to_host_f64(r.ctx(), ty.t()), to_host_f64(cpu, cy.t()));
    verify(r, row, dt, 0.0, 0.0);  // a copy: exact
    row.us = r.time_us([&] { permute_forward(r.ctx(), a); });
    row.bytes = 2.0 * n * dtype_size(dt);
    r.add(row);
  }
}

// V (or the attention output) of B·T = 16384 tokens, 12 heads of 128.
ATTNLAB_BENCH("permute", "B T H d", {{16, 1024, 12, 128}}, run);

}  // namespace
}  // namespace attnlab::bench
