#include "cuda/matmul_plan.cuh"

#include <climits>
#include <map>
#include <memory>

#include "cuda/common.cuh"

namespace attnlab::cuda {

namespace {

// Past this many distinct plans the map is cleared and rebuilt on demand: a workload that
// keeps inventing shapes (generation with a growing sequence length) must not grow it forever.
constexpr size_t kMaxPlans = 4096;

struct PlanCache {
  std::mutex mu;
  std::map<MatmulPlanKey, std::unique_ptr<MatmulPlan>> plans;
  int64_t built = 0;
};
// Never destroyed: plans outlive every Ctx and must not be torn down after the CUDA runtime.
PlanCache& cache() {
  static PlanCache* c = new PlanCache;
  return *c;
}

// Largest power of two (<= 256, cuBLASLt's default assumption) dividing the address of every
// batch: the base pointer and, when batched, the batch stride in bytes.
int64_t alignment(const void* p, int64_t batch, int64_t stride_elems, DType t) {
  uint64_t bits = reinterpret_cast<uintptr_t>(p);
  if (batch > 1) bits |= uint64_t(stride_elems) * dtype_size(t);
  if (bits == 0) return 256;
  return std::min<int64_t>(256, int64_t(bits & (~bits + 1)));
}

cudaDataType_t lt_type(DType t) { return t == DType::bf16 ? CUDA_R_16BF : CUDA_R_32F; }

bool uses_tf32(const MatmulArgs& a) { return a.allow_tf32 && a.a.dtype == DType::f32; }

template <class V>
void set_layout(cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t attr, V value) {
  CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, attr, &value, sizeof(value)));
}
template <class V>
void set_desc(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr, V value) {
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d, attr, &value, sizeof(value)));
}
template <class V>
void set_pref(cublasLtMatmulPreference_t p, cublasLtMatmulPreferenceAttributes_t attr, V value) {
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(p, attr, &value, sizeof(value)));
}

// A column-major rows×cols layout with `ld`, batched with `stride` when batch > 1.
cublasLtMatrixLayout_t make_layout(DType t, int64_t rows, int64_t cols, int64_t ld, int64_t batch,
                                   int64_t stride) {
  cublasLtMatrixLayout_t l = nullptr;
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, lt_type(t), uint64_t(rows), uint64_t(cols), ld));
  if (batch > 1) {
    set_layout(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, int32_t(batch));
    set_layout(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, int64_t(stride));
  }
  return l;
}

std::string describe(const MatmulArgs& a) {
  return detail::cat("M=", a.M, " N=", a.N, " K=", a.K, " batch=", a.batch, " trans_a=", a.trans_a,
                     " trans_b=", a.trans_b, " lda=", a.lda, " ldb=", a.ldb, " ldc=", a.ldc,
                     " A/B ", dtype_name(a.a.dtype), " C ", dtype_name(a.c.dtype),
                     a.bias.defined() ? " +bias" : "", uses_tf32(a) ? " tf32" : "");
}

// Builds the descriptors for the row-major product as the column-major one cuBLASLt computes:
// row-major C (M×N, ldc) is column-major Cᵀ (N×M, ldc), and Cᵀ = op(B)ᵀ · op(A)ᵀ, so B's memory
// is cuBLASLt's first operand and A's its second, each with its own transpose flag unchanged.
std::unique_ptr<MatmulPlan> build_plan(const Ctx& ctx, const MatmulArgs& a) {
  auto plan = std::make_unique<MatmulPlan>();
  const cublasComputeType_t compute = uses_tf32(a) ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan->op, compute, CUDA_R_32F));
  set_desc(plan->op, CUBLASLT_MATMUL_DESC_TRANSA, int32_t(a.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N));
  set_desc(plan->op, CUBLASLT_MATMUL_DESC_TRANSB, int32_t(a.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N));
  if (a.bias.defined()) {
    plan->has_bias = true;
    // Bias length = rows of the column-major D = N: one value per row-major column, every row.
    set_desc(plan->op, CUBLASLT_MATMUL_DESC_EPILOGUE, uint32_t(CUBLASLT_EPILOGUE_BIAS));
    set_desc(plan->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, int32_t(lt_type(a.c.dtype)));
    set_desc(plan->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, a.bias.data);  // heuristic reads its alignment
    set_desc(plan->op, CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE, int64_t(0));
  }
  plan->first = a.trans_b ? make_layout(a.b.dtype, a.K, a.N, a.ldb, a.batch, a.stride_b)
                          : make_layout(a.b.dtype, a.N, a.K, a.ldb, a.batch, a.stride_b);
  plan->second = a.trans_a ? make_layout(a.a.dtype, a.M, a.K, a.lda, a.batch, a.stride_a)
                           : make_layout(a.a.dtype, a.K, a.M, a.lda, a.batch, a.stride_a);
  plan->out = make_layout(a.c.dtype, a.N, a.M, a.ldc, a.batch, a.stride_c);

  cublasLtMatmulPreference_t pref = nullptr;
  CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  cublasLtMatmulHeuristicResult_t result{};
  int returned = 0;
  cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
  try {
    set_pref(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, uint64_t(ctx.workspace_bytes));
    // cuBLASLt assumes 256-byte alignment unless told otherwise; sliced views (one head of a
    // fused QKV buffer) are less aligned, and a kernel chosen for 256 would fault on them.
    set_pref(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
             uint32_t(alignment(a.b.data, a.batch, a.stride_b, a.b.dtype)));
    set_pref(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
             uint32_t(alignment(a.a.data, a.batch, a.stride_a, a.a.dtype)));
    const uint32_t align_c = uint32_t(alignment(a.c.data, a.batch, a.stride_c, a.c.dtype));
    set_pref(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, align_c);
    set_pref(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, align_c);
    st = cublasLtMatmulAlgoGetHeuristic(static_cast<cublasLtHandle_t>(ctx.cublaslt), plan->op,
                                        plan->first, plan->second, plan->out, plan->out, pref, 1,
                                        &result, &returned);
  } catch (...) {
    cublasLtMatmulPreferenceDestroy(pref);
    throw;
  }
  cublasLtMatmulPreferenceDestroy(pref);
  if (st != CUBLAS_STATUS_SUCCESS || returned == 0)
    FAIL_WITH("matmul (cuBLASLt): no algorithm for ", describe(a), " (heuristic: ",
              detail::cublas_status_name(st), ", ", returned,
              " results); check the dtype combination and pointer alignment");
  plan->algo = result.algo;
  plan->workspace_bytes = result.workspaceSize;
  CHECK(plan->workspace_bytes <= ctx.workspace_bytes, "matmul (cuBLASLt): algorithm for ",
        describe(a), " wants ", plan->workspace_bytes, " workspace bytes, the ctx has ",
        ctx.workspace_bytes);
  return plan;
}

}  // namespace

MatmulPlan::~MatmulPlan() {
  // Host-side objects only; failures at teardown are ignored.
  if (out) cublasLtMatrixLayoutDestroy(out);
  if (second) cublasLtMatrixLayoutDestroy(second);
  if (first) cublasLtMatrixLayoutDestroy(first);
  if (op) cublasLtMatmulDescDestroy(op);
}

MatmulPlanKey matmul_plan_key(const Ctx& ctx, const MatmulArgs& a) {
  CHECK(a.batch <= INT_MAX, "matmul (cuBLASLt): batch ", a.batch, " exceeds int32");
  MatmulPlanKey k;
  const bool bias = a.bias.defined();
  k.v = {int64_t(reinterpret_cast<uintptr_t>(ctx.cublaslt)),
         int64_t(ctx.workspace_bytes),
         a.M, a.N, a.K, a.batch,
         a.lda, a.ldb, a.ldc,
         a.batch > 1 ? a.stride_a : 0, a.batch > 1 ? a.stride_b : 0, a.batch > 1 ? a.stride_c : 0,
         int64_t(a.trans_a), int64_t(a.trans_b),
         int64_t(a.a.dtype), int64_t(a.c.dtype),
         int64_t(uses_tf32(a)), int64_t(bias),
         alignment(a.a.data, a.batch, a.stride_a, a.a.dtype),
         alignment(a.b.data, a.batch, a.stride_b, a.b.dtype),
         alignment(a.c.data, a.batch, a.stride_c, a.c.dtype),
         bias ? alignment(a.bias.data, 1, 0, a.bias.dtype) : 0};
  return k;
}

std::mutex& matmul_plan_mutex() { return cache().mu; }

MatmulPlan& matmul_plan_locked(const Ctx& ctx, const MatmulArgs& a, const MatmulPlanKey& key) {
  PlanCache& c = cache();
  auto it = c.plans.find(key);
  if (it != c.plans.end()) return *it->second;
  if (c.plans.size() >= kMaxPlans) c.plans.clear();
  auto plan = build_plan(ctx, a);
  ++c.built;
  return *c.plans.emplace(key, std::move(plan)).first->second;
}

int64_t matmul_plans_built() {
  std::lock_guard<std::mutex> lock(cache().mu);
  return cache().built;
}

}  // namespace attnlab::cuda
