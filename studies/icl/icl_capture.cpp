// Batch-1 feature capture through probes (METHODS §2.8-2.10; icl_run.h).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "core/memory.h"
#include "core/models/cached_forward.h"
#include "core/probes.h"
#include "studies/icl/icl_run.h"

namespace attnlab::icl {

namespace {

const Param& param_named(const Model& m, const std::string& name) {
  for (const Param& p : m.params())
    if (p.name == name) return p;
  FAIL_WITH("icl: the model has no parameter '", name, "'; the study needs a Qwen3-shaped model (attnlab init --arch qwen3)");
}

std::vector<float> to_float(const double* v, int64_t n) {
  std::vector<float> f(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) f[size_t(i)] = float(v[i]);
  return f;
}

}  // namespace

Capturer::Capturer(Model& m, Ctx& ctx, int64_t max_prompt) : m_(m), ctx_(ctx), max_prompt_(max_prompt) {
  final_norm_ = to_host_f64(ctx, param_named(m, "model.norm.weight").value);
}

PromptCapture Capturer::run(const std::vector<int32_t>& ids, const CaptureRequest& r) {
  const ModelConfig& mc = m_.config();
  const int64_t L = mc.num_layers, D = mc.hidden_size, H = mc.num_heads, T = int64_t(ids.size());
  CHECK(T >= 1 && T <= max_prompt_, "icl capture: prompt of ", T, " tokens, capturer made for ", max_prompt_);
  // One request: the probes copy every activation at the union of the positions, in ascending
  // order, so the last row is position T-1 and the first q_prefix rows are positions 0..n-1.
  const int64_t n_pre = std::min(r.q_prefix, T);
  ProbeSink sink;
  ProbeRequest req;
  req.positions.resize(size_t(n_pre));
  std::iota(req.positions.begin(), req.positions.end(), 0);
  if (n_pre < T) req.positions.push_back(int32_t(T - 1));
  req.hidden = req.attn_out = req.q_proj = true;
  req.rows = {int32_t(T - 1)};
  req.scores = r.scores;
  req.probs = r.prefix_probs > 0;
  sink.add(req);
  CachedForward fwd(m_, ctx_, 1, max_prompt_, max_prompt_ + 1);
  {
    ProbeScope scope(ctx_, &sink);
    fwd.prefill(ctx_, {ids});
  }

  PromptCapture c;
  c.T = T;
  c.hidden.resize(size_t(L + 1));
  c.attn_out.resize(size_t(L));
  c.scores.resize(size_t(L));
  c.q_last.resize(size_t(L));
  if (r.prefix_probs > 0) c.prefix_probs.resize(size_t(L));
  if (r.q_prefix > 0) c.q_prefix.resize(size_t(L));
  // hidden_states[0]: the token embedding of the last token (Qwen3 scales nothing).
  {
    const Param& wte = param_named(m_, "model.embed_tokens.weight");
    const std::vector<double> row = to_host_f64(ctx_, wte.value.slice0(ids.back(), ids.back() + 1));
    c.hidden[0] = to_float(row.data(), D);
  }
  // The last captured row of an activation [1, npos, W].
  auto last_row = [](const Capture* cap) {
    const int64_t npos = cap->shape.at(1), W = cap->shape.at(2);
    return cap->values.data() + (npos - 1) * W;
  };
  for (const Capture* cap : sink.find("hidden")) {
    const size_t l = size_t(cap->layer);
    CHECK(cap->shape.at(2) == D, "icl capture: hidden of layer ", l, " is ", cap->shape.at(2), " wide, not ", D);
    const double* x = last_row(cap);
    if (cap->layer + 1 < L) {
      c.hidden[l + 1] = to_float(x, D);
    } else {
      // HF's last hidden state is after the final RMSNorm: x * rsqrt(mean(x^2) + eps) * w.
      double ss = 0;
      for (int64_t i = 0; i < D; ++i) ss += x[i] * x[i];
      const double inv = 1.0 / std::sqrt(ss / double(D) + mc.norm_eps);
      std::vector<float> h(static_cast<size_t>(D));
      for (int64_t i = 0; i < D; ++i) h[size_t(i)] = float(float(x[i] * inv) * final_norm_[size_t(i)]);
      c.hidden[l + 1] = std::move(h);
    }
  }
  for (const Capture* cap : sink.find("attn_out")) c.attn_out[size_t(cap->layer)] = to_float(last_row(cap), D);
  for (const Capture* cap : sink.find("q_proj")) {
    const int64_t W = cap->shape.at(2);
    c.q_last[size_t(cap->layer)] = to_float(last_row(cap), W);
    if (n_pre > 0) c.q_prefix[size_t(cap->layer)] = to_float(cap->values.data(), n_pre * W);
  }
  for (const Capture* cap : sink.find("scores")) {
    const int64_t S = cap->shape.at(3);
    CHECK(S >= T, "icl capture: score rows of ", S, " keys for ", T, " tokens");
    std::vector<float> s(static_cast<size_t>(H * T));
    for (int64_t h = 0; h < H; ++h)
      for (int64_t j = 0; j < T; ++j) s[size_t(h * T + j)] = float(cap->values[size_t(h * S + j)]);
    c.scores[size_t(cap->layer)] = std::move(s);
  }
  for (const Capture* cap : sink.find("probs")) {
    const int64_t S = cap->shape.at(3);
    const int64_t Ld = std::min(r.prefix_probs, T);
    std::vector<float> a(size_t(Ld), 0.0f);
    for (int64_t j = 0; j < Ld; ++j) {
      double sum = 0;
      for (int64_t h = 0; h < H; ++h) sum += cap->values[size_t(h * S + j)];
      a[size_t(j)] = float(sum);
    }
    c.prefix_probs[size_t(cap->layer)] = std::move(a);
  }
  return c;
}

}  // namespace attnlab::icl
