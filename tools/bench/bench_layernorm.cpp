#include "core/memory.h"
#include "core/ops/layernorm.h"
#include "tools/bench/bench.h"
#include "tools/bench/bench_util.h"

namespace attnlab::bench {
namespace {

struct LnReference {
  std::vector<double> y, dx;
};

// The CPU op in f64 on the dtype-rounded inputs.
LnReference reference(int64_t rows, int64_t C, const std::vector<double>& x, const std::vector<double>& w,
                      const std::vector<double>& b, const std::vector<double>& dy) {
  Ctx cpu = Ctx::make_cpu();
  Buffer tx = upload(cpu, DType::f64, {rows, C}, x), tw = upload(cpu, DType::f64, {C}, w);
  Buffer tb = upload(cpu, DType::f64, {C}, b), tdy = upload(cpu, DType::f64, {rows, C}, dy);
  Buffer ty(Device::cpu, DType::f64, {rows, C}), tm(Device::cpu, DType::f64, {rows}),
      tr(Device::cpu, DType::f64, {rows});
  Buffer tdx(Device::cpu, DType::f64, {rows, C});
  layernorm_forward(cpu, {ty.t(), tm.t(), tr.t(), tx.t(), tw.t(), tb.t()});
  layernorm_backward(cpu, {tdx.t(), Tensor{}, Tensor{}, tdy.t(), tx.t(), tw.t(), tm.t(), tr.t()});
  return {to_host_f64(cpu, ty.t()), to_host_f64(cpu, tdx.t())};
}

void run(Runner& r, const std::vector<int64_t>& s) {
  CHECK(s.size() == 2, "layernorm sizes: rows C");
  const int64_t rows = s[0], C = s[1], n = rows * C;
  const std::string shape = std::to_string(rows) + "x" + std::to_string(C);
  auto x = random_values(size_t(n), 1, -2.0, 3.0), dy = random_values(size_t(n), 2);
  auto w = random_values(size_t(C), 3, 0.5, 1.5), b = random_values(size_t(C), 4);
  for (DType dt : bench_dtypes(r.ctx())) {
    Ctx& c = r.ctx();
    const DType at = acc_dtype(dt);
    const double es = double(dtype_size(dt));
    LnReference ref =
        reference(rows, C, round_values(dt, x), round_values(dt, w), round_values(dt, b), round_values(dt, dy));
    Buffer tx = upload(c, dt, {rows, C}, x), tw = upload(c, dt, {C}, w), tb = upload(c, dt, {C}, b);
    Buffer tdy = upload(c, dt, {rows, C}, dy), ty(c.device, dt, {rows, C}), tdx(c.device, dt, {rows, C});
    Buffer tm(c.device, at, {rows}), tr(c.device, at, {rows});
    Buffer tdw = upload(c, at, {C}, random_values(size_t(C), 5)), tdb = upload(c, at, {C}, random_values(size_t(C), 6));
    const size_t scratch_n = std::max<size_t>(1, layernorm_backward_scratch_floats(c, dt, rows, C));
    Buffer scratch(c.device, DType::f32, {int64_t(scratch_n)});

    LayerNormArgs fa{ty.t(), tm.t(), tr.t(), tx.t(), tw.t(), tb.t()};
    layernorm_forward(c, fa);
    Row row{"layernorm_forward", dtype_label(dt) + " " + shape};
    row.rel_err = rel_error(to_host_f64(c, ty.t()), ref.y);
    verify(r, row, dt);
    row.us = r.time_us([&] { layernorm_forward(c, fa); });
    row.bytes = 2.0 * n * es + 2.0 * C * es + 2.0 * rows * dtype_size(at);  // x, γ, β in; y, μ, rstd out
    r.add(row);

    LayerNormBackwardArgs ba{tdx.t(), tdw.t(), tdb.t(), tdy.t(), tx.t(), tw.t(), tm.t(), tr.t(), scratch.t()};
    layernorm_backward(c, ba);
    Row brow{"layernorm_backward", dtype_label(dt) + " " + shape};
    brow.rel_err = rel_error(to_host_f64(c, tdx.t()), ref.dx);
    verify(r, brow, dt);
    brow.us = r.time_us([&] { layernorm_backward(c, ba); });
    // x, dy in, dx out; μ, rstd, γ in; dγ, dβ read and written.
    brow.bytes = 3.0 * n * es + 2.0 * rows * dtype_size(at) + C * es + 4.0 * C * dtype_size(at);
    brow.note = "dγ/dβ scratch " + std::to_string(scratch_n * 4 / 1024) + " KiB";
    r.add(brow);
  }
}

// GPT-2 124M (B·T = 16384 or 8·1024, C = 768), Qwen2.5-1.5B (C = 1536), Qwen-7B-class (C = 4096).
ATTNLAB_BENCH("layernorm", "rows C", {{16384, 768}, {8192, 768}, {16384, 1536}, {8192, 4096}}, run);

}  // namespace
}  // namespace attnlab::bench
