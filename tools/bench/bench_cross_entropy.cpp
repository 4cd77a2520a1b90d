#include <cmath>

#include "core/ops/cross_entropy.h"
#include "tools/bench/bench.h"
#include "tools/bench/bench_util.h"

namespace attnlab::bench {
namespace {

// Loss and dlogits of row `r` (rows of ld values, the first v classes) in double, on the logits as
// the dtype stores them.
void reference_row(const std::vector<double>& x, int64_t r, int64_t v, int64_t ld, int32_t t, double scale,
                   double* loss, std::vector<double>* grad) {
  const double* row = x.data() + r * ld;
  double m = row[0];
  for (int64_t j = 1; j < v; ++j) m = std::max(m, row[j]);
  double s = 0;
  for (int64_t j = 0; j < v; ++j) s += std::exp(row[j] - m);
  const double lse = m + std::log(s);
  const bool valid = t != kIgnoreIndex;
  *loss = valid ? lse - row[t] : 0.0;
  for (int64_t j = 0; j < v; ++j) grad->push_back(valid ? (std::exp(row[j] - lse) - (j == t)) * scale : 0.0);
}

void run(Runner& r, const std::vector<int64_t>& s) {
  CHECK(s.size() == 2 || s.size() == 3, "cross_entropy sizes: N V [Vp] (Vp: padded row length, ≥ V)");
  Ctx& c = r.ctx();
  const int64_t n = s[0], v = s[1], vp = s.size() == 3 ? s[2] : s[1];
  CHECK(vp >= v, "cross_entropy sizes: the padded row length Vp=", vp, " is below V=", v);
  const auto x0 = random_values(size_t(n * vp), 5, -4.0, 4.0);
  std::vector<int32_t> t(static_cast<size_t>(n));
  std::vector<double> tv(t.size());
  const auto u = random_values(t.size(), 6, 0.0, 1.0);
  for (size_t i = 0; i < t.size(); ++i) {
    t[i] = i % 16 == 5 ? kIgnoreIndex : int32_t(u[i] * double(v - 1));
    tv[i] = t[i];
  }
  const double count = double(count_valid_targets(t.data(), n));
  Buffer targets = upload(c, DType::i32, {n}, tv);
  for (DType dt : bench_dtypes(c)) {
    Buffer logits = upload(c, dt, {n, vp}, x0), dlogits(c.device, dt, {n, vp});
    Buffer loss(c.device, acc_dtype(dt), {n}), lse(c.device, acc_dtype(dt), {n});
    const CrossEntropyArgs fwd{logits.t(), targets.t(), loss.t(), lse.t(), v};
    const CrossEntropyBackwardArgs bwd{logits.t(), targets.t(), lse.t(), dlogits.t(), 1.0, count, v};
    cross_entropy_forward(c, fwd);
    cross_entropy_backward(c, bwd);

    // Verify 7 rows spread over the batch (the full f64 reference would dominate the run).
    const auto x = round_values(dt, x0);
    const auto got_loss = to_host_f64(c, loss.t());
    std::vector<double> loss_got, loss_ref, grad_got, grad_ref;
    // Rows spread over the batch; row 5 is an ignored one.
    for (int64_t row : {int64_t(0), std::min<int64_t>(5, n - 1), n / 7, n / 3, n / 2, 2 * n / 3, n - 1}) {
      double l;
      reference_row(x, row, v, vp, t[size_t(row)], 1.0 / count, &l, &grad_ref);
      loss_got.push_back(got_loss[size_t(row)]);
      loss_ref.push_back(l);
      auto g = to_host_f64(c, dlogits.t().slice0(row, row + 1));
      grad_got.insert(grad_got.end(), g.begin(), g.begin() + v);  // the padding columns are 0, not compared
    }
    const std::string shape = dtype_label(dt) + " N=" + std::to_string(n) + " V=" + std::to_string(v) +
                              (vp != v ? " Vp=" + std::to_string(vp) : std::string());
    const double elem = dtype_size(dt);
    Row f{"cross_entropy_fwd", shape};
    f.rel_err = rel_error(loss_got, loss_ref);
    verify(r, f, dt, 1e-5, 1e-5);
    f.us = r.time_us([&] { cross_entropy_forward(c, fwd); });
    f.bytes = double(n) * double(v) * elem;  // read the classes' logits once
    r.add(f);

    Row b{"cross_entropy_bwd", shape};
    b.rel_err = rel_error(grad_got, grad_ref);
    verify(r, b, dt);
    b.us = r.time_us([&] { cross_entropy_backward(c, bwd); });
    b.bytes = double(n) * double(v + vp) * elem;  // read the classes' logits, write every dlogits column
    r.add(b);

    Row fb{"cross_entropy_fwd+bwd", shape};
    fb.rel_err = std::max(f.rel_err, b.rel_err);
    fb.us = r.time_us([&] {
      cross_entropy_forward(c, fwd);
      cross_entropy_backward(c, bwd);
    });
    fb.bytes = f.bytes + b.bytes;
    r.add(fb);
  }
}

ATTNLAB_BENCH("cross_entropy", "N V [Vp] (rows, vocabulary, padded row length)",
              {{8192, 50257}, {8192, 50257, 50304}, {4096, 151936}, {1, 151936}}, run);

}  // namespace
}  // namespace attnlab::bench
