// The fragment maps of mma.sync.m16n8k16.row.col (core/ops/attention_mma_layout.h) checked on the
// CPU, so that the tensor-core kernels (cuda/attention_fused_mma*.cu) index fragments through maps
// that are known to be right before they ever run on a GPU:
//   - the maps agree with entries read off the PTX ISA's figures (three lanes, as literals);
//   - each map (A, B, C) puts every element of its tile in exactly one (lane, element) slot;
//   - an m16n8k16 emulated from the maps (fragments gathered per lane from random matrices, each
//     lane's D registers computed by the PTX rule D[r][c] = Σ_k A[r][k]·B[k][c] + C[r][c], with the
//     A and B entries fetched from whichever lane holds them, D scattered back) equals the plain
//     product;
//   - the accumulator → A-operand reuse (S's accumulators become the A operand of S·V without a
//     shuffle) gives the plain (A·B)·V;
//   - an emulated ldmatrix.x4 (.trans) with the lane addresses of ldsm_a / ldsm_b / ldsm_bt loads
//     exactly the elements the fragment maps describe.
// Values are small random integers, so every product is exact and the comparisons are equalities.
#include <gtest/gtest.h>

#include <array>
#include <random>
#include <vector>

#include "core/ops/attention_mma_layout.h"

namespace attnlab::test {
namespace {

using mma::RowCol;
constexpr int kLanes = 32;

struct Mat {
  int rows = 0, cols = 0;
  std::vector<double> v;
  Mat(int r, int c) : rows(r), cols(c), v(size_t(r) * c, 0.0) {}
  double& at(int r, int c) { return v[size_t(r) * cols + c]; }
  double at(int r, int c) const { return v[size_t(r) * cols + c]; }
};

Mat random_mat(int r, int c, std::mt19937& g) {
  std::uniform_int_distribution<int> d(-9, 9);
  Mat m(r, c);
  for (double& x : m.v) {
    int y = d(g);
    x = y == 0 ? 7 : y;  // no zeros: a dropped term always shows
  }
  return m;
}

Mat matmul(const Mat& a, const Mat& b) {
  Mat c(a.rows, b.cols);
  for (int i = 0; i < a.rows; ++i)
    for (int j = 0; j < b.cols; ++j) {
      double s = 0;
      for (int k = 0; k < a.cols; ++k) s += a.at(i, k) * b.at(k, j);
      c.at(i, j) = s;
    }
  return c;
}

// Every (row, col) of a rows × cols tile held by exactly one (lane, element).
template <class F>
void expect_bijection(F map, int nelem, int rows, int cols, const char* what) {
  std::vector<int> owners(size_t(rows) * cols, 0);
  for (int lane = 0; lane < kLanes; ++lane)
    for (int i = 0; i < nelem; ++i) {
      const RowCol p = map(lane, i);
      ASSERT_TRUE(p.row >= 0 && p.row < rows && p.col >= 0 && p.col < cols)
          << what << " lane " << lane << " element " << i << " maps outside the tile";
      ++owners[size_t(p.row) * cols + p.col];
    }
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c)
      EXPECT_EQ(owners[size_t(r) * cols + c], 1) << what << " (" << r << ", " << c << ")";
}

TEST(AttentionMmaLayout, EveryMapIsABijectionOntoItsTile) {
  EXPECT_EQ(kLanes * mma::kAElems, mma::kM * mma::kK);
  EXPECT_EQ(kLanes * mma::kBElems, mma::kK * mma::kN);
  EXPECT_EQ(kLanes * mma::kCElems, mma::kM * mma::kN);
  expect_bijection(mma::a_elem, mma::kAElems, mma::kM, mma::kK, "A");
  expect_bijection(mma::b_elem, mma::kBElems, mma::kK, mma::kN, "B");
  expect_bijection(mma::c_elem, mma::kCElems, mma::kM, mma::kN, "C");
}

// The maps against entries read off the PTX ISA's fragment figures for m16n8k16 (.bf16 A / B,
// .f32 C/D) for three lanes (T0, T5 = group 1 thread 1, T31 = group 7 thread 3), written out as
// literals: independent of the formulas in the header, so a consistently wrong map (which the
// emulated product below would not notice) fails here.
TEST(AttentionMmaLayout, MapsMatchThePtxFigures) {
  struct Case {
    int lane;
    int a[8][2], b[4][2], c[4][2];
  };
  const Case cases[] = {
      {0, {{0, 0}, {0, 1}, {8, 0}, {8, 1}, {0, 8}, {0, 9}, {8, 8}, {8, 9}}, {{0, 0}, {1, 0}, {8, 0}, {9, 0}},
       {{0, 0}, {0, 1}, {8, 0}, {8, 1}}},
      {5, {{1, 2}, {1, 3}, {9, 2}, {9, 3}, {1, 10}, {1, 11}, {9, 10}, {9, 11}}, {{2, 1}, {3, 1}, {10, 1}, {11, 1}},
       {{1, 2}, {1, 3}, {9, 2}, {9, 3}}},
      {31, {{7, 6}, {7, 7}, {15, 6}, {15, 7}, {7, 14}, {7, 15}, {15, 14}, {15, 15}},
       {{6, 7}, {7, 7}, {14, 7}, {15, 7}}, {{7, 6}, {7, 7}, {15, 6}, {15, 7}}},
  };
  for (const Case& c : cases) {
    for (int i = 0; i < 8; ++i) {
      const RowCol p = mma::a_elem(c.lane, i);
      EXPECT_TRUE(p.row == c.a[i][0] && p.col == c.a[i][1]) << "A lane " << c.lane << " a" << i;
    }
    for (int i = 0; i < 4; ++i) {
      const RowCol p = mma::b_elem(c.lane, i), q = mma::c_elem(c.lane, i);
      EXPECT_TRUE(p.row == c.b[i][0] && p.col == c.b[i][1]) << "B lane " << c.lane << " b" << i;
      EXPECT_TRUE(q.row == c.c[i][0] && q.col == c.c[i][1]) << "C lane " << c.lane << " c" << i;
    }
  }
}

// Per-lane fragments of one m16n8k16.
struct Frags {
  std::array<std::array<double, mma::kAElems>, kLanes> a{};
  std::array<std::array<double, mma::kBElems>, kLanes> b{};
  std::array<std::array<double, mma::kCElems>, kLanes> c{};
};

// The warp-wide product as the PTX ISA states it, from the lanes' registers only: lane L's D
// element i is at (r, c) = c_elem(L, i); its A row and B column are read from the lanes that hold
// them (found by searching the maps, not by the maps' formulas inverted by hand).
std::array<std::array<double, mma::kCElems>, kLanes> emulate_mma(const Frags& f) {
  double A[mma::kM][mma::kK] = {}, B[mma::kK][mma::kN] = {};
  bool seen_a[mma::kM][mma::kK] = {}, seen_b[mma::kK][mma::kN] = {};
  for (int lane = 0; lane < kLanes; ++lane) {
    for (int i = 0; i < mma::kAElems; ++i) {
      const RowCol p = mma::a_elem(lane, i);
      A[p.row][p.col] = f.a[lane][i], seen_a[p.row][p.col] = true;
    }
    for (int i = 0; i < mma::kBElems; ++i) {
      const RowCol p = mma::b_elem(lane, i);
      B[p.row][p.col] = f.b[lane][i], seen_b[p.row][p.col] = true;
    }
  }
  for (int r = 0; r < mma::kM; ++r)
    for (int k = 0; k < mma::kK; ++k) EXPECT_TRUE(seen_a[r][k]);
  for (int k = 0; k < mma::kK; ++k)
    for (int c = 0; c < mma::kN; ++c) EXPECT_TRUE(seen_b[k][c]);
  std::array<std::array<double, mma::kCElems>, kLanes> d{};
  for (int lane = 0; lane < kLanes; ++lane)
    for (int i = 0; i < mma::kCElems; ++i) {
      const RowCol p = mma::c_elem(lane, i);
      double s = f.c[lane][i];
      for (int k = 0; k < mma::kK; ++k) s += A[p.row][k] * B[k][p.col];
      d[lane][i] = s;
    }
  return d;
}

Frags gather(const Mat& a, int a_c0, const Mat& b, int b_c0, const Mat& c, int c_c0) {
  Frags f;
  for (int lane = 0; lane < kLanes; ++lane) {
    for (int i = 0; i < mma::kAElems; ++i) {
      const RowCol p = mma::a_elem(lane, i);
      f.a[lane][i] = a.at(p.row, a_c0 + p.col);
    }
    for (int i = 0; i < mma::kBElems; ++i) {
      const RowCol p = mma::b_elem(lane, i);
      f.b[lane][i] = b.at(p.row, b_c0 + p.col);
    }
    for (int i = 0; i < mma::kCElems; ++i) {
      const RowCol p = mma::c_elem(lane, i);
      f.c[lane][i] = c.at(p.row, c_c0 + p.col);
    }
  }
  return f;
}

TEST(AttentionMmaLayout, EmulatedMmaEqualsMatrixProduct) {
  std::mt19937 g(1901);
  for (int trial = 0; trial < 5; ++trial) {
    const Mat a = random_mat(mma::kM, mma::kK, g), b = random_mat(mma::kK, mma::kN, g);
    const Mat c = random_mat(mma::kM, mma::kN, g);
    const auto d = emulate_mma(gather(a, 0, b, 0, c, 0));
    Mat got(mma::kM, mma::kN), want = matmul(a, b);
    for (int lane = 0; lane < kLanes; ++lane)
      for (int i = 0; i < mma::kCElems; ++i) {
        const RowCol p = mma::c_elem(lane, i);
        got.at(p.row, p.col) = d[lane][i];
      }
    for (int r = 0; r < mma::kM; ++r)
      for (int col = 0; col < mma::kN; ++col)
        EXPECT_EQ(got.at(r, col), want.at(r, col) + c.at(r, col))
            << "trial " << trial << " (" << r << ", " << col << ")";
  }
}

// S = Q·Kᵀ (16 × 32: four n8 tiles over two k16 slices of d = 32), then O = S·V (V 32 × 8) with
// S's accumulators turned into A fragments by tile_of_a / c_of_a, as the attention kernels do.
TEST(AttentionMmaLayout, AccumulatorsReusedAsAOperandGiveChainedProduct) {
  std::mt19937 g(1913);
  constexpr int d = 32, nkeys = 32, dv = 8;
  const Mat q = random_mat(mma::kM, d, g), kt = random_mat(d, nkeys, g), v = random_mat(nkeys, dv, g);
  const Mat zero_s(mma::kM, nkeys);
  // S's accumulators per n8 tile, lane, element.
  std::array<std::array<std::array<double, mma::kCElems>, kLanes>, nkeys / mma::kN> s_acc{};
  for (int nt = 0; nt < nkeys / mma::kN; ++nt) {
    Frags f = gather(q, 0, kt, nt * mma::kN, zero_s, nt * mma::kN);
    for (int ks = 0; ks < d / mma::kK; ++ks) {
      const Frags slice = gather(q, ks * mma::kK, [&] {
        Mat b(mma::kK, nkeys);
        for (int k = 0; k < mma::kK; ++k)
          for (int c = 0; c < nkeys; ++c) b.at(k, c) = kt.at(ks * mma::kK + k, c);
        return b;
      }(), nt * mma::kN, zero_s, 0);
      f.a = slice.a, f.b = slice.b;
      f.c = emulate_mma(f);
    }
    s_acc[nt] = f.c;
  }
  // O = S·V: k16 block kb of S is C tiles 2kb, 2kb + 1.
  Frags o;  // o.c starts at zero
  for (int kb = 0; kb < nkeys / mma::kK; ++kb) {
    for (int lane = 0; lane < kLanes; ++lane) {
      for (int i = 0; i < mma::kAElems; ++i)
        o.a[lane][i] = s_acc[2 * kb + mma::tile_of_a(i)][lane][mma::c_of_a(i)];
      for (int i = 0; i < mma::kBElems; ++i) {
        const RowCol p = mma::b_elem(lane, i);
        o.b[lane][i] = v.at(kb * mma::kK + p.row, p.col);
      }
    }
    o.c = emulate_mma(o);
  }
  const Mat want = matmul(matmul(q, kt), v);
  for (int lane = 0; lane < kLanes; ++lane)
    for (int i = 0; i < mma::kCElems; ++i) {
      const RowCol p = mma::c_elem(lane, i);
      EXPECT_EQ(o.c[lane][i], want.at(p.row, p.col)) << "lane " << lane << " element " << i;
    }
}

// ldmatrix.x4 as the PTX ISA states it: lane l gives the address of row l % 8 of matrix l / 8;
// register j of lane L then holds, without .trans, elements 2(L % 4), 2(L % 4) + 1 of the row whose
// address lane 8j + L / 4 gave; with .trans, element L / 4 of the rows lanes 8j + 2(L % 4) and
// 8j + 2(L % 4) + 1 gave. Returns the (row, col) of the array each half register reads.
std::array<std::array<RowCol, 8>, kLanes> emulate_ldsm(RowCol (*addr)(int), bool trans) {
  std::array<std::array<RowCol, 8>, kLanes> out{};
  for (int lane = 0; lane < kLanes; ++lane) {
    const int grp = lane / 4, q = lane % 4;
    for (int j = 0; j < 4; ++j)
      for (int h = 0; h < 2; ++h) {
        if (!trans) {
          const RowCol base = addr(8 * j + grp);
          out[lane][2 * j + h] = {base.row, base.col + 2 * q + h};
        } else {
          const RowCol base = addr(8 * j + 2 * q + h);
          out[lane][2 * j + h] = {base.row, base.col + grp};
        }
      }
  }
  return out;
}

void expect_same(RowCol got, RowCol want, int lane, int reg, const char* what) {
  EXPECT_TRUE(got.row == want.row && got.col == want.col)
      << what << " lane " << lane << " half-register " << reg << ": loads (" << got.row << ", " << got.col
      << "), the fragment wants (" << want.row << ", " << want.col << ")";
}

TEST(AttentionMmaLayout, LdmatrixAddressesLoadTheFragments) {
  // A from a row-major 16 × 16 block: half-register i is A element i.
  const auto a = emulate_ldsm(mma::ldsm_a, false);
  for (int lane = 0; lane < kLanes; ++lane)
    for (int i = 0; i < 8; ++i) expect_same(a[lane][i], mma::a_elem(lane, i), lane, i, "A");
  // B of two n8 tiles from an N × K row-major array (array row = n, col = k): registers {0, 1}
  // n-tile 0, {2, 3} n-tile 1 (n + 8).
  const auto b = emulate_ldsm(mma::ldsm_b, false);
  for (int lane = 0; lane < kLanes; ++lane)
    for (int i = 0; i < 8; ++i) {
      const RowCol kn = mma::b_elem(lane, i % 4);
      expect_same(b[lane][i], {kn.col + 8 * (i / 4), kn.row}, lane, i, "B (N x K)");
    }
  // B of two n8 tiles from a K × N row-major array with .trans (array row = k, col = n).
  const auto bt = emulate_ldsm(mma::ldsm_bt, true);
  for (int lane = 0; lane < kLanes; ++lane)
    for (int i = 0; i < 8; ++i) {
      const RowCol kn = mma::b_elem(lane, i % 4);
      expect_same(bt[lane][i], {kn.row, kn.col + 8 * (i / 4)}, lane, i, "B (K x N, trans)");
    }
}

}  // namespace
}  // namespace attnlab::test
