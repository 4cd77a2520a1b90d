#pragma once
// Fragment layouts of the warp-level tensor-core product mma.sync.aligned.m16n8k16.row.col
// (f32 += bf16 · bf16) as the PTX ISA defines them ("Matrix fragments for mma.m16n8k16 with
// floating point type"), and the address pattern of ldmatrix.sync.aligned.m8n8.x4(.trans).b16
// that fills them. The tensor-core kernels (cuda/attention_fused_mma*.cu) compute every
// fragment index through these maps, and the CPU tests (tests/ops/attention_mma_layout_test.cpp)
// check them: each map is a bijection onto its tile, an emulated m16n8k16 built from them equals
// a plain matrix product, the accumulator → A-operand reuse of FlashAttention-2 (P from S's
// accumulators is the A operand of P·V) keeps every (row, col), and an emulated ldmatrix with the
// addresses below yields the fragments the maps describe. No CUDA intrinsics: plain arithmetic.
//
// A warp's lanes form 8 groups of 4: g = lane / 4 (the group), q = lane % 4 (thread in group).
//   A (16 × 16, row-major operand): 8 bf16 per lane in 4 b32 registers, element i in register
//     i / 2 (low half for even i): row g + 8·((i / 2) % 2), col 2q + i % 2 + 8·(i / 4).
//   B (16 × 8, K × N, "col" operand): 4 bf16 per lane in 2 registers: row (k) 2q + i % 2 + 8·(i / 2),
//     col (n) g. B stored column-major is an N × K row-major array: K rows of the key tile for
//     S = Q·Kᵀ, Q rows for Sᵀ = K·Qᵀ.
//   C / D (16 × 8, f32): 4 per lane: row g + 8·(i / 2), col 2q + i % 2.
// Accumulator → A: the 16 × 16 block of columns [16k, 16k + 16) of a row of C tiles is the two
// C tiles 2k and 2k + 1; A element i is C tile 2k + i / 4, element i % 4 (same lane). So A
// register r packs C tile 2k + r / 2, elements 2·(r % 2) and 2·(r % 2) + 1.
#include "core/hd.h"

namespace attnlab::mma {

constexpr int kM = 16, kN = 8, kK = 16;  // the m16n8k16 shape
constexpr int kAElems = 8, kBElems = 4, kCElems = 4;

struct RowCol {
  int row = 0, col = 0;
};

ATTNLAB_HD constexpr int lane_group(int lane) { return lane >> 2; }
ATTNLAB_HD constexpr int lane_in_group(int lane) { return lane & 3; }

ATTNLAB_HD constexpr RowCol a_elem(int lane, int i) {
  return {lane_group(lane) + 8 * ((i >> 1) & 1), 2 * lane_in_group(lane) + (i & 1) + 8 * (i >> 2)};
}
ATTNLAB_HD constexpr RowCol b_elem(int lane, int i) {
  return {2 * lane_in_group(lane) + (i & 1) + 8 * (i >> 1), lane_group(lane)};
}
ATTNLAB_HD constexpr RowCol c_elem(int lane, int i) {
  return {lane_group(lane) + 8 * (i >> 1), 2 * lane_in_group(lane) + (i & 1)};
}

// Accumulator → A operand: A element i of the k-th 16-column block is element c_of_a(i) of
// C tile 2k + tile_of_a(i), held by the same lane.
ATTNLAB_HD constexpr int tile_of_a(int i) { return i >> 2; }
ATTNLAB_HD constexpr int c_of_a(int i) { return i & 3; }

// ldmatrix.x4: lane l gives the address of row l % 8 of 8×8 matrix l / 8; register j of every lane
// then holds matrix j (without .trans: row g, cols 2q, 2q + 1 of it; with .trans: rows 2q, 2q + 1
// of col g, i.e. the transposed matrix's row g). The three uses, as (row, col) of the 16-bit
// element each lane points at in a row-major shared-memory array (a row is 8 contiguous elements):
// A fragment of a row-major 16 × 16 block at (r0, c0): matrices (rows 0–7 | 8–15) × (cols 0–7 | 8–15)
// in register order a0a1, a2a3, a4a5, a6a7.
ATTNLAB_HD constexpr RowCol ldsm_a(int lane) { return {(lane & 7) + 8 * ((lane >> 3) & 1), 8 * (lane >> 4)}; }
// B fragments (no .trans) from an N × K row-major array (B column-major): two n8 tiles × one k16
// slice, rows n 0–15, cols k 0–15; registers {0, 1} are the B fragment of n-tile 0, {2, 3} of n-tile 1.
ATTNLAB_HD constexpr RowCol ldsm_b(int lane) { return {(lane & 7) + 8 * (lane >> 4), 8 * ((lane >> 3) & 1)}; }
// B fragments (.trans) from a K × N row-major array (B row-major, e.g. V [key][col] for P·V):
// one k16 slice × two n8 tiles, rows k 0–15, cols n 0–15; registers {0, 1} are n-tile 0, {2, 3} n-tile 1.
ATTNLAB_HD constexpr RowCol ldsm_bt(int lane) { return {(lane & 7) + 8 * ((lane >> 3) & 1), 8 * (lane >> 4)}; }

}  // namespace attnlab::mma
