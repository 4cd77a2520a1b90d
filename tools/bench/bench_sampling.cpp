#include <random>

#include "core/memory.h"
#include "core/ops/sampling.h"
#include "tools/bench/bench.h"
#include "tools/bench/bench_util.h"

namespace attnlab::bench {
namespace {

struct Setting {
  const char* name;
  float rp, temperature;
  int64_t top_k;
  double top_p;
};

// Qwen2.5-Instruct's generation config (the gathered top-k path), greedy, and top-p alone (the
// radix path).
constexpr Setting kSettings[] = {
    {"qwen(k20,p0.8,T0.7,rp1.1)", 1.1f, 0.7f, 20, 0.8},
    {"greedy(rp1.1)", 1.1f, 0.0f, 0, 1.0},
    {"top_p0.9", 1.0f, 1.0f, 0, 0.9},
};

void run(Runner& r, const std::vector<int64_t>& s) {
  CHECK(s.size() == 2, "sampling sizes: B V");
  const int64_t rows = s[0], vocab = s[1], words = sampling_seen_words(vocab);
  Ctx& c = r.ctx();
  Ctx cpu = Ctx::make_cpu(c.seed);
  // LM-like logits: a normal bulk with a few strong candidates per row.
  auto logits = random_values(size_t(rows * vocab), 7, -6.0, 6.0);
  std::mt19937_64 g(11);
  for (int64_t b = 0; b < rows; ++b)
    for (int j = 0; j < 8; ++j) logits[size_t(b * vocab + int64_t(g() % uint64_t(vocab)))] = 12.0 + j;
  // A 300-token prompt per row in the repetition-penalty bitmask.
  std::vector<double> seen(size_t(rows * words), 0.0);
  for (int64_t b = 0; b < rows; ++b)
    for (int t = 0; t < 300; ++t) {
      const uint64_t v = g() % uint64_t(vocab);
      double& w = seen[size_t(b * words + int64_t(v >> 5))];
      w = double(uint32_t(w) | (1u << (v & 31)));
    }
  Buffer seen_dev = upload(c, DType::u32, {rows, words}, seen), seen_cpu = upload(cpu, DType::u32, {rows, words}, seen);
  for (DType dt : bench_dtypes(c)) {
    const auto stored = round_values(dt, logits);
    Buffer tl = upload(c, dt, {rows, vocab}, logits), cl = upload(cpu, DType::f32, {rows, vocab}, stored);
    Buffer ids(c.device, DType::i32, {rows}), lp(c.device, DType::f32, {rows});
    Buffer cids(Device::cpu, DType::i32, {rows}), clp(Device::cpu, DType::f32, {rows});
    for (const Setting& st : kSettings) {
      SamplingArgs a;
      a.logits = tl.t();
      a.seen = seen_dev.t();
      a.repetition_penalty = st.rp;
      a.temperature = st.temperature;
      a.top_k = st.top_k;
      a.top_p = st.top_p;
      a.rng_offset = c.take_rng(uint64_t(rows));
      a.out_ids = ids.t();
      a.out_logprobs = lp.t();
      SamplingArgs ca = a;
      ca.logits = cl.t();
      ca.seen = seen_cpu.t();
      ca.out_ids = cids.t();
      ca.out_logprobs = clp.t();
      sampling_forward(c, a);
      sampling_forward(cpu, ca);
      const auto got_ids = to_host_f64(c, ids.t()), ref_ids = to_host_f64(cpu, cids.t());
      Row row{"sampling", dtype_label(dt) + " B=" + std::to_string(rows) + " V=" + std::to_string(vocab) + " " + st.name};
      row.rel_err = got_ids == ref_ids ? rel_error(to_host_f64(c, lp.t()), to_host_f64(cpu, clp.t())) : INFINITY;
      verify(r, row, dt, 1e-5, 1e-5);  // same ids; log-probs to libm's last bits
      row.us = r.time_us([&] { sampling_forward(c, a); });
      row.bytes = double(rows) * vocab * dtype_size(dt) + (st.rp != 1.0f ? double(rows * words) * 4 : 0.0);
      row.note = "ids equal the CPU's";
      r.add(row);
    }
  }
}

ATTNLAB_BENCH("sampling", "B V", {{1, 151936}, {32, 151936}}, run);

}  // namespace
}  // namespace attnlab::bench
