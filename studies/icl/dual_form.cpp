#include "studies/icl/dual_form.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace attnlab::icl {

namespace {

// y = W x for W [rows, D].
std::vector<double> matvec(const std::vector<double>& W, int64_t rows, int64_t D, const double* x) {
  std::vector<double> y(size_t(rows), 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    double s = 0;
    for (int64_t c = 0; c < D; ++c) s += W[size_t(r * D + c)] * x[c];
    y[size_t(r)] = s;
  }
  return y;
}

}  // namespace

DualFormResult dual_form_check(const DualFormInputs& in) {
  const int64_t D = in.D, d = in.d, Hq = in.Hq, Hkv = in.Hkv;
  CHECK(Hkv > 0 && Hq % Hkv == 0, "dual form: Hq must be a multiple of Hkv");
  const int64_t Nd = int64_t(in.Xd.size()) / D, M = int64_t(in.Xq.size()) / D;
  CHECK(M >= 1, "dual form: at least one query token");
  const int64_t G = Hq / Hkv;
  const std::vector<double> q = matvec(in.Wq, Hq * d, D, in.Xq.data() + (M - 1) * D);
  DualFormResult r;
  r.attention.assign(size_t(Hq * d), 0.0);
  r.dual.assign(size_t(Hq * d), 0.0);
  // Attention form: one pass over the tokens of [X'; X] as keys/values.
  auto token = [&](int64_t j) { return j < Nd ? in.Xd.data() + j * D : in.Xq.data() + (j - Nd) * D; };
  for (int64_t j = 0; j < Nd + M; ++j) {
    const std::vector<double> k = matvec(in.Wk, Hkv * d, D, token(j)), v = matvec(in.Wv, Hkv * d, D, token(j));
    for (int64_t h = 0; h < Hq; ++h) {
      const int64_t g = h / G;
      double a = 0;
      for (int64_t i = 0; i < d; ++i) a += q[size_t(h * d + i)] * k[size_t(g * d + i)];
      for (int64_t i = 0; i < d; ++i) r.attention[size_t(h * d + i)] += a * v[size_t(g * d + i)];
    }
  }
  // Dual form: the explicit d x d matrices per kv head, W_ZSL from X and ΔW_ICL from X'.
  for (int64_t g = 0; g < Hkv; ++g) {
    std::vector<double> zsl(size_t(d * d), 0.0), dicl(size_t(d * d), 0.0);
    for (int64_t j = 0; j < Nd + M; ++j) {
      const std::vector<double> k = matvec(in.Wk, Hkv * d, D, token(j)), v = matvec(in.Wv, Hkv * d, D, token(j));
      std::vector<double>& W = j < Nd ? dicl : zsl;
      for (int64_t a = 0; a < d; ++a)
        for (int64_t b = 0; b < d; ++b) W[size_t(a * d + b)] += v[size_t(g * d + a)] * k[size_t(g * d + b)];
    }
    for (int64_t h = g * G; h < (g + 1) * G; ++h)
      for (int64_t a = 0; a < d; ++a) {
        double s = 0;
        for (int64_t b = 0; b < d; ++b) s += (zsl[size_t(a * d + b)] + dicl[size_t(a * d + b)]) * q[size_t(h * d + b)];
        r.dual[size_t(h * d + a)] = s;
      }
  }
  for (size_t i = 0; i < r.dual.size(); ++i) {
    r.max_abs_diff = std::max(r.max_abs_diff, std::abs(r.dual[i] - r.attention[i]));
    r.max_abs = std::max(r.max_abs, std::abs(r.attention[i]));
  }
  return r;
}

}  // namespace attnlab::icl
