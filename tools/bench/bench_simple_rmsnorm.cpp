#include <algorithm>

#include "core/memory.h"
#include "core/ops/simple_rmsnorm.h"
#include "tools/bench/bench.h"
#include "tools/bench/bench_util.h"

namespace attnlab::bench {
namespace {

struct Reference {
  std::vector<double> y, dx, dw;
};

// The CPU op in f64 on the dtype-rounded inputs; dw accumulates onto dw0 as on the device.
Reference reference(int64_t rows, int64_t C, const std::vector<double>& x, const std::vector<double>& w,
                    const std::vector<double>& dy, const std::vector<double>& dw0) {
  Ctx cpu = Ctx::make_cpu();
  Buffer tx = upload(cpu, DType::f64, {rows, C}, x), tw = upload(cpu, DType::f64, {C}, w);
  Buffer tdy = upload(cpu, DType::f64, {rows, C}, dy);
  Buffer ty(Device::cpu, DType::f64, {rows, C}), td(Device::cpu, DType::f64, {rows}),
      tdx(Device::cpu, DType::f64, {rows, C});
  Buffer tdw = upload(cpu, DType::f64, {C}, dw0);
  simple_rmsnorm_forward(cpu, {ty.t(), td.t(), tx.t(), tw.t()});
  SimpleRmsNormBackwardArgs b;
  b.dx = tdx.t();
  b.dweight = tdw.t();
  b.dy = tdy.t();
  b.x = tx.t();
  b.weight = tw.t();
  b.den = td.t();
  simple_rmsnorm_backward(cpu, b);
  return {to_host_f64(cpu, ty.t()), to_host_f64(cpu, tdx.t()), to_host_f64(cpu, tdw.t())};
}

void run(Runner& r, const std::vector<int64_t>& s) {
  CHECK(s.size() == 2, "simple_rmsnorm sizes: rows C");
  const int64_t rows = s[0], C = s[1], n = rows * C;
  const std::string shape = std::to_string(rows) + "x" + std::to_string(C);
  auto x = random_values(size_t(n), 1, -2.0, 3.0), dy = random_values(size_t(n), 2),
       w = random_values(size_t(C), 3, 0.5, 1.5);
  for (DType dt : bench_dtypes(r.ctx())) {
    Ctx& c = r.ctx();
    const DType at = acc_dtype(dt);
    const double es = double(dtype_size(dt));
    const auto dw0 = round_values(at, random_values(size_t(C), 5));
    Reference ref = reference(rows, C, round_values(dt, x), round_values(dt, w), round_values(dt, dy), dw0);
    Buffer tx = upload(c, dt, {rows, C}, x), tw = upload(c, dt, {C}, w), tdy = upload(c, dt, {rows, C}, dy);
    Buffer ty(c.device, dt, {rows, C}), tdx(c.device, dt, {rows, C}), td(c.device, at, {rows});
    Buffer tdw = upload(c, at, {C}, dw0);
    const size_t scratch_n = std::max<size_t>(1, simple_rmsnorm_backward_scratch_floats(c, dt, rows, C));
    Buffer scratch(c.device, DType::f32, {int64_t(scratch_n)});

    SimpleRmsNormArgs fa{ty.t(), td.t(), tx.t(), tw.t()};
    simple_rmsnorm_forward(c, fa);
    Row row{"simple_rmsnorm_forward", dtype_label(dt) + " " + shape};
    row.rel_err = rel_error(to_host_f64(c, ty.t()), ref.y);
    verify(r, row, dt);
    row.us = r.time_us([&] { simple_rmsnorm_forward(c, fa); });
    row.bytes = 2.0 * n * es + C * es + rows * dtype_size(at);  // x, w in; y, den out
    r.add(row);

    SimpleRmsNormBackwardArgs ba;
    ba.dx = tdx.t();
    ba.dweight = tdw.t();
    ba.dy = tdy.t();
    ba.x = tx.t();
    ba.weight = tw.t();
    ba.den = td.t();
    ba.scratch = scratch.t();
    simple_rmsnorm_backward(c, ba);  // the one call verified: dx, and dw accumulated once onto dw0
    Row brow{"simple_rmsnorm_backward", dtype_label(dt) + " " + shape};
    brow.rel_err = std::max(rel_error(to_host_f64(c, tdx.t()), ref.dx), rel_error(to_host_f64(c, tdw.t()), ref.dw));
    verify(r, brow, dt);
    brow.us = r.time_us([&] { simple_rmsnorm_backward(c, ba); });
    // x, dy in, dx out (one pass: dw is folded per block, then its partial rows summed); den, w
    // in; dw read and written.
    brow.bytes = 3.0 * n * es + rows * dtype_size(at) + C * es + 2.0 * C * dtype_size(at);
    brow.note = "dw scratch " + std::to_string(scratch_n * 4 / 1024) + " KiB";
    r.add(brow);
  }
}

// The seed DIFF model: B·T = 32·511 rows of D = 512.
ATTNLAB_BENCH("simple_rmsnorm", "rows C", {{16352, 512}, {4096, 4096}}, run);

}  // namespace
}  // namespace attnlab::bench
