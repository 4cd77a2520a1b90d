// cuBLAS products of the materialized attention. With contiguous GQA groups the G query heads of
// kv group j form one (G·T)×d matrix, so batching over (b, j) with uniform strides makes every
// product one strided-batched GEMM and reduces dK/dV over the group inside the GEMM's k loop.
#include "cuda/attention_internal.cuh"

namespace attnlab::cuda::attn {

void gemm_groups(Ctx& ctx, DType dt, const AttnShape& sh, bool trans_a, bool trans_b, int64_t M,
                 int64_t N, int64_t K, float alpha, const void* A, int64_t lda, int64_t stride_a,
                 const void* B, int64_t ldb, int64_t stride_b, void* C, int64_t ldc, int64_t stride_c) {
  const int64_t batch = sh.B * sh.Hkv;
  if (M == 0 || N == 0 || batch == 0) return;
  CHECK(M < (int64_t(1) << 31) && N < (int64_t(1) << 31) && K < (int64_t(1) << 31) && batch < (int64_t(1) << 31),
        "attention: GEMM dimension beyond cuBLAS's int range (M=", M, " N=", N, " K=", K, ")");
  const cudaDataType_t type = dt == DType::bf16 ? CUDA_R_16BF : CUDA_R_32F;
  // fp32 operands: pedantic fp32 so that a TF32 math mode set on the shared handle by another op
  // cannot change this op's precision (the GPU tests hold fp32 to 1e-5 of the CPU).
  const cublasComputeType_t compute = dt == DType::bf16 ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_32F_PEDANTIC;
  const float beta = 0.f;
  auto handle = static_cast<cublasHandle_t>(ctx.cublas);
  // Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: swap the operands, keep the flags.
  CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      handle, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, int(N), int(M),
      int(K), &alpha, B, type, int(ldb), stride_b, A, type, int(lda), stride_a, &beta, C, type, int(ldc),
      stride_c, int(batch), compute, CUBLAS_GEMM_DEFAULT));
}

void zero_tail_rows(Ctx& ctx, const AttnShape& sh, void* g, int64_t width, DType dt) {
  if (!g || sh.S == sh.S_cap) return;
  const size_t es = dtype_size(dt);
  char* first = static_cast<char*>(g) + size_t(sh.S * width) * es;
  CUDA_CHECK(cudaMemset2DAsync(first, size_t(sh.S_cap * width) * es, 0, size_t((sh.S_cap - sh.S) * width) * es,
                               size_t(sh.B * sh.Hkv), stream_of(ctx)));
}

}  // namespace attnlab::cuda::attn
