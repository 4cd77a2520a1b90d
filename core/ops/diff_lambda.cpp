#include "core/ops/diff_lambda.h"

#include <vector>

#include "core/dispatch.h"
#include "core/nvtx.h"
#include "core/ops/diff_lambda_math.h"

namespace attnlab {

namespace {

// The parameters of `preset`: the four [d] vectors (paper) or λ' [H] (seed), one dtype, and
// nothing of the other preset. Returns the length of λ (1 or H).
int64_t check_params(const char* op, DiffLambdaPreset preset, const Tensor* const (&vecs)[4], const Tensor& raw) {
  if (preset == DiffLambdaPreset::paper) {
    CHECK(!raw.defined(), op, ": the paper preset takes λq1, λk1, λq2, λk2 (leave raw undefined)");
    const Tensor& q1 = *vecs[0];
    CHECK(q1.defined() && q1.ndim == 1 && q1.numel() > 0, op, ": the paper preset needs λq1 as a [d] vector, got ",
          q1.shape_str());
    for (const Tensor* t : vecs) {
      CHECK(t->defined(), op, ": the paper preset needs all four of λq1, λk1, λq2, λk2");
      check_shape(*t, {q1.dim(0)});
      CHECK(t->dtype == q1.dtype, op, ": '", t->name, "' is ", dtype_name(t->dtype), ", '", q1.name, "' is ",
            dtype_name(q1.dtype), " (the λ vectors share one dtype)");
    }
    return 1;
  }
  for (const Tensor* t : vecs)
    CHECK(!t->defined(), op, ": the seed preset takes λ' [H] as raw (leave λq1, λk1, λq2, λk2 undefined)");
  CHECK(raw.defined() && raw.ndim == 1 && raw.numel() > 0, op, ": the seed preset needs λ' as an [H] vector, got ",
        raw.shape_str());
  return raw.dim(0);
}

DType param_dtype(DiffLambdaPreset preset, const Tensor& q1, const Tensor& raw) {
  return preset == DiffLambdaPreset::paper ? q1.dtype : raw.dtype;
}

// An accumulation-dtype tensor of n elements (λ, dλ or a gradient).
void check_acc(const char* op, const Tensor& t, int64_t n, DType param) {
  check_shape(t, {n});
  CHECK(t.dtype == acc_dtype(param), op, ": '", t.name, "' must be ", dtype_name(acc_dtype(param)),
        " (the accumulation dtype of ", dtype_name(param), " parameters), got ", dtype_name(t.dtype));
}

template <class T>
double dot(const Tensor& a, const Tensor& b) {
  const T *x = a.ptr<T>(), *y = b.ptr<T>();
  double s = 0;
  for (int64_t i = 0; i < a.numel(); ++i) s += double(x[i]) * double(y[i]);
  return s;
}

}  // namespace

void diff_lambda_forward(Ctx& ctx, const DiffLambdaArgs& a) {
  NVTX_RANGE(ctx, "diff_lambda_forward");
  const char* op = "diff_lambda_forward";
  const Tensor* const vecs[4] = {&a.q1, &a.k1, &a.q2, &a.k2};
  const int64_t n = check_params(op, a.preset, vecs, a.raw);
  const DType pt = param_dtype(a.preset, a.q1, a.raw);
  CHECK(a.lambda.defined(), op, ": lambda (the output) is undefined");
  check_acc(op, a.lambda, n, pt);
  check_device(ctx.device, {&a.lambda, &a.q1, &a.k1, &a.q2, &a.k2, &a.raw});
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::diff_lambda_forward(ctx, a));
  dispatch_cpu_float(pt, op, [&](auto tag) {
    using T = decltype(tag);
    using Acc = acc_t<T>;
    Acc* out = a.lambda.ptr<Acc>();
    if (a.preset == DiffLambdaPreset::paper) {
      out[0] = Acc(diff_lambda_paper<double>(dot<T>(a.q1, a.k1), dot<T>(a.q2, a.k2), a.lambda_init));
    } else {
      const T* raw = a.raw.ptr<T>();
      for (int64_t h = 0; h < n; ++h) out[h] = Acc(diff_lambda_seed<double>(double(raw[h])));
    }
  });
}

void diff_lambda_backward(Ctx& ctx, const DiffLambdaBackwardArgs& a) {
  NVTX_RANGE(ctx, "diff_lambda_backward");
  const char* op = "diff_lambda_backward";
  const Tensor* const vecs[4] = {&a.q1, &a.k1, &a.q2, &a.k2};
  const int64_t n = check_params(op, a.preset, vecs, a.raw);
  const DType pt = param_dtype(a.preset, a.q1, a.raw);
  CHECK(a.dlambda.defined(), op, ": dlambda is undefined");
  check_acc(op, a.dlambda, n, pt);
  const Tensor* const grads[4] = {&a.dq1, &a.dk1, &a.dq2, &a.dk2};
  if (a.preset == DiffLambdaPreset::paper) {
    CHECK(!a.draw.defined(), op, ": the paper preset has no draw (λ' belongs to the seed preset)");
    for (const Tensor* g : grads)
      if (g->defined()) check_acc(op, *g, a.q1.dim(0), pt);
  } else {
    for (const Tensor* g : grads)
      CHECK(!g->defined(), op, ": the seed preset has only draw (dλq1, dλk1, dλq2, dλk2 belong to the paper preset)");
    if (a.draw.defined()) check_acc(op, a.draw, n, pt);
  }
  check_device(ctx.device, {&a.dq1, &a.dk1, &a.dq2, &a.dk2, &a.draw, &a.dlambda, &a.q1, &a.k1, &a.q2, &a.k2, &a.raw});
  if (ctx.is_cuda()) return ATTNLAB_CUDA_DISPATCH(cuda::diff_lambda_backward(ctx, a));
  dispatch_cpu_float(pt, op, [&](auto tag) {
    using T = decltype(tag);
    using Acc = acc_t<T>;
    const Acc* dl = a.dlambda.ptr<Acc>();
    if (a.preset == DiffLambdaPreset::paper) {
      const double e1 = hd_exp(dot<T>(a.q1, a.k1)), e2 = hd_exp(dot<T>(a.q2, a.k2));
      constexpr int partner[4] = {1, 0, 3, 2};
      for (int i = 0; i < 4; ++i) {
        if (!grads[i]->defined()) continue;
        const double coef = diff_lambda_paper_coef<double>(i, double(dl[0]), e1, e2);
        const T* other = vecs[partner[i]]->ptr<T>();
        Acc* g = grads[i]->ptr<Acc>();
        for (int64_t j = 0; j < a.q1.numel(); ++j) g[j] = Acc(double(g[j]) + coef * double(other[j]));
      }
    } else if (a.draw.defined()) {
      const T* raw = a.raw.ptr<T>();
      Acc* g = a.draw.ptr<Acc>();
      for (int64_t h = 0; h < n; ++h) g[h] = Acc(double(g[h]) + diff_lambda_seed_grad<double>(double(dl[h]), double(raw[h])));
    }
  });
}

}  // namespace attnlab
