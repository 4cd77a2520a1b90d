#pragma once
// Shared by the backward-head CPU and GPU tests: a random case, a run of the op on any device and
// dtype (host doubles in, host doubles out), and a plain-loop reference of METHODS §5.3 written
// independently of the op (no tiles, no online log-sum-exp, no GEMMs).
#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/memory.h"
#include "core/ops/backward_head.h"
#include "core/ops/cross_entropy_math.h"
#include "support/testing.h"

namespace attnlab::test {

struct HeadCase {
  BackwardHeadSpec spec;
  int64_t N = 0, V = 0, Vp = 0;
  std::vector<double> hidden, embed;  // [N, D], [Vp, D]
  std::vector<int32_t> targets;       // [N]
  // Parameters in the order of BackwardHeadParams (latent_proj empty without latent).
  std::vector<double> embed_norm, latent_proj, k_proj, v_proj, q_norm, q_proj, beta;

  std::vector<std::vector<double>*> params() {
    return {&embed_norm, &latent_proj, &k_proj, &v_proj, &q_norm, &q_proj, &beta};
  }
  std::string label() const {
    return "H" + std::to_string(spec.heads) + (spec.latent ? "_latent" : "") +
           (spec.top_k ? "_top" + std::to_string(spec.top_k) : "");
  }
};

inline const char* kHeadParamNames[] = {"embed_norm", "latent_proj", "k_proj", "v_proj",
                                        "q_norm",     "q_proj",      "beta"};

// Random inputs; parameters near the identity init (scaled noise) so the head is far from any
// degenerate point but the scores stay in a sensible range.
inline HeadCase make_head_case(BackwardHeadSpec spec, int64_t N, int64_t V, int64_t Vp, uint64_t seed,
                               double noise = 0.3) {
  HeadCase c;
  c.spec = spec;
  c.N = N, c.V = V, c.Vp = Vp;
  const int64_t D = spec.D, r = spec.r(), dk = spec.key_dim(), dv = spec.value_dim(), H = spec.heads;
  c.hidden = rand_uniform(size_t(N * D), -1.5, 1.5, seed);
  c.embed = rand_uniform(size_t(Vp * D), -1, 1, seed + 1);
  c.targets = rand_ints(size_t(N), 0, int32_t(V), seed + 2);
  if (N > 2) c.targets[1] = kIgnoreIndex;
  auto near_eye = [&](int64_t rows, int64_t cols, uint64_t s, int64_t period) {
    auto v = rand_uniform(size_t(rows * cols), -noise, noise, s);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) v[size_t(i * cols + j)] += (i % period) == j ? 1.0 : 0.0;
    return v;
  };
  c.embed_norm = rand_uniform(size_t(D), 0.6, 1.4, seed + 3);
  if (spec.latent) c.latent_proj = near_eye(r, D, seed + 4, r);
  c.k_proj = near_eye(dk, r, seed + 5, dk);
  c.v_proj = near_eye(dv, r, seed + 6, dv);
  c.q_norm = rand_uniform(size_t(dv), 0.6, 1.4, seed + 7);
  c.q_proj = near_eye(dk, dv / H, seed + 8, dk / H);
  c.beta = rand_uniform(size_t(H), 0.6, 1.6, seed + 9);
  return c;
}

inline int64_t count_valid_targets_host(const std::vector<int32_t>& t) {
  return std::count_if(t.begin(), t.end(), [](int32_t y) { return y != kIgnoreIndex; });
}

struct HeadResult {
  std::vector<double> loss, logprobs;
  std::vector<std::vector<double>> grads;  // order of kHeadParamNames; empty when not asked
};

// Runs the forward (loss and log-probs) and, when `backward`, the backward (gradients of
// dloss·Σ loss / valid_count). `frozen[i]` leaves gradient i undefined. Gradient buffers start at
// `grad_init` (they accumulate).
// `reuse_vocab`: a first forward on other hidden states computes the vocabulary side, the real
// forward then runs with vocab_ready (what later micro-batches and decoding steps do).
inline HeadResult run_head(Device dev, DType dt, const HeadCase& c, bool backward, double dloss = 1.0,
                           std::vector<bool> frozen = {}, double grad_init = 0.0, bool logprobs = true,
                           bool reuse_vocab = false) {
  Ctx& ctx = dev == Device::cuda ? gpu_ctx() : cpu_ctx();
  const DType A = acc_dtype(dt);
  const BackwardHeadSpec& s = c.spec;
  const int64_t D = s.D, r = s.r(), dk = s.key_dim(), dv = s.value_dim(), H = s.heads, N = c.N, V = c.V;
  std::vector<std::unique_ptr<Buffer>> keep;
  auto up = [&](DType t, std::initializer_list<int64_t> dims, const std::vector<double>& v) {
    keep.push_back(std::make_unique<Buffer>(make_tensor(dev, t, dims, v)));
    return keep.back()->t();
  };
  auto poisoned = [&](DType t, std::initializer_list<int64_t> dims) {
    keep.push_back(std::make_unique<Buffer>(make_poisoned(dev, t, dims)));
    return keep.back()->t();
  };
  BackwardHeadArgs f;
  f.spec = s;
  f.hidden = up(dt, {N, D}, c.hidden);
  f.embed = up(dt, {c.Vp, D}, c.embed);
  f.vocab = V;
  // No targets (generation): no loss either.
  if (!c.targets.empty()) {
    keep.push_back(std::make_unique<Buffer>(make_ids(dev, {N}, c.targets)));
    f.targets = keep.back()->t();
  }
  BackwardHeadParams& p = f.params;
  p.embed_norm = up(dt, {D}, c.embed_norm);
  if (s.latent) p.latent_proj = up(dt, {r, D}, c.latent_proj);
  p.k_proj = up(dt, {dk, r}, c.k_proj);
  p.v_proj = up(dt, {dv, r}, c.v_proj);
  p.q_norm = up(dt, {dv}, c.q_norm);
  p.q_proj = up(dt, {dk, dv / H}, c.q_proj);
  p.beta = up(A, {H}, c.beta);
  const size_t saved_bytes = backward_head_saved_bytes(s, N, V, dt);
  keep.push_back(std::make_unique<Buffer>(make_poisoned(dev, DType::f32, {int64_t(saved_bytes / 4 + 1)})));
  f.saved = backward_head_carve_saved(s, N, V, dt, dev, keep.back()->t().data);
  if (f.targets.defined()) f.loss = poisoned(A, {N});
  if (logprobs) f.logprobs = poisoned(A, {N, V});
  const size_t fb = backward_head_workspace_bytes(ctx, s, N, V, dt, false);
  const size_t bb = backward_head_workspace_bytes(ctx, s, N, V, dt, true);
  f.workspace = poisoned(DType::f32, {int64_t(std::max(fb, bb) / 4 + 1)});
  if (reuse_vocab) {
    const Tensor real = f.hidden;
    std::vector<double> other(c.hidden.rbegin(), c.hidden.rend());
    f.hidden = up(dt, {N, D}, other);
    backward_head_forward(ctx, f);
    f.hidden = real;
    f.vocab_ready = true;
    if (f.loss.defined()) poison_tensor(ctx, f.loss);
  }
  backward_head_forward(ctx, f);
  HeadResult res;
  if (f.loss.defined()) res.loss = to_host_f64(ctx, f.loss);
  if (logprobs) res.logprobs = to_host_f64(ctx, f.logprobs);
  if (!backward) return res;

  BackwardHeadBackwardArgs b;
  b.spec = s, b.hidden = f.hidden, b.embed = f.embed, b.vocab = V, b.targets = f.targets;
  b.params = p, b.saved = f.saved, b.loss = f.loss, b.workspace = f.workspace;
  b.dloss = dloss;
  b.valid_count = double(count_valid_targets_host(c.targets));
  const std::vector<std::vector<int64_t>> shapes = {{D}, {r, D}, {dk, r}, {dv, r}, {dv}, {dk, dv / H}, {H}};
  Tensor* slots[] = {&b.grads.embed_norm, &b.grads.latent_proj, &b.grads.k_proj, &b.grads.v_proj,
                     &b.grads.q_norm,     &b.grads.q_proj,      &b.grads.beta};
  for (size_t i = 0; i < 7; ++i) {
    if (i == 1 && !s.latent) continue;
    if (i < frozen.size() && frozen[i]) continue;
    const std::vector<int64_t>& d = shapes[i];
    const std::vector<double> init(size_t(d.size() == 2 ? d[0] * d[1] : d[0]), grad_init);
    *slots[i] = d.size() == 2 ? up(A, {d[0], d[1]}, init) : up(A, {d[0]}, init);
  }
  backward_head_backward(ctx, b);
  for (size_t i = 0; i < 7; ++i)
    res.grads.push_back(slots[i]->defined() ? to_host_f64(ctx, *slots[i]) : std::vector<double>{});
  return res;
}

// METHODS §5.3 in plain loops (double). Returns loss [N] and log p [N, V].
inline HeadResult reference_head(const HeadCase& c) {
  const BackwardHeadSpec& s = c.spec;
  const int64_t D = s.D, r = s.r(), dk = s.key_dim(), dv = s.value_dim(), H = s.heads, N = c.N, V = c.V;
  const int64_t dkh = dk / H, dvh = dv / H;
  auto rms_scale = [&](const double* x, int64_t n) {
    double q = 0;
    for (int64_t i = 0; i < n; ++i) q += x[i] * x[i];
    return 1.0 / std::sqrt(q / double(n) + s.eps);
  };
  std::vector<double> ehat(static_cast<size_t>(V * D)), X(size_t(V * r)), K(size_t(V * dk)), Vv(size_t(V * dv));
  for (int64_t j = 0; j < V; ++j) {
    const double rs = rms_scale(&c.embed[size_t(j * D)], D);
    for (int64_t i = 0; i < D; ++i) ehat[size_t(j * D + i)] = c.embed_norm[size_t(i)] * c.embed[size_t(j * D + i)] * rs;
    for (int64_t i = 0; i < r; ++i) {
      double acc = 0;
      for (int64_t l = 0; l < D; ++l)
        acc += ehat[size_t(j * D + l)] * (s.latent ? c.latent_proj[size_t(i * D + l)] : (i == l ? 1.0 : 0.0));
      X[size_t(j * r + i)] = acc;
    }
    for (int64_t o = 0; o < dk; ++o) {
      double acc = 0;
      for (int64_t i = 0; i < r; ++i) acc += c.k_proj[size_t(o * r + i)] * X[size_t(j * r + i)];
      K[size_t(j * dk + o)] = acc;
    }
    for (int64_t o = 0; o < dv; ++o) {
      double acc = 0;
      for (int64_t i = 0; i < r; ++i) acc += c.v_proj[size_t(o * r + i)] * X[size_t(j * r + i)];
      Vv[size_t(j * dv + o)] = acc;
    }
  }
  HeadResult res;
  res.loss.assign(size_t(N), 0.0);
  res.logprobs.assign(size_t(N * V), 0.0);
  const bool topk = s.top_k > 0 && s.top_k < V;
  for (int64_t t = 0; t < N; ++t) {
    std::vector<double> z(static_cast<size_t>(V));
    for (int64_t j = 0; j < V; ++j) {
      double acc = 0;
      for (int64_t i = 0; i < D; ++i) acc += c.hidden[size_t(t * D + i)] * c.embed[size_t(j * D + i)];
      z[size_t(j)] = acc / s.tau;
    }
    double theta = -INFINITY;
    if (topk) {
      std::vector<double> sorted = z;
      std::sort(sorted.begin(), sorted.end(), std::greater<double>());
      theta = sorted[size_t(s.top_k - 1)];
    }
    const double zmax = *std::max_element(z.begin(), z.end());
    std::vector<double> w(static_cast<size_t>(V));
    double wsum = 0;
    for (int64_t j = 0; j < V; ++j) {
      w[size_t(j)] = z[size_t(j)] >= theta ? std::exp(z[size_t(j)] - zmax) : 0.0;
      wsum += w[size_t(j)];
    }
    std::vector<double> m(static_cast<size_t>(dv), 0.0);
    for (int64_t j = 0; j < V; ++j)
      for (int64_t o = 0; o < dv; ++o) m[size_t(o)] += w[size_t(j)] / wsum * Vv[size_t(j * dv + o)];
    std::vector<double> p(static_cast<size_t>(V), 0.0);
    for (int64_t h = 0; h < H; ++h) {
      const double rs = rms_scale(&m[size_t(h * dvh)], dvh);
      std::vector<double> n(static_cast<size_t>(dvh)), q(static_cast<size_t>(dkh));
      for (int64_t i = 0; i < dvh; ++i) n[size_t(i)] = c.q_norm[size_t(h * dvh + i)] * m[size_t(h * dvh + i)] * rs;
      for (int64_t o = 0; o < dkh; ++o) {
        double acc = 0;
        for (int64_t i = 0; i < dvh; ++i) acc += c.q_proj[size_t((h * dkh + o) * dvh + i)] * n[size_t(i)];
        q[size_t(o)] = acc;
      }
      std::vector<double> sc(static_cast<size_t>(V));
      for (int64_t j = 0; j < V; ++j) {
        double acc = 0;
        for (int64_t o = 0; o < dkh; ++o) acc += q[size_t(o)] * K[size_t(j * dk + h * dkh + o)];
        sc[size_t(j)] = c.beta[size_t(h)] * acc / std::sqrt(double(dkh));
      }
      const double smax = *std::max_element(sc.begin(), sc.end());
      double ssum = 0;
      for (double v : sc) ssum += std::exp(v - smax);
      for (int64_t j = 0; j < V; ++j) p[size_t(j)] += std::exp(sc[size_t(j)] - smax) / ssum / double(H);
    }
    for (int64_t j = 0; j < V; ++j) res.logprobs[size_t(t * V + j)] = std::log(p[size_t(j)]);
    const int32_t y = c.targets[size_t(t)];
    res.loss[size_t(t)] = y == kIgnoreIndex ? 0.0 : -std::log(p[size_t(y)]);
  }
  return res;
}

}  // namespace attnlab::test
