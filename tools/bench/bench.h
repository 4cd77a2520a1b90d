#pragma once
// `attnlab bench <op> [sizes]`: every entry verifies its GPU result against the CPU reference,
// then times it with CUDA events (warm-up, median of repeats, L2 flushed between repeats)
// and prints µs with TFLOP/s or GB/s and the fraction of the H100 ceiling. On the CPU backend
// the same entries verify in f32 against f64 and time with the steady clock; the rows then give
// GFLOP/s and GB/s of this CPU and no fraction of a GPU's ceiling.
#include <functional>
#include <string>
#include <vector>

#include "core/ctx.h"

namespace attnlab::bench {

// H100 SXM datasheet ceilings (PERFORMANCE.md); the measured ones are lower (~798 TF, ~3.0 TB/s).
inline constexpr double kPeakBf16Tflops = 989.0;
inline constexpr double kPeakTf32Tflops = 495.0;
inline constexpr double kPeakFp32Tflops = 67.0;
inline constexpr double kPeakHbmGBs = 3350.0;

struct Row {
  std::string op;       // e.g. "matmul"
  std::string shape;    // e.g. "bf16 4096x4096x4096"
  double us = 0;        // median time
  double flops = 0;     // FLOPs of one call (0 when memory-bound)
  double bytes = 0;     // minimum bytes moved by one call
  double rel_err = 0;   // against the CPU reference
  double peak_tflops = kPeakBf16Tflops;  // ceiling used for the fraction
  std::string note;
};

class Runner {
 public:
  explicit Runner(Ctx& ctx, int warmup = 5, int repeats = 25) : ctx_(ctx), warmup_(warmup), repeats_(repeats) {}
  Ctx& ctx() { return ctx_; }
  // Median µs of `fn` (which launches on ctx.stream()); an L2-sized buffer is overwritten
  // before each timed repeat so the timed call starts cold.
  double time_us(const std::function<void()>& fn);
  void add(const Row& r);  // records and prints the row (CPU figures on the CPU backend)
  const std::vector<Row>& rows() const { return rows_; }
  // Returns false when a verification failed (the CLI then exits non-zero).
  bool ok() const { return ok_; }
  void fail(const std::string& why);
  // `--impl`: the attention backend(s) the attention entry times: materialized, fused or both.
  std::string attention_impl = "materialized";

 private:
  Ctx& ctx_;
  int warmup_, repeats_;
  std::vector<Row> rows_;
  bool ok_ = true;
};

struct Entry {
  std::string name;
  std::string help;          // what the sizes mean, e.g. "M N K [batch]"
  std::vector<std::vector<int64_t>> default_sizes;
  std::function<void(Runner&, const std::vector<int64_t>& sizes)> run;
  bool needs_gpu = false;    // true: the entry refuses the CPU backend (`bench --list` says so)
  // Default sizes on the CPU backend when the GPU's would take minutes there (empty: the same).
  std::vector<std::vector<int64_t>> cpu_default_sizes;
};

std::vector<Entry>& registry();
struct Registrar {
  explicit Registrar(Entry e) { registry().push_back(std::move(e)); }
};

// `on_gpu`: TFLOP/s and fractions of the H100 ceilings; else this CPU's GFLOP/s and GB/s.
void print_header(bool on_gpu);
void print_row(const Row& r, bool on_gpu);

}  // namespace attnlab::bench

#define ATTNLAB_BENCH_CAT2(a, b) a##b
#define ATTNLAB_BENCH_CAT(a, b) ATTNLAB_BENCH_CAT2(a, b)
#define ATTNLAB_BENCH(...) \
  static ::attnlab::bench::Registrar ATTNLAB_BENCH_CAT(attnlab_bench_, __LINE__)(::attnlab::bench::Entry{__VA_ARGS__})
