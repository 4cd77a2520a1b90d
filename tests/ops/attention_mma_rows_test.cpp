// The tensor-core forward's per-row update rules (core/ops/attention_mma_rows.h) replayed on the CPU
// the way the kernel applies them: a row's keys arrive in tiles of 64, each key held by one of the
// 4 lanes of a quad (key j of a tile by lane (j % 8) / 2, as an m16n8 accumulator holds it), every
// lane keeping its own partial sums Σ e·v, Σ e (softmax) and Σ w·v, Σ v, Σ w, count (linear), the
// running max / min reduced over the quad before each step. The final O, lse and Z must equal
// the direct formulas in double: random rows, rows whose max grows or min drops at every tile,
// rows that end inside a tile, a single key, and no visible key at all (zeros, no NaN).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <random>
#include <vector>

#include "core/ops/attention_mma_rows.h"

namespace attnlab::test {
namespace {

constexpr int kTile = 64, kLanes = 4, kCols = 3;

struct Row {
  std::vector<float> x;                       // scores of the S keys
  std::vector<std::array<float, kCols>> v;    // values
  int64_t n = 0;                              // visible keys: the prefix [0, n)
};

struct Result {
  std::array<double, kCols> o_sm{}, o_lin{};
  double lse = 0, z = 0;
};

Result replay(const Row& r) {
  struct Lane {
    std::array<float, kCols> os{}, ow{}, o1{};
    float l = 0, z = 0, cnt = 0;
  };
  std::array<Lane, kLanes> lanes{};
  float mx = -INFINITY, mr = INFINITY;
  const int64_t S = int64_t(r.x.size());
  for (int64_t j0 = 0; j0 < S; j0 += kTile) {
    if (j0 >= r.n) break;  // the kernel's warp skips tiles no row of it sees
    const int64_t j1 = std::min(S, j0 + kTile);
    float tmax = -INFINITY, tmin = INFINITY;  // the quad-reduced tile extremes over visible keys
    for (int64_t j = j0; j < j1; ++j)
      if (j < r.n) tmax = std::max(tmax, r.x[size_t(j)]), tmin = std::min(tmin, r.x[size_t(j)]);
    const mma::MaxStep ms = mma::max_step(mx, tmax);
    const mma::MinStep ns = mma::min_step(mr, tmin);
    for (Lane& ln : lanes) {
      ln.l *= ms.factor;
      for (float& o : ln.os) o *= ms.factor;
      if (ns.delta > 0.f) {
        ln.z = std::fma(ns.delta, ln.cnt, ln.z);
        for (int c = 0; c < kCols; ++c) ln.ow[size_t(c)] = std::fma(ns.delta, ln.o1[size_t(c)], ln.ow[size_t(c)]);
      }
    }
    mx = ms.m, mr = ns.m;
    for (int64_t j = j0; j < j1; ++j) {
      Lane& ln = lanes[size_t(((j - j0) % 8) / 2)];
      const bool vis = j < r.n;
      const float e = mma::softmax_weight(r.x[size_t(j)], ms.base, vis);
      const float w = mma::linear_weight(r.x[size_t(j)], mr, vis);
      ln.l += e, ln.z += w, ln.cnt += vis ? 1.f : 0.f;
      for (int c = 0; c < kCols; ++c) {
        const float vc = r.v[size_t(j)][size_t(c)];
        ln.os[size_t(c)] += e * vc, ln.ow[size_t(c)] += w * vc, ln.o1[size_t(c)] += vis ? vc : 0.f;
      }
    }
  }
  float l = 0, z = 0;
  std::array<float, kCols> os{}, ow{};
  for (const Lane& ln : lanes) {
    l += ln.l, z += ln.z;
    for (int c = 0; c < kCols; ++c) os[size_t(c)] += ln.os[size_t(c)], ow[size_t(c)] += ln.ow[size_t(c)];
  }
  Result res;
  res.lse = mma::softmax_lse(mx, l, r.n > 0);
  res.z = z;
  for (int c = 0; c < kCols; ++c) {
    res.o_sm[size_t(c)] = l > 0 ? os[size_t(c)] / l : 0.0;
    res.o_lin[size_t(c)] = z > 0 ? ow[size_t(c)] / z : 0.0;
  }
  return res;
}

Result direct(const Row& r) {
  Result res;
  if (r.n == 0) return res;
  double mx = -INFINITY, mn = INFINITY;
  for (int64_t j = 0; j < r.n; ++j) {
    mx = std::max(mx, double(r.x[size_t(j)]));
    mn = std::min(mn, double(r.x[size_t(j)]));
  }
  double l = 0;
  std::array<double, kCols> os{}, ow{};
  for (int64_t j = 0; j < r.n; ++j) {
    const double e = std::exp(double(r.x[size_t(j)]) - mx), w = double(r.x[size_t(j)]) - mn + 1;
    l += e, res.z += w;
    for (int c = 0; c < kCols; ++c) {
      os[size_t(c)] += e * r.v[size_t(j)][size_t(c)];
      ow[size_t(c)] += w * r.v[size_t(j)][size_t(c)];
    }
  }
  res.lse = mx + std::log(l);
  for (int c = 0; c < kCols; ++c) res.o_sm[size_t(c)] = os[size_t(c)] / l, res.o_lin[size_t(c)] = ow[size_t(c)] / res.z;
  return res;
}

Row make_row(int64_t S, int64_t n, float spread, int order, std::mt19937& g) {
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  Row r;
  r.n = n;
  r.x.resize(size_t(S));
  r.v.resize(size_t(S));
  for (int64_t j = 0; j < S; ++j) {
    r.x[size_t(j)] = spread * u(g);
    for (float& c : r.v[size_t(j)]) c = u(g);
  }
  if (order > 0) std::sort(r.x.begin(), r.x.end());                     // max grows every tile
  if (order < 0) std::sort(r.x.begin(), r.x.end(), std::greater<>());  // min drops every tile
  return r;
}

void expect_close(const Result& got, const Result& want, const char* what) {
  auto close = [](double a, double b, double tol) { return std::fabs(a - b) <= tol * std::max(1.0, std::fabs(b)); };
  EXPECT_TRUE(close(got.lse, want.lse, 1e-5)) << what << " lse " << got.lse << " vs " << want.lse;
  EXPECT_TRUE(close(got.z, want.z, 1e-5)) << what << " Z " << got.z << " vs " << want.z;
  for (int c = 0; c < kCols; ++c) {
    EXPECT_TRUE(close(got.o_sm[size_t(c)], want.o_sm[size_t(c)], 1e-5))
        << what << " softmax O[" << c << "] " << got.o_sm[size_t(c)] << " vs " << want.o_sm[size_t(c)];
    EXPECT_TRUE(close(got.o_lin[size_t(c)], want.o_lin[size_t(c)], 1e-5))
        << what << " linear O[" << c << "] " << got.o_lin[size_t(c)] << " vs " << want.o_lin[size_t(c)];
  }
}

TEST(AttentionMmaRows, ReplayedTilesEqualTheDirectFormulas) {
  std::mt19937 g(1931);
  struct Shape {
    int64_t S, n;
  };
  const Shape shapes[] = {{1, 1}, {7, 7}, {64, 64}, {65, 65}, {331, 331}, {331, 197}, {200, 129}, {139, 67}};
  for (const Shape& sh : shapes)
    for (int order : {0, 1, -1})
      for (float spread : {3.f, 40.f}) {
        const Row r = make_row(sh.S, sh.n, spread, order, g);
        const std::string what = "S " + std::to_string(sh.S) + " n " + std::to_string(sh.n) + " order " +
                                 std::to_string(order) + " spread " + std::to_string(spread);
        expect_close(replay(r), direct(r), what.c_str());
      }
}

TEST(AttentionMmaRows, RowWithoutVisibleKeysGivesZerosNotNaN) {
  std::mt19937 g(1933);
  for (int64_t S : {1, 64, 131}) {
    const Row r = make_row(S, 0, 5.f, 0, g);
    const Result got = replay(r);
    EXPECT_EQ(got.lse, 0.0);
    EXPECT_EQ(got.z, 0.0);
    for (int c = 0; c < kCols; ++c) EXPECT_TRUE(got.o_sm[size_t(c)] == 0.0 && got.o_lin[size_t(c)] == 0.0) << S;
  }
  // The steps themselves before any visible key: nothing to scale or shift, weights 0.
  const mma::MaxStep ms = mma::max_step(-INFINITY, -INFINITY);
  EXPECT_EQ(ms.base, 0.f);
  EXPECT_EQ(ms.factor, 0.f);
  EXPECT_EQ(mma::softmax_weight(3.f, ms.base, false), 0.f);
  const mma::MinStep ns = mma::min_step(INFINITY, INFINITY);
  EXPECT_EQ(ns.delta, 0.f);
  EXPECT_EQ(mma::linear_weight(3.f, ns.m, false), 0.f);
  // A first visible tile: no shift of empty sums; a later lower min: shift by the drop.
  EXPECT_EQ(mma::min_step(INFINITY, 2.5f).delta, 0.f);
  EXPECT_EQ(mma::min_step(2.5f, 1.f).delta, 1.5f);
  EXPECT_EQ(mma::min_step(1.f, 2.5f).delta, 0.f);
  EXPECT_FLOAT_EQ(mma::max_step(1.f, 3.f).factor, std::exp(-2.f));
}

}  // namespace
}  // namespace attnlab::test
