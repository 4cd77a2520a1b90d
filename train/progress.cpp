#include "train/progress.h"

#include <omp.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <string>

namespace attnlab::train {

double flops_per_token(int64_t layers, int64_t attention_width, int64_t num_params, int64_t seq_len) {
  return 6.0 * double(num_params) + 6.0 * double(layers) * double(attention_width) * double(seq_len);
}

double flops_per_token(const ModelConfig& c, int64_t num_params, int64_t seq_len) {
  return flops_per_token(c.num_layers, c.num_heads * c.head_dim, num_params, seq_len);
}

namespace {

// cpu MHz of the first core (/proc/cpuinfo), 0 when unknown.
double cpu_mhz() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("cpu MHz", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) return std::atof(line.c_str() + colon + 1);
    }
  return 0;
}

bool cpu_has_avx512() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("flags", 0) == 0) return line.find(" avx512f") != std::string::npos;
  return false;
}

}  // namespace

DevicePeak device_peak(const Ctx& ctx, DType dtype) {
  DevicePeak p;
  if (!ctx.is_cuda()) {
    const double mhz = cpu_mhz();
    if (mhz <= 0) return p;
    // Two FMA pipes per core, each 8 (AVX2) or 16 (AVX-512) f32 lanes, 2 FLOPs per FMA.
    const int per_cycle = cpu_has_avx512() ? 64 : 32;
    const int threads = omp_get_max_threads();
    p.flops_per_s = double(threads) * mhz * 1e6 * per_cycle;
    char buf[160];
    std::snprintf(buf, sizeof buf, "CPU %d thread%s x %.2f GHz x %d f32 FLOP/cycle (estimate)", threads,
                  threads == 1 ? "" : "s", mhz / 1000, per_cycle);
    p.what = buf;
    return p;
  }
  const CudaDeviceInfo info = cuda_device_info(ctx.device_index);
  const bool bf16 = dtype == DType::bf16;
  // Datasheet dense peaks (PERFORMANCE.md); f32 runs count the non-tensor FMA rate because the
  // layers' f32 GEMMs do not use TF32.
  struct Known {
    const char* name;
    double bf16, f32;
  };
  static const Known known[] = {{"H200", 989e12, 67e12},     {"H100 PCIe", 756e12, 51e12}, {"H100", 989e12, 67e12},
                                {"GH200", 989e12, 67e12},    {"A100", 312e12, 19.5e12},    {"L40S", 362e12, 91.6e12},
                                {"RTX 4090", 165e12, 82.6e12}};
  for (const Known& k : known)
    if (info.name.find(k.name) != std::string::npos) {
      p.flops_per_s = bf16 ? k.bf16 : k.f32;
      p.what = std::string(k.name) + (bf16 ? " bf16 dense" : " f32") + " (datasheet)";
      return p;
    }
  return p;
}

std::string format_duration(double s) {
  if (!(s >= 0) || !std::isfinite(s)) return "?";
  char buf[32];
  const int64_t t = int64_t(std::llround(s));
  if (t < 60) std::snprintf(buf, sizeof buf, "%llds", (long long)t);
  else if (t < 3600) std::snprintf(buf, sizeof buf, "%lldm%02llds", (long long)(t / 60), (long long)(t % 60));
  else std::snprintf(buf, sizeof buf, "%lldh%02lldm", (long long)(t / 3600), (long long)(t / 60 % 60));
  return buf;
}

std::string format_progress(const ProgressLine& p) {
  char buf[256];
  std::string s;
  std::snprintf(buf, sizeof buf, "step %lld/%lld | loss %.4f | lr %.2e | gnorm %.3f", (long long)p.step,
                (long long)p.total_steps, p.loss, p.lr, p.grad_norm);
  s = buf;
  if (p.tokens_per_s >= 1e6) std::snprintf(buf, sizeof buf, " | %.2fM tok/s", p.tokens_per_s / 1e6);
  else if (p.tokens_per_s >= 1e3) std::snprintf(buf, sizeof buf, " | %.1fk tok/s", p.tokens_per_s / 1e3);
  else std::snprintf(buf, sizeof buf, " | %.0f tok/s", p.tokens_per_s);
  s += buf;
  if (p.mfu >= 0) {
    std::snprintf(buf, sizeof buf, " | MFU %.1f%%", 100 * p.mfu);
    s += buf;
  }
  if (p.eta_s >= 0) s += " | ETA " + format_duration(p.eta_s);
  if (p.skipped > 0) s += " | skipped " + std::to_string(p.skipped);
  return s;
}

Progress::Progress(std::FILE* out, bool enabled)
    : out_(out), enabled_(enabled && out != nullptr), live_(enabled_ && ::isatty(::fileno(out))) {}

Progress::~Progress() { finish(); }

void Progress::update(const ProgressLine& p, bool log_step) {
  if (!enabled_) return;
  if (live_) {
    // \r then "erase to end of line": the new line replaces the old one in place. A logging step
    // ends its line, so the terminal keeps one line per logging interval as history.
    std::fprintf(out_, "\r\033[K%s%s", format_progress(p).c_str(), log_step ? "\n" : "");
    line_open_ = !log_step;
  } else if (log_step) {
    std::fprintf(out_, "%s\n", format_progress(p).c_str());
  }
  std::fflush(out_);
}

void Progress::message(const std::string& text) {
  if (out_ == nullptr) return;
  if (line_open_) std::fputs("\r\033[K", out_);
  std::fprintf(out_, "%s\n", text.c_str());
  line_open_ = false;
  std::fflush(out_);
}

void Progress::finish() {
  if (line_open_ && out_) {
    std::fputc('\n', out_);
    std::fflush(out_);
  }
  line_open_ = false;
}

}  // namespace attnlab::train
