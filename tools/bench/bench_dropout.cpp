#include "core/memory.h"
#include "core/ops/dropout.h"
#include "tools/bench/bench.h"
#include "tools/bench/bench_util.h"

namespace attnlab::bench {
namespace {

void run(Runner& r, const std::vector<int64_t>& s) {
  CHECK(s.size() == 1, "dropout sizes: N (elements)");
  const int64_t n = s[0];
  const double p = 0.1;
  auto x = random_values(size_t(n), 1, 0.5, 1.5);  // never zero: a zero out means dropped
  for (DType dt : bench_dtypes(r.ctx())) {
    Ctx& c = r.ctx();
    const uint64_t offset = c.take_rng(uint64_t(n));
    Ctx cpu = Ctx::make_cpu(c.seed);
    Buffer cx = upload(cpu, DType::f64, {n}, round_values(dt, x)), cy(Device::cpu, DType::f64, {n});
    dropout_forward(cpu, {cy.t(), cx.t(), p, offset});
    auto ref = to_host_f64(cpu, cy.t());
    Buffer tx = upload(c, dt, {n}, x), ty(c.device, dt, {n});
    DropoutArgs a{ty.t(), tx.t(), p, offset};
    dropout_forward(c, a);
    auto got = to_host_f64(c, ty.t());
    int64_t mask_mismatch = 0;
    for (int64_t i = 0; i < n; ++i) mask_mismatch += (got[i] == 0.0) != (ref[i] == 0.0);
    Row row{"dropout_forward", dtype_label(dt) + " n=" + std::to_string(n) + " p=0.1"};
    row.rel_err = mask_mismatch ? INFINITY : rel_error(got, ref);
    verify(r, row, dt);
    row.us = r.time_us([&] { dropout_forward(c, a); });
    row.bytes = 2.0 * n * dtype_size(dt);  // backward is the same kernel on dy
    r.add(row);
  }
}

// GPT-2 124M residual dropout: B·T·C = 8·1024·768.
ATTNLAB_BENCH("dropout", "N (elements)", {{8 * 1024 * 768}}, run);

}  // namespace
}  // namespace attnlab::bench
