#include "core/memory.h"
#include "core/ops/rmsnorm.h"
#include "tools/bench/bench.h"
#include "tools/bench/bench_util.h"

namespace attnlab::bench {
namespace {

struct RmsReference {
  std::vector<double> y, dx;
};

// The CPU op in f64 on the dtype-rounded inputs.
RmsReference reference(int64_t rows, int64_t C, const std::vector<double>& x, const std::vector<double>& w,
                       const std::vector<double>& dy) {
  Ctx cpu = Ctx::make_cpu();
  Buffer tx = upload(cpu, DType::f64, {rows, C}, x), tw = upload(cpu, DType::f64, {C}, w);
  Buffer tdy = upload(cpu, DType::f64, {rows, C}, dy);
  Buffer ty(Device::cpu, DType::f64, {rows, C}), tr(Device::cpu, DType::f64, {rows}),
      tdx(Device::cpu, DType::f64, {rows, C});
  rmsnorm_forward(cpu, {ty.t(), tr.t(), tx.t(), tw.t()});
  rmsnorm_backward(cpu, {tdx.t(), Tensor{}, tdy.t(), tx.t(), tw.t(), tr.t()});
  return {to_host_f64(cpu, ty.t()), to_host_f64(cpu, tdx.t())};
}

void run(Runner& r, const std::vector<int64_t>& s) {
  CHECK(s.size() == 2, "rmsnorm sizes: rows C");
  const int64_t rows = s[0], C = s[1], n = rows * C;
  const std::string shape = std::to_string(rows) + "x" + std::to_string(C);
  auto x = random_values(size_t(n), 1, -2.0, 3.0), dy = random_values(size_t(n), 2),
       w = random_values(size_t(C), 3, 0.5, 1.5);
  for (DType dt : bench_dtypes(r.ctx())) {
    Ctx& c = r.ctx();
    const DType at = acc_dtype(dt);
    const double es = double(dtype_size(dt));
    RmsReference ref = reference(rows, C, round_values(dt, x), round_values(dt, w), round_values(dt, dy));
    Buffer tx = upload(c, dt, {rows, C}, x), tw = upload(c, dt, {C}, w), tdy = upload(c, dt, {rows, C}, dy);
    Buffer ty(c.device, dt, {rows, C}), tdx(c.device, dt, {rows, C}), tr(c.device, at, {rows});
    Buffer tdw = upload(c, at, {C}, random_values(size_t(C), 5));
    const size_t scratch_n = std::max<size_t>(1, rmsnorm_backward_scratch_floats(c, dt, rows, C));
    Buffer scratch(c.device, DType::f32, {int64_t(scratch_n)});

    RmsNormArgs fa{ty.t(), tr.t(), tx.t(), tw.t()};
    rmsnorm_forward(c, fa);
    Row row{"rmsnorm_forward", dtype_label(dt) + " " + shape};
    row.rel_err = rel_error(to_host_f64(c, ty.t()), ref.y);
    verify(r, row, dt);
    row.us = r.time_us([&] { rmsnorm_forward(c, fa); });
    row.bytes = 2.0 * n * es + C * es + rows * dtype_size(at);  // x, w in; y, rstd out
    r.add(row);

    RmsNormBackwardArgs ba{tdx.t(), tdw.t(), tdy.t(), tx.t(), tw.t(), tr.t(), scratch.t()};
    rmsnorm_backward(c, ba);
    Row brow{"rmsnorm_backward", dtype_label(dt) + " " + shape};
    brow.rel_err = rel_error(to_host_f64(c, tdx.t()), ref.dx);
    verify(r, brow, dt);
    brow.us = r.time_us([&] { rmsnorm_backward(c, ba); });
    brow.bytes = 3.0 * n * es + rows * dtype_size(at) + C * es + 2.0 * C * dtype_size(at);  // x, dy, rstd, w; dx; dw ±
    brow.note = "dw scratch " + std::to_string(scratch_n * 4 / 1024) + " KiB";
    r.add(brow);
  }
}

// Qwen2.5-1.5B hidden (C = 1536), 7B-class hidden (C = 4096), and Qwen3 per-head q_norm:
// B·T·Hq = 8·1024·16 rows of d = 128.
ATTNLAB_BENCH("rmsnorm", "rows C", {{16384, 1536}, {8192, 4096}, {131072, 128}}, run);

}  // namespace
}  // namespace attnlab::bench
