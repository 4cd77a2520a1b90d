#include "support/testing.h"

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <random>

namespace attnlab::test {

Ctx& gpu_ctx() {
  static Ctx c = Ctx::make_cuda(0, 1234);
  return c;
}

std::vector<double> rand_uniform(size_t n, double lo, double hi, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<double> d(lo, hi);
  std::vector<double> v(n);
  for (auto& x : v) x = d(g);
  return v;
}
std::vector<double> rand_normal(size_t n, double stddev, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::normal_distribution<double> d(0.0, stddev);
  std::vector<double> v(n);
  for (auto& x : v) x = d(g);
  return v;
}
std::vector<int32_t> rand_ints(size_t n, int32_t lo, int32_t hi, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::uniform_int_distribution<int32_t> d(lo, hi - 1);
  std::vector<int32_t> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

Buffer make_tensor(Device dev, DType dt, std::initializer_list<int64_t> dims,
                   const std::vector<double>& values, const char* name) {
  Buffer b(dev, dt, dims, name);
  from_host_f64(dev == Device::cuda ? gpu_ctx() : cpu_ctx(), b.t(), values);
  return b;
}
Buffer make_poisoned(Device dev, DType dt, std::initializer_list<int64_t> dims, const char* name) {
  Buffer b(dev, dt, dims, name);
  Ctx& c = dev == Device::cuda ? gpu_ctx() : cpu_ctx();
  poison_tensor(c, b.t());
  c.synchronize();
  return b;
}
Buffer make_ids(Device dev, std::initializer_list<int64_t> dims, const std::vector<int32_t>& ids,
                const char* name) {
  std::vector<double> v(ids.begin(), ids.end());
  return make_tensor(dev, DType::i32, dims, v, name);
}

std::vector<double> round_as(DType dt, const std::vector<double>& v) {
  std::vector<double> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    if (dt == DType::bf16) out[i] = round_bf16(float(v[i]));
    else if (dt == DType::f32) out[i] = float(v[i]);
    else out[i] = v[i];
  }
  return out;
}

double rel_err(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}
double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return INFINITY;
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    m = std::max(m, std::fabs(a[i] - b[i]));
  }
  return m;
}

double fd_check(const std::function<double()>& loss, const std::vector<GradInput>& inputs,
                double h, size_t max_probe, std::string* report) {
  double worst = 0;
  for (const GradInput& in : inputs) {
    size_t probes = std::min(in.n, max_probe);
    std::vector<double> num, ana;
    for (size_t k = 0; k < probes; ++k) {
      size_t i = probes == in.n ? k : (k * in.n) / probes + (k * 7919) % std::max<size_t>(1, in.n / probes);
      i = std::min(i, in.n - 1);
      double keep = in.data[i];
      in.data[i] = keep + h;
      double lp = loss();
      in.data[i] = keep - h;
      double lm = loss();
      in.data[i] = keep;
      num.push_back((lp - lm) / (2 * h));
      ana.push_back((*in.analytic)[i]);
    }
    double d = 0, nn = 0, na = 0;
    for (size_t k = 0; k < num.size(); ++k) {
      d += (num[k] - ana[k]) * (num[k] - ana[k]);
      nn += num[k] * num[k];
      na += ana[k] * ana[k];
    }
    double err = std::sqrt(d) / std::max({std::sqrt(nn), std::sqrt(na), 1e-12});
    if (!std::isfinite(err)) err = INFINITY;
    if (report) *report += in.name + ": " + std::to_string(err) + "\n";
    worst = std::max(worst, err);
  }
  return worst;
}

void record_fd_error(const std::string& op, double err) {
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  std::string path = std::string(ATTNLAB_BINARY_DIR) + "/fd_errors.txt";
  if (FILE* f = std::fopen(path.c_str(), "a")) {
    std::fprintf(f, "%s %.3e\n", op.c_str(), err);
    std::fclose(f);
  }
}

}  // namespace attnlab::test
