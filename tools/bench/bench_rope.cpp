#include "core/memory.h"
#include "core/ops/rope.h"
#include "tools/bench/bench.h"
#include "tools/bench/bench_util.h"

namespace attnlab::bench {
namespace {

void run(Runner& r, const std::vector<int64_t>& s) {
  CHECK(s.size() == 4, "rope sizes: B T H d");
  const int64_t B = s[0], T = s[1], H = s[2], d = s[3], n = B * T * H * d;
  const std::string shape = std::to_string(B) + "x" + std::to_string(T) + "x" + std::to_string(H) + "x" + std::to_string(d);
  auto x = random_values(size_t(n), 5), g = random_values(size_t(n), 6);
  Ctx cpu = Ctx::make_cpu();
  for (DType dt : bench_dtypes(r.ctx())) {
    auto xr = round_values(dt, x), gr = round_values(dt, g);
    for (RopeLayout layout : {RopeLayout::rotate_half, RopeLayout::interleaved})
      for (bool heads_first : {false, true}) {
        RopeSpec spec;
        spec.layout = layout;
        spec.theta = 1e6;
        spec.heads_first = heads_first;
        const std::string label = dtype_label(dt) + " " + rope_layout_name(layout) + (heads_first ? "->BHTd " : " ") + shape;
        const bool hf = heads_first;
        // Reference: the CPU op in f64 on the rounded values (positions < T keep the float32
        // angle rounding of the GPU path, which HF shares, well inside the f32 tolerance).
        Buffer cx = upload(cpu, DType::f64, {B, T, H, d}, xr), cdx(Device::cpu, DType::f64, {B, T, H, d});
        Buffer cy = hf ? Buffer(Device::cpu, DType::f64, {B, H, T, d}) : Buffer(Device::cpu, DType::f64, {B, T, H, d});
        Buffer cg = hf ? upload(cpu, DType::f64, {B, H, T, d}, gr) : upload(cpu, DType::f64, {B, T, H, d}, gr);
        rope_forward(cpu, {cy.t(), cx.t(), spec});
        rope_backward(cpu, {cdx.t(), cg.t(), spec});

        Buffer tx = upload(r.ctx(), dt, {B, T, H, d}, x), tdx(r.ctx().device, dt, {B, T, H, d});
        Buffer ty = hf ? Buffer(r.ctx().device, dt, {B, H, T, d}) : Buffer(r.ctx().device, dt, {B, T, H, d});
        Buffer tg = hf ? upload(r.ctx(), dt, {B, H, T, d}, g) : upload(r.ctx(), dt, {B, T, H, d}, g);
        RopeArgs fa{ty.t(), tx.t(), spec};
        rope_forward(r.ctx(), fa);
        Row row{"rope_forward", label};
        row.rel_err = rel_error(to_host_f64(r.ctx(), ty.t()), to_host_f64(cpu, cy.t()));
        verify(r, row, dt);
        row.us = r.time_us([&] { rope_forward(r.ctx(), fa); });
        row.bytes = 2.0 * n * dtype_size(dt);  // read x, write out
        r.add(row);

        RopeBackwardArgs ba{tdx.t(), tg.t(), spec};
        rope_backward(r.ctx(), ba);
        Row brow{"rope_backward", label};
        brow.rel_err = rel_error(to_host_f64(r.ctx(), tdx.t()), to_host_f64(cpu, cdx.t()));
        verify(r, brow, dt);
        brow.us = r.time_us([&] { rope_backward(r.ctx(), ba); });
        brow.bytes = 2.0 * n * dtype_size(dt);
        r.add(brow);
      }
  }
}

// B·T = 16384 tokens, 12 heads of 128 (Qwen2.5-1.5B's query heads), θ = 1e6.
ATTNLAB_BENCH("rope", "B T H d", {{16, 1024, 12, 128}}, run);

}  // namespace
}  // namespace attnlab::bench
