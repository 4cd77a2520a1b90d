#include "core/memory.h"
#include "core/ops/score_controller.h"
#include "tools/bench/bench.h"
#include "tools/bench/bench_util.h"

namespace attnlab::bench {
namespace {

// The CPU op in f64 on the dtype-rounded inputs is the reference.
std::vector<double> reference(ControllerKind k, int64_t B, int64_t T, int64_t H, const std::vector<double>& z,
                              const std::vector<double>* dout) {
  Ctx cpu = Ctx::make_cpu();
  Buffer tz = upload(cpu, DType::f64, {B, T, H}, z);
  if (dout) {
    Buffer td = upload(cpu, DType::f64, {B, H, T}, *dout), dz(Device::cpu, DType::f64, {B, T, H});
    score_controller_backward(cpu, {k, tz.t(), td.t(), dz.t()});
    return to_host_f64(cpu, dz.t());
  }
  Buffer out(Device::cpu, DType::f64, {B, H, T});
  score_controller_forward(cpu, {k, tz.t(), out.t()});
  return to_host_f64(cpu, out.t());
}

void run(Runner& r, const std::vector<int64_t>& s) {
  CHECK(s.size() == 3, "score_controller sizes: B T H");
  const int64_t B = s[0], T = s[1], H = s[2], n = B * T * H;
  const std::string shape = std::to_string(B) + "x" + std::to_string(T) + "x" + std::to_string(H);
  auto z = random_values(size_t(n), 1, -3.0, 3.0), d = random_values(size_t(n), 2);
  for (DType dt : bench_dtypes(r.ctx())) {
    const DType acc = acc_dtype(dt);
    auto zr = round_values(dt, z), dr = round_values(acc, d);
    Buffer tz = upload(r.ctx(), dt, {B, T, H}, z), td = upload(r.ctx(), acc, {B, H, T}, d);
    Buffer out(r.ctx().device, acc, {B, H, T}), dz(r.ctx().device, dt, {B, T, H});
    for (ControllerKind k : {ControllerKind::additive, ControllerKind::multiplicative}) {
      ScoreControllerArgs fa{k, tz.t(), out.t()};
      score_controller_forward(r.ctx(), fa);
      Row row{"score_controller_forward", dtype_label(dt) + " " + controller_kind_name(k) + " " + shape};
      row.rel_err = rel_error(to_host_f64(r.ctx(), out.t()), reference(k, B, T, H, zr, nullptr));
      verify(r, row, dt);
      row.us = r.time_us([&] { score_controller_forward(r.ctx(), fa); });
      row.bytes = double(n) * (dtype_size(dt) + dtype_size(acc));  // read z, write out
      r.add(row);
      ScoreControllerBackwardArgs ba{k, tz.t(), td.t(), dz.t()};
      score_controller_backward(r.ctx(), ba);
      Row brow{"score_controller_backward", dtype_label(dt) + " " + controller_kind_name(k) + " " + shape};
      brow.rel_err = rel_error(to_host_f64(r.ctx(), dz.t()), reference(k, B, T, H, zr, &dr));
      verify(r, brow, dt);
      brow.us = r.time_us([&] { score_controller_backward(r.ctx(), ba); });
      brow.bytes = double(n) * (2 * dtype_size(dt) + dtype_size(acc));  // read z, dout; write dz
      r.add(brow);
    }
  }
}

// Qwen2.5-0.5B's 14 heads over a batch of 8 × 1024 tokens.
ATTNLAB_BENCH("score_controller", "B T H", {{8, 1024, 14}}, run);

}  // namespace
}  // namespace attnlab::bench
