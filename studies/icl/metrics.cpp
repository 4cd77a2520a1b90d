#include "studies/icl/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "core/error.h"

namespace attnlab::icl {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

template <class A, class B>
double cosine(std::span<const A> a, std::span<const B> b) {
  CHECK(a.size() == b.size(), "cosine similarity of vectors of lengths ", a.size(), " and ", b.size());
  double dot = 0, na = 0, nb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    dot += double(a[i]) * double(b[i]);
    na += double(a[i]) * double(a[i]);
    nb += double(b[i]) * double(b[i]);
  }
  return dot / (std::max(std::sqrt(na), 1e-8) * std::max(std::sqrt(nb), 1e-8));
}

double norm_of(std::span<const float> v) {
  double s = 0;
  for (float x : v) s += double(x) * double(x);
  return std::sqrt(s);
}

// ĥ_a − ĥ_b with ĥ = h / (‖h‖ + eps).
std::vector<double> normalized_difference(std::span<const float> a, std::span<const float> b, double eps) {
  CHECK(a.size() == b.size(), "SimAOU vectors of lengths ", a.size(), " and ", b.size(), "; every vector of a layer must have the model's width");
  const double ia = 1.0 / (norm_of(a) + eps), ib = 1.0 / (norm_of(b) + eps);
  std::vector<double> d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = double(a[i]) * ia - double(b[i]) * ib;
  return d;
}

}  // namespace

double cosine_similarity(std::span<const double> a, std::span<const double> b) { return cosine(a, b); }
double cosine_similarity(std::span<const float> a, std::span<const float> b) { return cosine(a, b); }

Rec2Ft rec2ft(std::span<const int64_t> zsl_correct, std::span<const int64_t> icl_correct,
              std::span<const int64_t> ft_correct) {
  const std::set<int64_t> Z(zsl_correct.begin(), zsl_correct.end()), I(icl_correct.begin(), icl_correct.end()),
      F(ft_correct.begin(), ft_correct.end());
  Rec2Ft r;
  for (int64_t i : F) {
    const bool ft_gain = !Z.count(i), in_icl = I.count(i) > 0;
    r.ft_gain += ft_gain;
    r.shared_gain += ft_gain && in_icl;
    r.ft_not_icl += !in_icl;
  }
  for (int64_t i : I) r.icl_gain += !Z.count(i);
  r.paper = r.ft_gain ? double(r.shared_gain) / double(r.ft_gain) : kNaN;
  r.original = double(r.shared_gain) / (double(r.ft_not_icl) + 1e-5);
  return r;
}

LayerMeans::LayerMeans(int64_t layers) : sum_(size_t(std::max<int64_t>(layers, 0)), 0.0), count_(sum_.size(), 0) {
  CHECK(layers > 0, "a per-layer mean needs at least one layer, got ", layers);
}

void LayerMeans::add(int64_t layer, double value) {
  CHECK(layer >= 0 && layer < layers(), "layer ", layer, " is outside 0..", layers() - 1);
  sum_[size_t(layer)] += value;
  ++count_[size_t(layer)];
}

int64_t LayerMeans::count(int64_t layer) const {
  CHECK(layer >= 0 && layer < layers(), "layer ", layer, " is outside 0..", layers() - 1);
  return count_[size_t(layer)];
}

std::vector<double> LayerMeans::per_layer() const {
  std::vector<double> m(sum_.size());
  for (size_t l = 0; l < m.size(); ++l) m[l] = count_[l] ? sum_[l] / double(count_[l]) : kNaN;
  return m;
}

double LayerMeans::mean(int64_t first_layer) const {
  CHECK(first_layer >= 0 && first_layer < layers(), "no layers left from layer ", first_layer, " of ", layers());
  const std::vector<double> m = per_layer();
  double s = 0;
  for (size_t l = size_t(first_layer); l < m.size(); ++l) s += m[l];
  return s / double(m.size() - size_t(first_layer));
}

double simaou_cos(std::span<const float> zsl, std::span<const float> icl, std::span<const float> ft, double norm_eps) {
  const std::vector<double> d_icl = normalized_difference(icl, zsl, norm_eps);
  const std::vector<double> d_ft = normalized_difference(ft, zsl, norm_eps);
  return cosine_similarity(std::span<const double>(d_icl), std::span<const double>(d_ft));
}

double simaou_random_cos(std::span<const float> zsl, std::span<const float> icl, std::span<const double> r,
                         double norm_eps) {
  const std::vector<double> d_icl = normalized_difference(icl, zsl, norm_eps);
  return cosine_similarity(std::span<const double>(d_icl), r);
}

SimAou::SimAou(int64_t layers, const SimAouOptions& opt)
    : opt_(opt), ft_(layers), random_(layers), rng_(opt.seed) {
  CHECK(opt.norm_eps >= 0, "SimAOU's normalisation epsilon must be >= 0");
}

void SimAou::add(int64_t layer, std::span<const float> zsl, std::span<const float> icl, std::span<const float> ft) {
  ft_.add(layer, simaou_cos(zsl, icl, ft, opt_.norm_eps));
  r_.resize(icl.size());
  for (double& v : r_) v = opt_.random == RandomDraw::normal ? rng_.gauss() : rng_.random();
  random_.add(layer, simaou_random_cos(zsl, icl, r_, opt_.norm_eps));
}

SimAouResult SimAou::result() const {
  SimAouResult r;
  r.first_layer = opt_.source == SimAouSource::hidden && !opt_.include_embedding_layer && ft_.layers() > 1 ? 1 : 0;
  r.per_layer = ft_.per_layer();
  r.random_per_layer = random_.per_layer();
  r.mean = ft_.mean(r.first_layer);
  r.random_mean = random_.mean(r.first_layer);
  return r;
}

SimAm::SimAm(int64_t layers) : ft_(layers), zsl_(layers) {}

void SimAm::add(int64_t layer, int64_t heads, std::span<const float> z, std::span<const float> c,
                std::span<const float> f, int64_t query_start) {
  CHECK(heads > 0 && z.size() % size_t(heads) == 0 && c.size() % size_t(heads) == 0 && f.size() == z.size(),
        "SimAM scores: ZSL ", z.size(), ", ICL ", c.size(), ", FT ", f.size(), " values for ", heads, " heads");
  const int64_t Lq = int64_t(z.size()) / heads, Lc = int64_t(c.size()) / heads;
  if (query_start < 0 || query_start + Lq > Lc)
    FAIL_WITH("SimAM: the zero-shot prompt has ", Lq, " tokens but the ICL prompt has only ", Lc - query_start,
              " from position ", query_start, "; the query tokenizes differently after the context. Use the ORIGINAL "
              "alignment (the last ", Lq, " ICL scores)");
  double sum_ft = 0, sum_zsl = 0;
  for (int64_t h = 0; h < heads; ++h) {
    const std::span<const float> ch = c.subspan(size_t(h * Lc + query_start), size_t(Lq));
    sum_ft += cosine_similarity(f.subspan(size_t(h * Lq), size_t(Lq)), ch);
    sum_zsl += cosine_similarity(z.subspan(size_t(h * Lq), size_t(Lq)), ch);
  }
  ft_.add(layer, sum_ft / double(heads));
  zsl_.add(layer, sum_zsl / double(heads));
}

SimAmResult SimAm::result() const {
  return {ft_.per_layer(), zsl_.per_layer(), ft_.mean(), zsl_.mean()};
}

}  // namespace attnlab::icl
