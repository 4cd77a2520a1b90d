#pragma once
// Matrix products. Row-major throughout: a matrix X with `ld` is element (i, j) at X[i*ld + j].
//
// matmul:  C[b] = alpha · op(A[b]) · op(B[b]) + beta · C[b]  (+ bias[n] on every row)
//          op(A) is M×K (A stored K×M when trans_a), op(B) is K×N (B stored N×K when trans_b).
//          CUDA: cuBLASLt (bias epilogue fused; fp32 accumulation; bf16 or fp32 operands,
//          C may be fp32 with bf16 operands for fp32 gradient accumulation). CPU: OpenBLAS.
//          beta = 0 never reads C (it may hold anything, NaN included).
//          alpha and beta are doubles: the CPU f64 product uses them as given (a constant such as
//          1 − λ_init keeps its 53 bits); f32 and bf16 products (CPU f32, cuBLASLt) round them to
//          float at the call into the library, and only there.
// linear:  Y = X Wᵀ + b with W stored [out, in] (the PyTorch/HF layout).
//          backward: dX = dY W (overwrite, or += when accumulate_dx), dW += dYᵀ X, db += Σ_rows dY;
//          an undefined dW/db/dX skips that product entirely (frozen parameters cost nothing).
//
// dtypes:  CPU: A, B, C (and bias) all f32 or all f64.
//          CUDA: A and B both f32 or both bf16; C the operands' dtype, or f32 with bf16 operands;
//          bias the dtype of C (cuBLASLt's bias epilogue reads the bias in the output's type).
// Checks:  every tensor must hold the elements the sizes, lds and strides reach; when an ld is
//          left packed (0) and the tensor has >= 2 dims, its last dim must be that packed width
//          (so an A of shape [M, K'] with K' != K is an error, not a silent misread).
#include "core/ctx.h"

namespace attnlab {

struct MatmulArgs {
  Tensor c, a, b;   // C is written; A, B read (M, N, K and the lds rule; see Checks above)
  Tensor bias;      // optional [N], same dtype as C; added to every row of every batch of C
  int64_t M = 0, N = 0, K = 0;
  int64_t batch = 1;
  bool trans_a = false, trans_b = false;
  int64_t lda = 0, ldb = 0, ldc = 0;               // 0: packed (K or M for A, N or K for B, N for C)
  int64_t stride_a = 0, stride_b = 0, stride_c = 0;  // elements between batches; 0: packed
  double alpha = 1.0, beta = 0.0;  // rounded to float only for f32/bf16 products (see above)
  // fp32 operands on CUDA may use TF32 tensor cores (10-bit mantissa inputs, ~1e-3 relative
  // error). Off by default so fp32 stays fp32; ignored for bf16 operands and on the CPU.
  bool allow_tf32 = false;
};
void matmul(Ctx& ctx, const MatmulArgs& a);

// X and Y may carry leading dims ([B, T, in] and [B, T, out]): rows = numel / last dim.
struct LinearArgs {
  Tensor y;     // [rows, out]  written
  Tensor x;     // [rows, in]
  Tensor w;     // [out, in]    same dtype as x and y
  Tensor bias;  // [out] or undefined; same dtype as y
  bool allow_tf32 = false;  // see MatmulArgs::allow_tf32
};
struct LinearBackwardArgs {
  Tensor dy;    // [rows, out]
  Tensor x;     // [rows, in]   (saved input)
  Tensor w;     // [out, in]
  Tensor dx;    // [rows, in]   written (or accumulated); undefined: skipped
  Tensor dw;    // [out, in]    accumulated, acc dtype (f32 for bf16/f32, f64 for f64); undefined: frozen
  Tensor dbias; // [out]        accumulated, acc dtype; undefined: no bias or frozen
  bool accumulate_dx = false;
  bool allow_tf32 = false;  // see MatmulArgs::allow_tf32
};
void linear_forward(Ctx& ctx, const LinearArgs& a);
void linear_backward(Ctx& ctx, const LinearBackwardArgs& a);

namespace cuda {
// Expects validated arguments (the dispatcher checks shapes, dtypes and devices).
void matmul(Ctx& ctx, const MatmulArgs& a);
// dbias[c] += Σ_r dy[r, c] for dy [rows, cols] (f32 or bf16) into f32 dbias [cols].
// Deterministic (fixed summation order, no float atomics). Tall dy is split into row chunks whose
// partial sums go to ctx.workspace (stream-ordered scratch that cuBLASLt uses only inside its own
// calls on the same stream), then a second kernel adds the chunks in order.
void bias_grad(Ctx& ctx, const Tensor& dy, const Tensor& dbias, int64_t rows, int64_t cols);
// cuBLASLt plans (descriptors + heuristic result) built so far in this process; a repeated
// shape reuses its plan, so this stays flat across training steps.
int64_t matmul_plans_built();
}  // namespace cuda

}  // namespace attnlab
