#pragma once
// Pieces of the CUDA materialized attention shared by its files: the GEMM helper
// (attention_gemm.cu), the row kernels' parameter blocks and launchers (attention_rows.cu),
// orchestrated by attention.cu.
#include "core/ops/attention.h"
#include "cuda/common.cuh"

namespace attnlab::cuda::attn {

// C[i] = alpha·op(A[i])·op(B[i]) + beta·C[i] (row-major) for the B·Hkv (batch, kv group) pairs,
// strides in elements; one cublasGemmStridedBatchedEx call, fp32 accumulation.
void gemm_groups(Ctx& ctx, DType dt, const AttnShape& sh, bool trans_a, bool trans_b, int64_t M,
                 int64_t N, int64_t K, float alpha, const void* A, int64_t lda, int64_t stride_a,
                 const void* B, int64_t ldb, int64_t stride_b, void* C, int64_t ldc, int64_t stride_c);

// Zeroes rows [S, S_cap) of a [B, Hkv, S_cap, width] tensor (KV-cache slots no query sees).
void zero_tail_rows(Ctx& ctx, const AttnShape& sh, void* g, int64_t width, DType dt);

// Row-kernel inputs shared by forward and backward. Pointers are null when absent.
struct RowCommon {
  int64_t S = 0, T = 0, Hq = 0, rows = 0, offset = 0;
  int nmaps = 1;        // 2 for differential
  int mode = 0;         // AttnNorm
  float alpha = 0;      // ramp
  bool causal = true;
  int64_t nlambda = 0;  // 0: not differential
  const int32_t* key_lengths = nullptr;
  const float* score_add = nullptr;
  const float* score_mul = nullptr;
  const float* lambda = nullptr;
};

template <class T>
struct FwdRowParams {
  RowCommon c;
  T* maps[2] = {nullptr, nullptr};  // in: scores, out: P (A1, A2), in place
  T* pcomb = nullptr;               // out: A1 − λA2 (differential)
  float* lse[2] = {nullptr, nullptr};
  int32_t* row_min[2] = {nullptr, nullptr};
  float* row_sum[2] = {nullptr, nullptr};
  const int32_t* cap_rows = nullptr;
  int64_t nrows = 0;
  float* cap_scores[2] = {nullptr, nullptr};
  float* cap_probs = nullptr;
  float* entropy = nullptr;
  float* kl = nullptr;
  float* variance = nullptr;
  const int32_t* spans = nullptr;
  int64_t nspans = 0;
  float* span_mass = nullptr;
};

template <class T>
struct BwdRowParams {
  RowCommon c;
  const T* probs[2] = {nullptr, nullptr};  // saved A1 (P), A2
  T* dp = nullptr;                         // in: dP; out: dSc of map 1 (in place)
  T* scores[2] = {nullptr, nullptr};       // in: recomputed raw scores (ramp, τ) or null
  T* dsc2 = nullptr;                       // out: dSc of map 2 (in place over scores[1])
  T* pcomb = nullptr;                      // out: A1 − λA2 for the dV GEMM (over scores[0])
  const float* lse[2] = {nullptr, nullptr};
  const int32_t* row_min[2] = {nullptr, nullptr};
  const float* row_sum[2] = {nullptr, nullptr};
  float* dscore_add = nullptr;
  float* dscore_mul = nullptr;
  float* dlambda_partials = nullptr;       // [rows] −Σ dP ⊙ A2 per row
};

template <class T> void launch_forward_rows(Ctx& ctx, const FwdRowParams<T>& p);
template <class T> void launch_backward_rows(Ctx& ctx, const BwdRowParams<T>& p);
// dlambda[i] = Σ of the partials of the rows of head i (nlambda = Hq) or of every row (1).
void launch_dlambda_reduce(Ctx& ctx, const float* partials, float* dlambda, int64_t nlambda,
                           int64_t B, int64_t Hq, int64_t T);

}  // namespace attnlab::cuda::attn
