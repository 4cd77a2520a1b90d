#include <cmath>

#include "core/memory.h"
#include "core/ops/scale.h"
#include "tools/bench/bench.h"
#include "tools/bench/bench_util.h"

namespace attnlab::bench {
namespace {

// y = α·x + β·y (the axpby form reads x and y and writes y: 3 transfers per element).
void run(Runner& r, const std::vector<int64_t>& s) {
  CHECK(s.size() == 1, "scale sizes: N (elements)");
  const int64_t n = s[0];
  const double alpha = 1.0 - (0.8 - 0.6 * std::exp(-0.3)), beta = 1.0;
  for (DType dt : bench_dtypes(r.ctx())) {
    auto x = random_values(size_t(n), 1), y = random_values(size_t(n), 2);
    Buffer tx = upload(r.ctx(), dt, {n}, x), ty = upload(r.ctx(), dt, {n}, y);
    ScaleArgs args{ty.t(), tx.t(), alpha, beta};
    scale_forward(r.ctx(), args);
    auto got = to_host_f64(r.ctx(), ty.t());
    auto xr = round_values(dt, x), yr = round_values(dt, y);
    std::vector<double> ref(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) ref[size_t(i)] = alpha * xr[size_t(i)] + beta * yr[size_t(i)];
    Row row{"scale_forward", dtype_label(dt) + " n=" + std::to_string(n) + " axpby"};
    row.rel_err = rel_error(got, ref);
    verify(r, row, dt);
    // Timed calls keep adding into y; the bytes moved are what the timing measures.
    row.us = r.time_us([&] { scale_forward(r.ctx(), args); });
    row.bytes = 3.0 * double(n) * double(dtype_size(dt));
    r.add(row);
  }
}

ATTNLAB_BENCH("scale", "N (elements)", {{1 << 24}}, run);

}  // namespace
}  // namespace attnlab::bench
