#include "studies/icl/kendall.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.h"
#include "studies/icl/py_random.h"

namespace attnlab::icl {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Strict inversions (i < j, v[i] > v[j]) of v, which is sorted in place.
int64_t count_inversions(std::vector<double>& v, std::vector<double>& tmp, size_t lo, size_t hi) {
  if (hi - lo < 2) return 0;
  const size_t mid = lo + (hi - lo) / 2;
  int64_t inv = count_inversions(v, tmp, lo, mid) + count_inversions(v, tmp, mid, hi);
  size_t i = lo, j = mid, k = lo;
  while (i < mid && j < hi) {
    if (v[j] < v[i]) {  // v[j] is below every remaining left element: mid - i inversions
      inv += int64_t(mid - i);
      tmp[k++] = v[j++];
    } else {
      tmp[k++] = v[i++];
    }
  }
  while (i < mid) tmp[k++] = v[i++];
  while (j < hi) tmp[k++] = v[j++];
  std::copy(tmp.begin() + lo, tmp.begin() + hi, v.begin() + lo);
  return inv;
}

// Σ c(c-1)/2 over the runs of equal values of a sorted vector.
int64_t tied_pairs(const std::vector<double>& sorted) {
  int64_t pairs = 0;
  for (size_t i = 0; i < sorted.size();) {
    size_t j = i + 1;
    while (j < sorted.size() && sorted[j] == sorted[i]) ++j;
    const int64_t c = int64_t(j - i);
    pairs += c * (c - 1) / 2;
    i = j;
  }
  return pairs;
}

}  // namespace

double kendall_tau_b(std::span<const double> x, std::span<const double> y) {
  CHECK(x.size() == y.size(), "Kendall's tau needs vectors of one length, got ", x.size(), " and ", y.size());
  const size_t n = x.size();
  for (size_t i = 0; i < n; ++i)
    if (std::isnan(x[i]) || std::isnan(y[i])) return kNaN;
  if (n < 2) return kNaN;
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t(0));
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return x[a] < x[b] || (x[a] == x[b] && y[a] < y[b]); });
  std::vector<double> xs(n), ys(n);
  for (size_t i = 0; i < n; ++i) {
    xs[i] = x[order[i]];
    ys[i] = y[order[i]];
  }
  // Joint ties: runs of equal (x, y) in the (x, y) order.
  int64_t ntie = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    while (j < n && xs[j] == xs[i] && ys[j] == ys[i]) ++j;
    const int64_t c = int64_t(j - i);
    ntie += c * (c - 1) / 2;
    i = j;
  }
  const int64_t xtie = tied_pairs(xs);
  // Within a run of equal x the y values ascend, so strict inversions are exactly the discordant pairs.
  std::vector<double> tmp(n);
  const int64_t dis = count_inversions(ys, tmp, 0, n);
  const int64_t ytie = tied_pairs(ys);  // ys is sorted now
  const int64_t tot = int64_t(n) * int64_t(n - 1) / 2;
  if (xtie == tot || ytie == tot) return kNaN;
  const int64_t con_minus_dis = tot - xtie - ytie + ntie - 2 * dis;
  const double tau = double(con_minus_dis) / std::sqrt(double(tot - xtie)) / std::sqrt(double(tot - ytie));
  return std::min(1.0, std::max(-1.0, tau));
}

double kendall_tau_b(std::span<const float> x, std::span<const float> y) {
  std::vector<double> xd(x.begin(), x.end()), yd(y.begin(), y.end());
  return kendall_tau_b(std::span<const double>(xd), std::span<const double>(yd));
}

std::vector<double> query_inner_products(std::span<const float> Qd, int64_t Ld, int64_t dim, std::span<const float> q) {
  CHECK(Ld >= 0 && dim > 0 && int64_t(Qd.size()) == Ld * dim && int64_t(q.size()) == dim, "query_inner_products: Qd has ",
        Qd.size(), " values for [", Ld, " x ", dim, "], q has ", q.size());
  std::vector<double> ip(size_t(Ld), 0.0);
  for (int64_t t = 0; t < Ld; ++t) {
    double s = 0.0;
    for (int64_t c = 0; c < dim; ++c) s += double(Qd[size_t(t * dim + c)]) * double(q[size_t(c)]);
    ip[size_t(t)] = s;
  }
  return ip;
}

std::vector<double> heads_summed_prefix(std::span<const float> probs, int64_t heads, int64_t S, int64_t Ld) {
  CHECK(heads > 0 && S >= 0 && int64_t(probs.size()) == heads * S, "heads_summed_prefix: ", probs.size(),
        " values for [", heads, " x ", S, "]");
  CHECK(Ld >= 0 && Ld <= S, "the demonstration part (", Ld, " tokens) is longer than the ICL prompt (", S, " tokens)");
  std::vector<double> a(size_t(Ld), 0.0);
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t j = 0; j < Ld; ++j) a[size_t(j)] += double(probs[size_t(h * S + j)]);
  return a;
}

KendallSummary summarize_kendall(const std::vector<std::vector<double>>& taus, bool skip_nan) {
  KendallSummary s;
  for (const std::vector<double>& layer : taus) {
    double sum = 0.0;
    int64_t used = 0;
    for (double t : layer) {
      if (std::isnan(t)) {
        ++s.nan_count;
        if (skip_nan) continue;
      }
      sum += t;
      ++used;
    }
    s.per_layer.push_back(used ? sum / double(used) : (skip_nan ? 0.0 : kNaN));
  }
  s.mean = s.per_layer.empty() ? kNaN : std::accumulate(s.per_layer.begin(), s.per_layer.end(), 0.0) / double(s.per_layer.size());
  return s;
}

double kendall_random_original(std::span<const double> a, int64_t examples, int64_t Ld, PyRandom& rng) {
  CHECK(examples >= 0 && Ld >= 0 && int64_t(a.size()) == examples * Ld, "kendall_random_original: ", a.size(),
        " values for [", examples, " x ", Ld, "]");
  std::vector<double> u(a.size());
  for (double& v : u) v = rng.random();
  std::vector<double> col_a(static_cast<size_t>(examples)), col_u(static_cast<size_t>(examples));
  double sum = 0.0;
  int64_t used = 0;
  for (int64_t p = 0; p < Ld; ++p) {
    for (int64_t e = 0; e < examples; ++e) {
      col_a[size_t(e)] = a[size_t(e * Ld + p)];
      col_u[size_t(e)] = u[size_t(e * Ld + p)];
    }
    const double t = kendall_tau_b(std::span<const double>(col_a), std::span<const double>(col_u));
    if (std::isnan(t)) continue;
    sum += t;
    ++used;
  }
  return used ? sum / double(used) : 0.0;
}

double kendall_random_per_example(std::span<const double> a, PyRandom& rng) {
  std::vector<double> u(a.size());
  for (double& v : u) v = rng.random();
  return kendall_tau_b(a, std::span<const double>(u));
}

std::vector<double> softmax(std::span<const double> x) {
  std::vector<double> p(x.begin(), x.end());
  if (p.empty()) return p;
  const double m = *std::max_element(p.begin(), p.end());
  double z = 0.0;
  for (double& v : p) z += (v = std::exp(v - m));
  for (double& v : p) v /= z;
  return p;
}

std::vector<int64_t> topk_indices(std::span<const double> x, int64_t k) {
  std::vector<int64_t> idx(x.size());
  std::iota(idx.begin(), idx.end(), int64_t(0));
  k = std::max<int64_t>(0, std::min<int64_t>(k, int64_t(x.size())));
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int64_t a, int64_t b) {
    return x[size_t(a)] > x[size_t(b)] || (x[size_t(a)] == x[size_t(b)] && a < b);
  });
  idx.resize(size_t(k));
  return idx;
}

std::vector<double> segment_sums(std::span<const double> x, std::span<const int64_t> lengths) {
  std::vector<double> out;
  size_t at = 0;
  for (int64_t len : lengths) {
    CHECK(len >= 0 && at + size_t(len) <= x.size(), "the demonstration lengths sum past the ", x.size(), " tokens given");
    double s = 0.0;
    for (int64_t i = 0; i < len; ++i) s += x[at++];
    out.push_back(s);
  }
  CHECK(at == x.size(), "the demonstration lengths sum to ", at, ", not to the ", x.size(), " tokens given");
  return out;
}

namespace {

double topk_recall(std::span<const double> icl, std::span<const double> ft, int64_t k) {
  const std::vector<int64_t> a = topk_indices(icl, k), b = topk_indices(ft, k);
  if (a.empty()) return kNaN;
  int64_t hit = 0;
  for (int64_t i : a) hit += std::find(b.begin(), b.end(), i) != b.end();
  return double(hit) / double(a.size());
}

double random_recall(std::span<const double> ft, int64_t k, PyRandom& rng) {
  const std::vector<int64_t> b = topk_indices(ft, k);
  if (b.empty()) return kNaN;
  int64_t hit = 0;
  for (size_t l = 0; l < b.size(); ++l) {
    const int64_t r = int64_t(rng.randbelow(uint64_t(ft.size())));
    hit += std::find(b.begin(), b.end(), r) != b.end();
  }
  return double(hit) / double(b.size());
}

std::vector<double> uniform_noise(size_t n, PyRandom& rng) {
  std::vector<double> u(n);
  for (double& v : u) v = rng.random();
  return u;
}

}  // namespace

KendallPaperScores kendall_paper(std::span<const double> icl_scores, std::span<const double> ft_scores,
                                 std::span<const int64_t> example_lengths, const KendallPaperOptions& opt,
                                 PyRandom& rng) {
  CHECK(icl_scores.size() == ft_scores.size(), "the ICL and FT maps cover ", icl_scores.size(), " and ",
        ft_scores.size(), " demonstration tokens; they must cover the same tokens");
  const std::vector<double> icl = softmax(icl_scores), ft = softmax(ft_scores);
  const std::vector<double> icl_ex = segment_sums(icl, example_lengths), ft_ex = segment_sums(ft, example_lengths);
  KendallPaperScores s;
  s.token_tau = kendall_tau_b(std::span<const double>(icl), std::span<const double>(ft));
  s.example_tau = kendall_tau_b(std::span<const double>(icl_ex), std::span<const double>(ft_ex));
  s.token_recall = topk_recall(icl, ft, opt.topk_tokens);
  s.example_recall = topk_recall(icl_ex, ft_ex, opt.topk_examples);
  const std::vector<double> noise = uniform_noise(icl.size(), rng), noise_ex = uniform_noise(icl_ex.size(), rng);
  s.token_random_tau = kendall_tau_b(std::span<const double>(icl), std::span<const double>(noise));
  s.example_random_tau = kendall_tau_b(std::span<const double>(icl_ex), std::span<const double>(noise_ex));
  s.token_random_recall = random_recall(ft, opt.topk_tokens, rng);
  s.example_random_recall = random_recall(ft_ex, opt.topk_examples, rng);
  return s;
}

}  // namespace attnlab::icl
