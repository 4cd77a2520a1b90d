#pragma once
// Row kernels of the backward head (core/ops/backward_head.h), one function per step of the tile
// walk. Each runs on ctx.device: CPU loops (backward_head_rows.cpp) or CUDA kernels
// (cuda/backward_head.cu), both on backward_head_math.h. Arguments are validated by the op; these
// are internal. T = compute dtype, A = acc dtype (see backward_head.h).
//
// Tile buffers: z and w are [N, ld] with columns [0, cols) valid (vocabulary rows col0 + j);
// u (raw products Q^h K^hᵀ; s = β_h·u/sqrt(dk/H)) and du = dL/du are [H, N, ld]. Per-row head statistics are
// [N, H].
#include "core/ctx.h"

namespace attnlab {

struct BhTile {
  int64_t N = 0, H = 1, ld = 0, cols = 0, col0 = 0;
  double score_scale = 1.0;  // 1/sqrt(dk/H): s = β_h·score_scale·u (kept out of the GEMM's float alpha)
};

#include "core/ops/backward_head_rows.inc"  // every step (dispatchers)

// out[c] += Σ_r terms[r, c] (A), rows summed in order.
void bh_rows_column_sum(Ctx& ctx, const Tensor& terms, int64_t rows, int64_t cols, const Tensor& out);

namespace cuda {
#include "core/ops/backward_head_rows.inc"  // the same steps (CUDA launchers)
}  // namespace cuda

}  // namespace attnlab
