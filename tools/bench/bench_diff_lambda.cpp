#include "core/memory.h"
#include "core/ops/diff_lambda.h"
#include "tools/bench/bench.h"
#include "tools/bench/bench_util.h"

namespace attnlab::bench {
namespace {

// The λ parameters, λ, dλ and the gradients of one preset on one context.
struct Tensors {
  DiffLambdaPreset preset;
  Buffer v[4], raw, lambda, dlambda, grad[4], draw;
  DiffLambdaArgs fwd() const {
    return {.lambda = lambda.t(), .preset = preset, .q1 = v[0].t(), .k1 = v[1].t(), .q2 = v[2].t(), .k2 = v[3].t(),
            .raw = raw.t(), .lambda_init = 0.5};
  }
  DiffLambdaBackwardArgs bwd() const {
    return {.dq1 = grad[0].t(), .dk1 = grad[1].t(), .dq2 = grad[2].t(), .dk2 = grad[3].t(), .draw = draw.t(),
            .dlambda = dlambda.t(), .preset = preset, .q1 = v[0].t(), .k1 = v[1].t(), .q2 = v[2].t(),
            .k2 = v[3].t(), .raw = raw.t()};
  }
  std::vector<double> grads(Ctx& c) const {
    if (preset == DiffLambdaPreset::seed) return to_host_f64(c, draw.t());
    std::vector<double> out;
    for (const Buffer& g : grad) {
      auto h = to_host_f64(c, g.t());
      out.insert(out.end(), h.begin(), h.end());
    }
    return out;
  }
};

// params: paper λq1, λk1, λq2, λk2 back to back ([n] each); seed λ' [n]. Gradients start at 0.
Tensors make(Ctx& c, DType dt, DiffLambdaPreset preset, int64_t n, const std::vector<double>& params,
             const std::vector<double>& dlambda) {
  Tensors t;
  t.preset = preset;
  const DType acc = acc_dtype(dt);
  const std::vector<double> zeros(size_t(n), 0.0);
  if (preset == DiffLambdaPreset::paper) {
    for (int i = 0; i < 4; ++i) {
      t.v[i] = upload(c, dt, {n}, std::vector<double>(params.begin() + i * n, params.begin() + (i + 1) * n));
      t.grad[i] = upload(c, acc, {n}, zeros);
    }
  } else {
    t.raw = upload(c, dt, {n}, params);
    t.draw = upload(c, acc, {n}, zeros);
  }
  const int64_t nl = preset == DiffLambdaPreset::paper ? 1 : n;
  t.lambda = Buffer(c.device, acc, {nl});
  t.dlambda = upload(c, acc, {nl}, dlambda);
  return t;
}

void run(Runner& r, const std::vector<int64_t>& s) {
  CHECK(s.size() == 2, "diff_lambda sizes: d H");
  Ctx cpu = Ctx::make_cpu();
  for (DiffLambdaPreset preset : {DiffLambdaPreset::paper, DiffLambdaPreset::seed}) {
    const bool paper = preset == DiffLambdaPreset::paper;
    const int64_t n = paper ? s[0] : s[1];
    const auto params = random_values(size_t(paper ? 4 * n : n), 5, -0.3, 0.3);
    const auto dl = random_values(size_t(paper ? 1 : n), 6);
    for (DType dt : bench_dtypes(r.ctx())) {
      const std::string label = dtype_label(dt) + (paper ? " paper d=" : " seed H=") + std::to_string(n);
      Tensors ref = make(cpu, DType::f64, preset, n, round_values(dt, params), dl);
      diff_lambda_forward(cpu, ref.fwd());
      diff_lambda_backward(cpu, ref.bwd());
      Tensors t = make(r.ctx(), dt, preset, n, params, dl);

      diff_lambda_forward(r.ctx(), t.fwd());
      Row row{"diff_lambda_forward", label};
      row.rel_err = rel_error(to_host_f64(r.ctx(), t.lambda.t()), to_host_f64(cpu, ref.lambda.t()));
      verify(r, row, dt, 1e-5, 1e-5);  // f32 accumulation for bf16 parameters too
      row.us = r.time_us([&] { diff_lambda_forward(r.ctx(), t.fwd()); });
      row.bytes = double((paper ? 4 * n : n) * int64_t(dtype_size(dt)));
      r.add(row);

      diff_lambda_backward(r.ctx(), t.bwd());  // gradients start at zero: one call = the gradient
      Row brow{"diff_lambda_backward", label};
      brow.rel_err = rel_error(t.grads(r.ctx()), ref.grads(cpu));
      verify(r, brow, dt, 1e-5, 1e-5);
      brow.us = r.time_us([&] { diff_lambda_backward(r.ctx(), t.bwd()); });
      brow.bytes = double((paper ? 4 * n : n) * int64_t(dtype_size(dt) + 2 * dtype_size(acc_dtype(dt))));
      r.add(brow);
    }
  }
}

// METHODS §3.2 paper preset with D = 768, 12 baseline heads (h = 6, d = 64); §3.3 seed H = 8.
ATTNLAB_BENCH("diff_lambda", "d H", {{64, 8}}, run);

}  // namespace
}  // namespace attnlab::bench
