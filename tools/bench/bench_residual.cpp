#include "core/memory.h"
#include "core/ops/residual.h"
#include "tools/bench/bench.h"
#include "tools/bench/bench_util.h"

namespace attnlab::bench {
namespace {

void run(Runner& r, const std::vector<int64_t>& s) {
  CHECK(s.size() == 1, "residual sizes: N (elements)");
  const int64_t n = s[0];
  for (DType dt : bench_dtypes(r.ctx())) {
    auto a = random_values(size_t(n), 1), b = random_values(size_t(n), 2);
    Buffer ta = upload(r.ctx(), dt, {n}, a), tb = upload(r.ctx(), dt, {n}, b), to(r.ctx().device, dt, {n});
    ResidualArgs args{to.t(), ta.t(), tb.t()};
    residual_forward(r.ctx(), args);
    auto got = to_host_f64(r.ctx(), to.t());
    auto ar = round_values(dt, a), br = round_values(dt, b);
    std::vector<double> ref(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) ref[i] = ar[i] + br[i];
    Row row{"residual_forward", dtype_label(dt) + " n=" + std::to_string(n)};
    row.rel_err = rel_error(got, ref);
    verify(r, row, dt);
    row.us = r.time_us([&] { residual_forward(r.ctx(), args); });
    row.bytes = 3.0 * n * dtype_size(dt);
    r.add(row);
  }
}

ATTNLAB_BENCH("residual", "N (elements)", {{1 << 24}}, run);

}  // namespace
}  // namespace attnlab::bench
