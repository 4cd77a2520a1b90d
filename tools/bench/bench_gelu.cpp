#include "core/memory.h"
#include "core/ops/gelu.h"
#include "tools/bench/bench.h"
#include "tools/bench/bench_util.h"

namespace attnlab::bench {
namespace {

// The CPU op in f64 on the dtype-rounded inputs is the reference.
std::vector<double> reference(GeluKind kind, int64_t n, const std::vector<double>& x, const std::vector<double>* dy) {
  Ctx cpu = Ctx::make_cpu();
  Buffer tx = upload(cpu, DType::f64, {n}, x), out(Device::cpu, DType::f64, {n});
  if (dy) {
    Buffer tdy = upload(cpu, DType::f64, {n}, *dy);
    gelu_backward(cpu, {out.t(), tdy.t(), tx.t(), kind});
  } else {
    gelu_forward(cpu, {out.t(), tx.t(), kind});
  }
  return to_host_f64(cpu, out.t());
}

void run(Runner& r, const std::vector<int64_t>& s) {
  CHECK(s.size() == 2, "gelu sizes: rows C");
  const int64_t rows = s[0], cols = s[1], n = rows * cols;
  const std::string shape = std::to_string(rows) + "x" + std::to_string(cols);
  auto x = random_values(size_t(n), 1, -4.0, 4.0), dy = random_values(size_t(n), 2);
  for (DType dt : bench_dtypes(r.ctx())) {
    auto xr = round_values(dt, x), dyr = round_values(dt, dy);
    Buffer tx = upload(r.ctx(), dt, {rows, cols}, x), tdy = upload(r.ctx(), dt, {rows, cols}, dy);
    Buffer ty(r.ctx().device, dt, {rows, cols}), tdx(r.ctx().device, dt, {rows, cols});
    for (GeluKind kind : {GeluKind::tanh_approx, GeluKind::erf_exact}) {
      GeluArgs fa{ty.t(), tx.t(), kind};
      gelu_forward(r.ctx(), fa);
      Row row{"gelu_forward", dtype_label(dt) + " " + gelu_kind_name(kind) + " " + shape};
      row.rel_err = rel_error(to_host_f64(r.ctx(), ty.t()), reference(kind, n, xr, nullptr));
      verify(r, row, dt);
      row.us = r.time_us([&] { gelu_forward(r.ctx(), fa); });
      row.bytes = 2.0 * n * dtype_size(dt);  // read x, write y
      r.add(row);

      GeluBackwardArgs ba{tdx.t(), tdy.t(), tx.t(), kind};
      gelu_backward(r.ctx(), ba);
      Row brow{"gelu_backward", dtype_label(dt) + " " + gelu_kind_name(kind) + " " + shape};
      brow.rel_err = rel_error(to_host_f64(r.ctx(), tdx.t()), reference(kind, n, xr, &dyr));
      verify(r, brow, dt);
      brow.us = r.time_us([&] { gelu_backward(r.ctx(), ba); });
      brow.bytes = 3.0 * n * dtype_size(dt);  // read x and dy, write dx
      r.add(brow);
    }
  }
}

// GPT-2 124M MLP activation: B·T = 16384 rows of 4·768 = 3072.
ATTNLAB_BENCH("gelu", "rows C", {{16384, 3072}}, run);

}  // namespace
}  // namespace attnlab::bench
