// `attnlab bench matmul M N K [batch]` and `attnlab bench linear rows out in`.
// A full f64 check of a 4096³ product takes minutes on a small CPU, so each entry checks 256
// random output elements against dot products in double over the rounded inputs, then times.
#include <random>

#include "core/memory.h"
#include "core/ops/matmul.h"
#include "tools/bench/bench.h"
#include "tools/bench/bench_util.h"

namespace attnlab::bench {
namespace {

constexpr int kSamples = 256;

// Reads one element of a (row-major, any device) tensor.
double element(Ctx& c, const Tensor& t, int64_t index) {
  Tensor e = t;
  e.data = static_cast<char*>(t.data) + size_t(index) * dtype_size(t.dtype);
  e.ndim = 1;
  e.shape = {1, 0, 0, 0};
  return to_host_f64(c, e)[0];
}

// Relative error of `kSamples` random elements (b, m, n) of C [batch, M, N] against `ref`.
template <class Ref>
double sampled_error(Ctx& c, const Tensor& out, int64_t batch, int64_t M, int64_t N, Ref&& ref,
                     uint64_t seed) {
  std::mt19937_64 g(seed);
  std::vector<double> got, want;
  for (int i = 0; i < kSamples; ++i) {
    const int64_t b = int64_t(g() % uint64_t(batch)), m = int64_t(g() % uint64_t(M)),
                  n = int64_t(g() % uint64_t(N));
    got.push_back(element(c, out, (b * M + m) * N + n));
    want.push_back(ref(b, m, n));
  }
  return rel_error(got, want);
}

double peak_for(DType operands) { return operands == DType::bf16 ? kPeakBf16Tflops : kPeakFp32Tflops; }

void run_matmul(Runner& r, const std::vector<int64_t>& s) {
  CHECK(s.size() == 3 || s.size() == 4, "matmul sizes: M N K [batch]");
  const int64_t M = s[0], N = s[1], K = s[2], batch = s.size() == 4 ? s[3] : 1;
  CHECK(M > 0 && N > 0 && K > 0 && batch > 0, "matmul sizes must be positive");
  Ctx& c = r.ctx();
  for (DType dt : bench_dtypes(c)) {
    auto a = round_values(dt, random_values(size_t(batch * M * K), 1));
    auto b = round_values(dt, random_values(size_t(batch * K * N), 2));
    Buffer ta = upload(c, dt, {batch, M, K}, a), tb = upload(c, dt, {batch, K, N}, b);
    Buffer tc(c.device, dt, {batch, M, N}, "C");
    poison_tensor(c, tc.t());
    MatmulArgs args;
    args.c = tc.t(), args.a = ta.t(), args.b = tb.t();
    args.M = M, args.N = N, args.K = K, args.batch = batch;
    matmul(c, args);
    Row row{"matmul", dtype_label(dt) + " " + std::to_string(M) + "x" + std::to_string(N) + "x" +
                          std::to_string(K) + (batch > 1 ? " b" + std::to_string(batch) : "")};
    row.rel_err = sampled_error(c, tc.t(), batch, M, N, [&](int64_t bi, int64_t m, int64_t n) {
      double acc = 0;
      for (int64_t k = 0; k < K; ++k) acc += a[size_t((bi * M + m) * K + k)] * b[size_t((bi * K + k) * N + n)];
      return acc;
    }, 3);
    verify(r, row, dt);
    row.us = r.time_us([&] { matmul(c, args); });
    row.flops = 2.0 * double(M) * double(N) * double(K) * double(batch);
    row.peak_tflops = peak_for(dt);
    if (dt == DType::f32) row.note = "fp32, TF32 off";
    r.add(row);
  }
}

// One linear layer of `rows` tokens: forward (with bias), then its two backward products
// timed apart (dX alone: frozen weight; dW alone: first layer), bf16 with fp32 dW on CUDA.
void run_linear(Runner& r, const std::vector<int64_t>& s) {
  CHECK(s.size() == 3 || s.size() == 4, "linear sizes: rows out in [bias 0/1]");
  Ctx& c = r.ctx();
  int64_t rows = s[0];
  const int64_t out = s[1], in = s[2];
  const bool with_bias = s.size() < 4 || s[3] != 0;
  CHECK(rows > 0 && out > 0 && in > 0, "linear sizes must be positive");
  std::string note;
  if (!c.is_cuda() && rows > 512) {  // the GPT-2 shapes at 8192 tokens take minutes on 2 cores
    rows = 512;
    note = "rows capped at 512 on the CPU";
  }
  const DType dt = c.is_cuda() ? DType::bf16 : DType::f32, acc = acc_dtype(dt);
  auto x = round_values(dt, random_values(size_t(rows * in), 11));
  auto w = round_values(dt, random_values(size_t(out * in), 12, -0.05, 0.05));
  auto bias = round_values(dt, random_values(size_t(out), 13));
  auto dy = round_values(dt, random_values(size_t(rows * out), 14, -1e-3, 1e-3));
  auto dw0 = round_values(acc, random_values(size_t(out * in), 15, -1e-2, 1e-2));
  Buffer tx = upload(c, dt, {rows, in}, x), tw = upload(c, dt, {out, in}, w);
  Buffer tbias = upload(c, dt, {out}, bias), tdy = upload(c, dt, {rows, out}, dy);
  Buffer tdw = upload(c, acc, {out, in}, dw0);
  Buffer ty(c.device, dt, {rows, out}, "y"), tdx(c.device, dt, {rows, in}, "dx");
  poison_tensor(c, ty.t());
  poison_tensor(c, tdx.t());
  const std::string shape = dtype_label(dt) + " " + std::to_string(rows) + "x" + std::to_string(out) +
                            "x" + std::to_string(in);
  const double flops = 2.0 * double(rows) * double(out) * double(in);
  const std::string base_note =
      note + (dt == DType::f32 ? std::string(note.empty() ? "" : "; ") + "fp32, TF32 off" : "");
  auto finish = [&](Row& row, const std::function<void()>& fn, const std::string& extra) {
    verify(r, row, dt);
    row.us = r.time_us(fn);
    row.flops = flops;
    row.peak_tflops = peak_for(dt);
    row.note = base_note.empty() ? extra : base_note + "; " + extra;
    r.add(row);
  };

  LinearArgs fwd{ty.t(), tx.t(), tw.t(), with_bias ? tbias.t() : Tensor{}};
  linear_forward(c, fwd);
  Row f{"linear_fwd", shape};
  f.rel_err = sampled_error(c, ty.t(), 1, rows, out, [&](int64_t, int64_t m, int64_t o) {
    double acc_v = with_bias ? bias[size_t(o)] : 0.0;
    for (int64_t k = 0; k < in; ++k) acc_v += x[size_t(m * in + k)] * w[size_t(o * in + k)];
    return acc_v;
  }, 21);
  finish(f, [&] { linear_forward(c, fwd); }, with_bias ? "Y = X Wᵀ + b" : "Y = X Wᵀ");

  LinearBackwardArgs bdx{tdy.t(), tx.t(), tw.t(), tdx.t(), Tensor{}, Tensor{}};
  linear_backward(c, bdx);
  Row d{"linear_dx", shape};
  d.rel_err = sampled_error(c, tdx.t(), 1, rows, in, [&](int64_t, int64_t m, int64_t i) {
    double acc_v = 0;
    for (int64_t o = 0; o < out; ++o) acc_v += dy[size_t(m * out + o)] * w[size_t(o * in + i)];
    return acc_v;
  }, 22);
  finish(d, [&] { linear_backward(c, bdx); }, "dX = dY W");

  LinearBackwardArgs bdw{tdy.t(), tx.t(), tw.t(), Tensor{}, tdw.t(), Tensor{}};
  linear_backward(c, bdw);  // verified once: dW = dW0 + dYᵀ X
  Row g{"linear_dw", shape};
  g.rel_err = sampled_error(c, tdw.t(), 1, out, in, [&](int64_t, int64_t o, int64_t i) {
    double acc_v = dw0[size_t(o * in + i)];
    for (int64_t m = 0; m < rows; ++m) acc_v += dy[size_t(m * out + o)] * x[size_t(m * in + i)];
    return acc_v;
  }, 23);
  finish(g, [&] { linear_backward(c, bdw); }, std::string("dW += dYᵀ X into ") + dtype_name(acc));
  if (!with_bias) return;

  // db += Σ_rows dY alone: memory-bound, one read of dY.
  auto db0 = round_values(acc, random_values(size_t(out), 16));
  Buffer tdb = upload(c, acc, {out}, db0);
  LinearBackwardArgs bdb{tdy.t(), tx.t(), tw.t(), Tensor{}, Tensor{}, tdb.t()};
  linear_backward(c, bdb);
  std::vector<double> want = db0;
  for (int64_t m = 0; m < rows; ++m)
    for (int64_t o = 0; o < out; ++o) want[size_t(o)] += dy[size_t(m * out + o)];
  Row db{"linear_db", shape};
  db.rel_err = rel_error(to_host_f64(c, tdb.t()), want);
  verify(r, db, acc);
  db.us = r.time_us([&] { linear_backward(c, bdb); });
  db.bytes = double(rows * out) * dtype_size(dt) + 2.0 * double(out) * dtype_size(acc);
  db.note = (note.empty() ? "" : note + "; ") + "db += column sums of dY (deterministic, no atomics)";
  r.add(db);
}

ATTNLAB_BENCH("matmul", "M N K [batch]  (C = A·B, row-major, bf16 and fp32 operands)",
              {{4096, 4096, 4096}}, run_matmul);
// GPT-2 small at B·T = 8192 tokens: qkv, attention proj, fc, fc proj, lm_head (no bias), and
// lm_head with the vocabulary padded to 50304 (= 393·128): with 50257 columns every row of the
// logits and of dY starts only 2-byte aligned, which rules out cuBLASLt's fast kernels.
ATTNLAB_BENCH("linear", "rows out in [bias 0/1]  (forward, dX and dW products of Y = X Wᵀ + b)",
              {{8192, 2304, 768}, {8192, 768, 768}, {8192, 3072, 768}, {8192, 768, 3072},
               {8192, 50257, 768, 0}, {8192, 50304, 768, 0}},
              run_linear);

}  // namespace
}  // namespace attnlab::bench
