#include "core/memory.h"
#include "core/ops/kv_cache_write.h"
#include "tools/bench/bench.h"
#include "tools/bench/bench_util.h"

namespace attnlab::bench {
namespace {

void run(Runner& r, const std::vector<int64_t>& s) {
  CHECK(s.size() == 5, "kv_cache_write sizes: B T H S_cap d");
  const int64_t B = s[0], T = s[1], H = s[2], S_cap = s[3], d = s[4];
  CHECK(T <= S_cap, "kv_cache_write: T (", T, ") must not exceed S_cap (", S_cap, ")");
  const std::string shape = "B=" + std::to_string(B) + " T=" + std::to_string(T) + " H=" + std::to_string(H) +
                            " S_cap=" + std::to_string(S_cap) + " d=" + std::to_string(d);
  auto cache0 = random_values(size_t(B * H * S_cap * d), 3), src = random_values(size_t(B * T * H * d), 4);
  // Each row writes T consecutive slots from its own start (a decode step at different lengths
  // when T = 1, a prefill from 0 when T = S_cap).
  std::vector<double> slots(size_t(B * T));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) slots[size_t(b * T + t)] = double((b * 7) % (S_cap - T + 1) + t);
  Ctx cpu = Ctx::make_cpu();
  for (DType dt : bench_dtypes(r.ctx())) {
    Buffer c_cache = upload(cpu, DType::f64, {B, H, S_cap, d}, round_values(dt, cache0));
    Buffer c_src = upload(cpu, DType::f64, {B, T, H, d}, round_values(dt, src));
    Buffer c_slots(Device::cpu, DType::i32, {B, T});
    from_host_f64(cpu, c_slots.t(), slots);
    kv_cache_write_forward(cpu, {c_cache.t(), c_src.t(), c_slots.t()});

    Buffer cache = upload(r.ctx(), dt, {B, H, S_cap, d}, cache0), tsrc = upload(r.ctx(), dt, {B, T, H, d}, src);
    Buffer tslots(r.ctx().device, DType::i32, {B, T});
    from_host_f64(r.ctx(), tslots.t(), slots);
    KvCacheWriteArgs a{cache.t(), tsrc.t(), tslots.t()};
    kv_cache_write_forward(r.ctx(), a);
    Row row{"kv_cache_write", dtype_label(dt) + " " + shape};
    row.rel_err = rel_error(to_host_f64(r.ctx(), cache.t()), to_host_f64(cpu, c_cache.t()));
    verify(r, row, dt, 0.0, 0.0);  // a copy: exact
    row.us = r.time_us([&] { kv_cache_write_forward(r.ctx(), a); });
    row.bytes = 2.0 * double(B * T * H * d) * dtype_size(dt) + 4.0 * double(B * T);
    r.add(row);
  }
}

// Qwen2.5-0.5B's cache (Hkv 2, d 64): one decode step of 32 sequences, and a 128-token prefill.
ATTNLAB_BENCH("kv_cache_write", "B T H S_cap d", {{32, 1, 2, 256, 64}, {32, 128, 2, 256, 64}}, run);

}  // namespace
}  // namespace attnlab::bench
