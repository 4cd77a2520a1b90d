#include <algorithm>
#include <cmath>

#include "core/memory.h"
#include "core/ops/lm_entropy.h"
#include "tools/bench/bench.h"
#include "tools/bench/bench_util.h"

namespace attnlab::bench {
namespace {

// −Σ p log(p + ε) (or −Σ p log p) of row t from the full logits, in double.
double reference_row(const std::vector<double>& x, const std::vector<double>& emb, int64_t t, int64_t D, int64_t V,
                     LmEntropyMode mode) {
  std::vector<double> z(static_cast<size_t>(V));
  for (int64_t v = 0; v < V; ++v) {
    double s = 0;
    for (int64_t d = 0; d < D; ++d) s += x[size_t(t * D + d)] * emb[size_t(v * D + d)];
    z[size_t(v)] = s;
  }
  const double m = *std::max_element(z.begin(), z.end());
  double sum = 0;
  for (double v : z) sum += std::exp(v - m);
  double e = 0;
  for (double v : z) {
    const double p = std::exp(v - m) / sum;
    if (mode == LmEntropyMode::exact) e -= p * std::log(p + kLmEntropyEps);
    else if (p > 0) e -= p * std::log(p);
  }
  return e;
}

void run(Runner& r, const std::vector<int64_t>& s) {
  CHECK(s.size() == 3 || s.size() == 4, "lm_entropy sizes: T D V [tile] (tile: vocabulary rows per GEMM, default 8192)");
  Ctx& c = r.ctx();
  const int64_t T = s[0], D = s[1], V = s[2], tile = s.size() == 4 ? s[3] : 8192;
  CHECK(T >= 1 && D >= 1 && V >= 1 && tile >= 1, "lm_entropy sizes must be >= 1");
  const auto x0 = random_values(size_t(T * D), 7, -1, 1);
  const auto e0 = random_values(size_t(V * D), 8, -0.1, 0.1);  // logits of std ≈ 1.4 at D = 1536
  for (DType dt : bench_dtypes(c)) {
    const DType acc = acc_dtype(dt);
    Buffer x = upload(c, dt, {T, D}, x0), emb = upload(c, dt, {V, D}, e0);
    Buffer ent(c.device, acc, {T}), scratch(c.device, acc, {T, std::min(tile, V)}), state(c.device, acc, {T, 3});
    const auto xr = round_values(dt, x0), er = round_values(dt, e0);
    for (LmEntropyMode mode : {LmEntropyMode::exact, LmEntropyMode::one_pass}) {
      const LmEntropyArgs args{.x = x.t(), .emb = emb.t(), .entropy = ent.t(), .scratch = scratch.t(), .state = state.t(),
                               .mode = mode};
      lm_entropy_forward(c, args);
      // Verify 7 rows spread over T (the full f64 reference would dominate the run).
      const auto got = to_host_f64(c, ent.t());
      std::vector<double> g, w;
      for (int64_t t : {int64_t(0), T / 7, T / 3, T / 2, 2 * T / 3, 5 * T / 6, T - 1}) {
        g.push_back(got[size_t(t)]);
        w.push_back(reference_row(xr, er, t, D, V, mode));
      }
      const int passes = mode == LmEntropyMode::exact ? 2 : 1;
      Row row{std::string("lm_entropy_") + lm_entropy_mode_name(mode),
              dtype_label(dt) + " T=" + std::to_string(T) + " D=" + std::to_string(D) + " V=" + std::to_string(V) +
                  " tile=" + std::to_string(std::min(tile, V))};
      row.rel_err = rel_error(g, w);
      verify(r, row, dt, 1e-5, 1e-4);  // fp32 logits either way
      row.us = r.time_us([&] { lm_entropy_forward(c, args); });
      row.flops = passes * 2.0 * double(T) * double(V) * double(D);
      row.peak_tflops = dt == DType::bf16 ? kPeakBf16Tflops : kPeakFp32Tflops;
      row.note = std::to_string(passes) + " GEMM pass(es) over the vocabulary; never T×V in memory";
      r.add(row);
    }
  }
}

// Qwen2.5-1.5B's lm_head over one 2048-token sequence (one layer's uncertainty step).
ATTNLAB_BENCH("lm_entropy", "T D V [tile] (rows, hidden size, vocabulary, vocabulary tile; CPU: try 64 256 5003 1024)",
              {{2048, 1536, 151936, 8192}}, run);

}  // namespace
}  // namespace attnlab::bench
