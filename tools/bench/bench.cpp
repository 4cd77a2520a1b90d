#include "tools/bench/bench.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "core/log.h"
#include "core/memory.h"
#if ATTNLAB_WITH_CUDA
#include "core/cuda_check.h"
#endif

namespace attnlab::bench {

std::vector<Entry>& registry() {
  static std::vector<Entry> v;
  return v;
}

static double time_cpu_us(const std::function<void()>& fn, int warmup, int repeats) {
  for (int i = 0; i < std::min(warmup, 2); ++i) fn();
  std::vector<double> us;
  for (int i = 0; i < std::max(3, repeats / 5); ++i) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(us.begin(), us.end());
  return us[us.size() / 2];
}

double Runner::time_us(const std::function<void()>& fn) {
  if (!ctx_.is_cuda()) return time_cpu_us(fn, warmup_, repeats_);
#if ATTNLAB_WITH_CUDA
  auto s = static_cast<cudaStream_t>(ctx_.stream);
  // 2x the L2 size, rewritten before every timed call.
  static size_t flush_bytes = 0;
  static void* flush = nullptr;
  if (!flush) {
    flush_bytes = std::max<size_t>(cuda_device_info(ctx_.device_index).l2_bytes * 2, 64u << 20);
    flush = device_alloc(Device::cuda, flush_bytes);
  }
  for (int i = 0; i < warmup_; ++i) fn();
  cudaEvent_t a, b;
  CUDA_CHECK(cudaEventCreate(&a));
  CUDA_CHECK(cudaEventCreate(&b));
  std::vector<float> ms;
  for (int i = 0; i < repeats_; ++i) {
    CUDA_CHECK(cudaMemsetAsync(flush, i & 0xff, flush_bytes, s));
    CUDA_CHECK(cudaEventRecord(a, s));
    fn();
    CUDA_CHECK(cudaEventRecord(b, s));
    CUDA_CHECK(cudaEventSynchronize(b));
    float t = 0;
    CUDA_CHECK(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(ms.begin(), ms.end());
  return 1000.0 * ms[ms.size() / 2];
#else
  (void)fn;
  FAIL_WITH("benchmarks need CUDA; attnlab was built without it");
#endif
}

void Runner::add(const Row& r) {
  rows_.push_back(r);
  print_row(r, ctx_.is_cuda());
}

void Runner::fail(const std::string& why) {
  ok_ = false;
  log_error("bench verification failed: ", why);
}

void print_header(bool on_gpu) {
  if (on_gpu)
    std::printf("%-22s %-34s %10s %10s %8s %10s %8s %9s  %s\n", "op", "shape", "us", "TFLOP/s", "%peak", "GB/s",
                "%HBM", "rel_err", "note");
  else
    std::printf("%-22s %-34s %10s %10s %10s %9s  %s\n", "op", "shape", "us", "GFLOP/s", "GB/s", "rel_err", "note");
}

void print_row(const Row& r, bool on_gpu) {
  const double flops_per_s = r.flops > 0 ? r.flops / (r.us * 1e-6) : 0;
  const double gbs = r.bytes > 0 ? r.bytes / (r.us * 1e-6) / 1e9 : 0;
  std::printf("%-22s %-34s %10.1f ", r.op.c_str(), r.shape.c_str(), r.us);
  if (on_gpu) {
    const double tf = flops_per_s / 1e12;
    if (tf > 0) std::printf("%10.1f %7.1f%% ", tf, 100 * tf / r.peak_tflops);
    else std::printf("%10s %8s ", "-", "-");
    if (gbs > 0) std::printf("%10.0f %7.1f%% ", gbs, 100 * gbs / kPeakHbmGBs);
    else std::printf("%10s %8s ", "-", "-");
  } else {
    // A CPU has no H100 ceiling to be a fraction of: its own throughput only.
    if (flops_per_s > 0) std::printf("%10.2f ", flops_per_s / 1e9);
    else std::printf("%10s ", "-");
    if (gbs > 0) std::printf("%10.2f ", gbs);
    else std::printf("%10s ", "-");
  }
  std::printf("%9.2e  %s\n", r.rel_err, r.note.c_str());
  std::fflush(stdout);
}

}  // namespace attnlab::bench
