// Backward head dispatcher: validates the arguments, lays out the workspace and walks the
// vocabulary tiles. The walk is the same on both devices: GEMMs through the matmul op, row work
// through the row kernels of backward_head_rows.h, which run on ctx.device.
#include "core/ops/backward_head.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/memory.h"
#include "core/nvtx.h"
#include "core/ops/backward_head_rows.h"
#include "core/ops/cross_entropy_math.h"
#include "core/ops/matmul.h"
#include "core/ops/rmsnorm.h"

namespace attnlab {

namespace {

size_t align256(size_t x) { return (x + 255) & ~size_t(255); }

// Resolved sizes of one call.
struct BhShape {
  int64_t N = 0, V = 0, D = 0, r = 0, dk = 0, dv = 0, H = 1, dkh = 0, dvh = 0, k = 0, tl = 0;
  bool latent = false;
  DType T = DType::f32, A = DType::f32;
};

BhShape make_shape(const BackwardHeadSpec& s, int64_t N, int64_t V, DType dt) {
  BhShape sh;
  sh.N = N, sh.V = V, sh.D = s.D, sh.r = s.r(), sh.dk = s.key_dim(), sh.dv = s.value_dim(), sh.H = s.heads;
  sh.latent = s.latent > 0;
  sh.dkh = sh.dk / std::max<int64_t>(1, sh.H), sh.dvh = sh.dv / std::max<int64_t>(1, sh.H);
  sh.k = s.top_k > 0 && s.top_k < V ? s.top_k : 0;
  sh.tl = std::max<int64_t>(1, std::min(s.tile, V));
  sh.T = dt, sh.A = acc_dtype(dt);
  return sh;
}

void check_spec(const char* op, const BackwardHeadSpec& s) {
  CHECK(s.D > 0, op, ": spec.D (the hidden size) must be > 0, got ", s.D);
  CHECK(s.latent >= 0 && s.dk >= 0 && s.dv >= 0, op, ": latent, dk and dv must be >= 0 (0 = default)");
  CHECK(s.heads >= 1, op, ": heads must be >= 1, got ", s.heads);
  CHECK(s.key_dim() % s.heads == 0 && s.value_dim() % s.heads == 0, op, ": heads (", s.heads,
        ") must divide dk (", s.key_dim(), ") and dv (", s.value_dim(), ")");
  CHECK(s.top_k >= 0, op, ": top_k must be >= 0 (0 = off), got ", s.top_k);
  CHECK(s.tau > 0 && std::isfinite(s.tau), op, ": tau must be a positive number, got ", s.tau);
  CHECK(s.tile >= 1, op, ": tile must be >= 1 vocabulary rows, got ", s.tile);
  CHECK(s.eps >= 0, op, ": eps must be >= 0, got ", s.eps);
}

void need(const char* op, const Tensor& t, DType dt, std::initializer_list<int64_t> dims, const char* what) {
  CHECK(t.defined(), op, ": '", what, "' is required but undefined");
  CHECK(t.dtype == dt, op, ": '", what, "' (", t.name, ") must be ", dtype_name(dt), ", got ", dtype_name(t.dtype));
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  CHECK(t.numel() == n, op, ": '", what, "' (", t.name, ") ", t.shape_str(), " must hold ", n, " elements");
  if (t.ndim == int(dims.size())) check_shape(t, dims);
}

// Validates the shared inputs; returns the shape.
BhShape check_inputs(const char* op, const Ctx& ctx, const BackwardHeadSpec& s, const Tensor& hidden,
                     const Tensor& embed, int64_t vocab, const Tensor& targets, const BackwardHeadParams& p,
                     const BackwardHeadSaved& sv) {
  check_spec(op, s);
  CHECK(hidden.defined() && hidden.ndim == 2 && hidden.dim(1) == s.D, op, ": hidden must be [N, D=", s.D,
        "], got ", hidden.shape_str());
  CHECK(embed.defined() && embed.ndim == 2 && embed.dim(1) == s.D, op, ": embed must be [Vp, D=", s.D,
        "], got ", embed.shape_str());
  CHECK(vocab >= 0 && vocab <= embed.dim(0), op, ": vocab ", vocab, " must be in [0, ", embed.dim(0),
        "] (the classes are the first `vocab` rows of embed; 0 = all)");
  const int64_t V = vocab == 0 ? embed.dim(0) : vocab;
  CHECK(V >= 1, op, ": the vocabulary is empty");
  const DType T = hidden.dtype, A = acc_dtype(T);
  CHECK(embed.dtype == T, op, ": embed is ", dtype_name(embed.dtype), ", hidden is ", dtype_name(T));
  BhShape sh = make_shape(s, hidden.dim(0), V, T);
  if (targets.defined()) need(op, targets, DType::i32, {sh.N}, "targets");
  need(op, p.embed_norm, T, {sh.D}, "params.embed_norm");
  if (sh.latent) need(op, p.latent_proj, T, {sh.r, sh.D}, "params.latent_proj");
  else CHECK(!p.latent_proj.defined(), op, ": params.latent_proj is given but spec.latent is 0");
  need(op, p.k_proj, T, {sh.dk, sh.r}, "params.k_proj");
  need(op, p.v_proj, T, {sh.dv, sh.r}, "params.v_proj");
  need(op, p.q_norm, T, {sh.dv}, "params.q_norm");
  need(op, p.q_proj, T, {sh.dk, sh.dvh}, "params.q_proj");
  need(op, p.beta, A, {sh.H}, "params.beta");
  need(op, sv.embed_hat, T, {V, sh.D}, "saved.embed_hat");
  need(op, sv.embed_rstd, A, {V}, "saved.embed_rstd");
  if (sh.latent) need(op, sv.latent_out, T, {V, sh.r}, "saved.latent_out");
  need(op, sv.keys, T, {V, sh.dk}, "saved.keys");
  need(op, sv.values, T, {V, sh.dv}, "saved.values");
  {
    const int64_t N = sh.N;
    need(op, sv.w_shift, A, {N}, "saved.w_shift");
    if (sh.k) need(op, sv.w_theta, A, {N}, "saved.w_theta");
    need(op, sv.w_lse, A, {N}, "saved.w_lse");
    need(op, sv.mean, A, {N, sh.dv}, "saved.mean");
    need(op, sv.q_rstd, A, {N, sh.H}, "saved.q_rstd");
    need(op, sv.q_normed, T, {N, sh.dv}, "saved.q_normed");
    need(op, sv.query, T, {N, sh.dk}, "saved.query");
    need(op, sv.score_lse, A, {N, sh.H}, "saved.score_lse");
    need(op, sv.target_logp, A, {N, sh.H}, "saved.target_logp");
  }
  check_device(ctx.device, {&hidden, &embed, &targets, &p.embed_norm, &p.latent_proj, &p.k_proj, &p.v_proj,
                            &p.q_norm, &p.q_proj, &p.beta, &sv.embed_hat, &sv.embed_rstd, &sv.latent_out,
                            &sv.keys, &sv.values, &sv.w_shift, &sv.w_theta, &sv.w_lse, &sv.mean, &sv.q_rstd,
                            &sv.q_normed, &sv.query, &sv.score_lse, &sv.target_logp});
  return sh;
}

// Bump allocation from one buffer (or, with base == nullptr, only the byte count).
struct Carver {
  char* base = nullptr;
  Device dev = Device::cpu;
  size_t off = 0;
  Tensor take(DType dt, std::initializer_list<int64_t> dims, const char* name, bool want = true) {
    if (!want) return {};
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    Tensor t(base ? base + off : nullptr, dt, dev, dims, name);
    off = align256(off + size_t(n) * dtype_size(dt));
    return t;
  }
};

struct ForwardWs {
  Tensor z, w, u, run_max, run_sum, wsum, list;
};
ForwardWs carve_forward(Carver& c, const BhShape& s) {
  ForwardWs w;
  w.z = c.take(s.A, {s.N * s.tl}, "bh.z_tile");
  w.w = c.take(s.T, {s.N * s.tl}, "bh.w_tile");
  w.u = c.take(s.A, {s.H * s.N * s.tl}, "bh.score_tile");
  w.run_max = c.take(s.A, {s.N * s.H}, "bh.score_max");
  w.run_sum = c.take(s.A, {s.N * s.H}, "bh.score_sum");
  w.wsum = c.take(s.A, {s.N}, "bh.w_sum");
  w.list = c.take(s.A, {2 * s.N * s.k}, "bh.topk_lists", s.k > 0);
  return w;
}

struct BackwardWs {
  Tensor z, w, u, du, dbeta_rows, dq, dq_t, dn, dm, gterms, dkeys, dvalues, dx, dehat, rms_scratch;
};
BackwardWs carve_backward(Carver& c, const Ctx& ctx, const BhShape& s) {
  BackwardWs w;
  w.z = c.take(s.A, {s.N * s.tl}, "bh.z_tile");
  w.w = c.take(s.T, {s.N * s.tl}, "bh.w_tile");
  w.u = c.take(s.A, {s.H * s.N * s.tl}, "bh.score_tile");
  w.du = c.take(s.T, {s.H * s.N * s.tl}, "bh.dscore_tile");
  w.dbeta_rows = c.take(s.A, {s.N * s.H}, "bh.dbeta_rows");
  w.dq = c.take(s.A, {s.N * s.dk}, "bh.dquery");
  w.dq_t = c.take(s.T, {s.N * s.dk}, "bh.dquery_t", s.T != s.A);
  w.dn = c.take(s.A, {s.N * s.dv}, "bh.dq_normed");
  w.dm = c.take(s.T, {s.N, s.dv}, "bh.dmean");
  w.gterms = c.take(s.A, {s.N * s.dv}, "bh.dq_norm_terms");
  w.dkeys = c.take(s.T, {s.V, s.dk}, "bh.dkeys");
  w.dvalues = c.take(s.T, {s.V, s.dv}, "bh.dvalues");
  w.dx = c.take(s.T, {s.V, s.r}, "bh.dlatent_out");
  w.dehat = c.take(s.T, {s.V, s.D}, "bh.dembed_hat", s.latent);
  const size_t sf = rmsnorm_backward_scratch_floats(ctx, s.T, s.V, s.D);
  w.rms_scratch = c.take(DType::f32, {int64_t(std::max<size_t>(1, sf))}, "bh.rmsnorm_scratch", sf > 0);
  return w;
}

void checked_workspace(const char* op, const Ctx& ctx, const Tensor& ws, size_t bytes) {
  CHECK(ws.defined() && ws.bytes() >= bytes, op, ": the workspace holds ", ws.defined() ? ws.bytes() : 0,
        " bytes, this call needs ", bytes, " (size it with backward_head_workspace_bytes)");
  check_device(ctx.device, {&ws});
}

// z tile [N, cols] (ld tl) = hidden · E[j0, j0 + cols)ᵀ.
void logits_tile(Ctx& ctx, const BhShape& s, const Tensor& hidden, const Tensor& embed, int64_t j0, int64_t cols,
                 const Tensor& z) {
  MatmulArgs m;
  m.c = z, m.a = hidden, m.b = embed.slice0(j0, j0 + cols);
  m.M = s.N, m.N = cols, m.K = s.D, m.trans_b = true, m.ldc = s.tl;
  matmul(ctx, m);
}

// u tile [H, N, cols] (ld tl) = Q^h · K^h[j0, j0 + cols)ᵀ, all heads in one batch (the 1/sqrt(dk/H)
// is applied in the row kernels, in the acc dtype: the GEMM's alpha is a float).
void scores_tile(Ctx& ctx, const BhShape& s, const Tensor& query, const Tensor& keys, int64_t j0, int64_t cols,
                 const Tensor& u) {
  MatmulArgs m;
  m.c = u, m.a = query, m.b = keys.slice0(j0, j0 + cols);
  m.M = s.N, m.N = cols, m.K = s.dkh, m.batch = s.H, m.trans_b = true;
  m.lda = s.dk, m.ldb = s.dk, m.ldc = s.tl;
  m.stride_a = s.dkh, m.stride_b = s.dkh, m.stride_c = s.N * s.tl;
  matmul(ctx, m);
}

double inv_tau(const BackwardHeadSpec& s) { return 1.0 / s.tau; }

}  // namespace

size_t backward_head_workspace_bytes(const Ctx& ctx, const BackwardHeadSpec& spec, int64_t N, int64_t V,
                                     DType dt, bool backward) {
  check_spec("backward_head_workspace_bytes", spec);
  const BhShape s = make_shape(spec, N, V, dt);
  Carver c;
  if (backward) carve_backward(c, ctx, s);
  else carve_forward(c, s);
  return c.off;
}

namespace {
BackwardHeadSaved carve_saved(Carver& c, const BhShape& s) {
  BackwardHeadSaved v;
  v.embed_hat = c.take(s.T, {s.V, s.D}, "bh.embed_hat");
  v.embed_rstd = c.take(s.A, {s.V}, "bh.embed_rstd");
  v.latent_out = c.take(s.T, {s.V, s.r}, "bh.latent_out", s.latent);
  v.keys = c.take(s.T, {s.V, s.dk}, "bh.keys");
  v.values = c.take(s.T, {s.V, s.dv}, "bh.values");
  v.w_shift = c.take(s.A, {s.N}, "bh.w_shift");
  v.w_theta = c.take(s.A, {s.N}, "bh.w_theta", s.k > 0);
  v.w_lse = c.take(s.A, {s.N}, "bh.w_lse");
  v.mean = c.take(s.A, {s.N, s.dv}, "bh.mean");
  v.q_rstd = c.take(s.A, {s.N, s.H}, "bh.q_rstd");
  v.q_normed = c.take(s.T, {s.N, s.dv}, "bh.q_normed");
  v.query = c.take(s.T, {s.N, s.dk}, "bh.query");
  v.score_lse = c.take(s.A, {s.N, s.H}, "bh.score_lse");
  v.target_logp = c.take(s.A, {s.N, s.H}, "bh.target_logp");
  return v;
}
}  // namespace

size_t backward_head_saved_bytes(const BackwardHeadSpec& spec, int64_t N, int64_t V, DType dt) {
  check_spec("backward_head_saved_bytes", spec);
  Carver c;
  carve_saved(c, make_shape(spec, N, V, dt));
  return c.off;
}

BackwardHeadSaved backward_head_carve_saved(const BackwardHeadSpec& spec, int64_t N, int64_t V, DType dt,
                                            Device dev, void* base) {
  check_spec("backward_head_carve_saved", spec);
  CHECK(base != nullptr, "backward_head_carve_saved: base is null");
  Carver c{static_cast<char*>(base), dev, 0};
  return carve_saved(c, make_shape(spec, N, V, dt));
}

void backward_head_forward(Ctx& ctx, const BackwardHeadArgs& a) {
  NVTX_RANGE(ctx, "backward_head_forward");
  const char* op = "backward_head_forward";
  const BhShape s = check_inputs(op, ctx, a.spec, a.hidden, a.embed, a.vocab, a.targets, a.params, a.saved);
  const BackwardHeadSaved& sv = a.saved;
  if (a.loss.defined()) {
    CHECK(a.targets.defined(), op, ": loss is requested but no targets are given");
    need(op, a.loss, s.A, {s.N}, "loss");
  }
  if (a.logprobs.defined()) need(op, a.logprobs, s.A, {s.N, s.V}, "logprobs");
  check_device(ctx.device, {&a.loss, &a.logprobs});
  Carver count;
  carve_forward(count, s);
  checked_workspace(op, ctx, a.workspace, count.off);
  Carver c{static_cast<char*>(a.workspace.data), ctx.device, 0};
  const ForwardWs ws = carve_forward(c, s);
  const Tensor E = a.embed.slice0(0, s.V);

  if (!a.vocab_ready) {
    rmsnorm_forward(ctx, {sv.embed_hat, sv.embed_rstd, E, a.params.embed_norm, a.spec.eps});
    Tensor X = sv.embed_hat;
    if (s.latent) {
      linear_forward(ctx, {sv.latent_out, sv.embed_hat, a.params.latent_proj});
      X = sv.latent_out;
    }
    linear_forward(ctx, {sv.keys, X, a.params.k_proj});
    linear_forward(ctx, {sv.values, X, a.params.v_proj});
  }
  if (s.N == 0) return;

  // Pass 1: the shift of w (row max of z/τ) and, with top-k, the threshold θ.
  int64_t t = 0;
  for (int64_t j0 = 0; j0 < s.V; j0 += s.tl, ++t) {
    const BhTile tile{s.N, 1, s.tl, std::min(s.tl, s.V - j0), j0};
    logits_tile(ctx, s, a.hidden, a.embed, j0, tile.cols, ws.z);
    bh_rows_max(ctx, tile, ws.z, inv_tau(a.spec), sv.w_shift, j0 == 0);
    if (s.k) {
      const Tensor in = ws.list.slice0((t % 2) * s.N * s.k, (t % 2 + 1) * s.N * s.k);
      const Tensor out = ws.list.slice0(((t + 1) % 2) * s.N * s.k, ((t + 1) % 2 + 1) * s.N * s.k);
      bh_rows_topk(ctx, tile, ws.z, inv_tau(a.spec), s.k, in, out, sv.w_theta, j0 == 0);
    }
  }
  // Pass 2: m = Σ_j w_j Vv_j with unnormalised weights, then divided by their sum.
  for (int64_t j0 = 0; j0 < s.V; j0 += s.tl) {
    const BhTile tile{s.N, 1, s.tl, std::min(s.tl, s.V - j0), j0};
    logits_tile(ctx, s, a.hidden, a.embed, j0, tile.cols, ws.z);
    bh_rows_weights(ctx, tile, ws.z, inv_tau(a.spec), sv.w_shift, s.k ? sv.w_theta : Tensor{}, ws.w, ws.wsum,
                    j0 == 0);
    MatmulArgs m;
    m.c = sv.mean, m.a = ws.w, m.b = sv.values.slice0(j0, j0 + tile.cols);
    m.M = s.N, m.N = s.dv, m.K = tile.cols, m.lda = s.tl, m.beta = j0 == 0 ? 0.f : 1.f;
    matmul(ctx, m);
  }
  bh_rows_weights_finish(ctx, s.N, s.dv, sv.mean, ws.wsum, sv.w_shift, sv.w_lse);
  // Query: per-head RMSNorm, then per-head projection (one batched GEMM).
  bh_rows_qnorm_forward(ctx, s.N, s.H, s.dv, a.spec.eps, sv.mean, a.params.q_norm, sv.q_rstd, sv.q_normed);
  {
    MatmulArgs m;
    m.c = sv.query, m.a = sv.q_normed, m.b = a.params.q_proj;
    m.M = s.N, m.N = s.dkh, m.K = s.dvh, m.batch = s.H, m.trans_b = true;
    m.lda = s.dv, m.ldb = s.dvh, m.ldc = s.dk;
    m.stride_a = s.dvh, m.stride_b = s.dkh * s.dvh, m.stride_c = s.dkh;
    matmul(ctx, m);
  }
  // Pass 3: online log-sum-exp of the scores per head, target scores captured.
  for (int64_t j0 = 0; j0 < s.V; j0 += s.tl) {
    const BhTile tile{s.N, s.H, s.tl, std::min(s.tl, s.V - j0), j0, 1.0 / std::sqrt(double(s.dkh))};
    scores_tile(ctx, s, sv.query, sv.keys, j0, tile.cols, ws.u);
    bh_rows_scores(ctx, tile, ws.u, a.params.beta, a.targets, ws.run_max, ws.run_sum, sv.target_logp, j0 == 0);
  }
  bh_rows_scores_finish(ctx, s.N, s.H, s.V, ws.run_max, ws.run_sum, a.targets, sv.score_lse, sv.target_logp,
                        a.loss);
  // Pass 4 (generation): log p over the vocabulary.
  if (a.logprobs.defined())
    for (int64_t j0 = 0; j0 < s.V; j0 += s.tl) {
      const BhTile tile{s.N, s.H, s.tl, std::min(s.tl, s.V - j0), j0, 1.0 / std::sqrt(double(s.dkh))};
      scores_tile(ctx, s, sv.query, sv.keys, j0, tile.cols, ws.u);
      bh_rows_logprobs(ctx, tile, ws.u, a.params.beta, sv.score_lse, a.logprobs);
    }
}

void backward_head_backward(Ctx& ctx, const BackwardHeadBackwardArgs& a) {
  NVTX_RANGE(ctx, "backward_head_backward");
  const char* op = "backward_head_backward";
  const BhShape s = check_inputs(op, ctx, a.spec, a.hidden, a.embed, a.vocab, a.targets, a.params, a.saved);
  const BackwardHeadSaved& sv = a.saved;
  const BackwardHeadGrads& g = a.grads;
  CHECK(a.targets.defined(), op, ": targets are required");
  need(op, a.loss, s.A, {s.N}, "loss");
  CHECK(a.valid_count > 0, op, ": valid_count must be > 0 (the number of target tokens the loss is "
        "averaged over), got ", a.valid_count);
  if (g.embed_norm.defined()) need(op, g.embed_norm, s.A, {s.D}, "grads.embed_norm");
  if (g.latent_proj.defined()) {
    CHECK(s.latent, op, ": grads.latent_proj is given but spec.latent is 0");
    need(op, g.latent_proj, s.A, {s.r, s.D}, "grads.latent_proj");
  }
  if (g.k_proj.defined()) need(op, g.k_proj, s.A, {s.dk, s.r}, "grads.k_proj");
  if (g.v_proj.defined()) need(op, g.v_proj, s.A, {s.dv, s.r}, "grads.v_proj");
  if (g.q_norm.defined()) need(op, g.q_norm, s.A, {s.dv}, "grads.q_norm");
  if (g.q_proj.defined()) need(op, g.q_proj, s.A, {s.dk, s.dvh}, "grads.q_proj");
  if (g.beta.defined()) need(op, g.beta, s.A, {s.H}, "grads.beta");
  check_device(ctx.device, {&a.loss, &g.embed_norm, &g.latent_proj, &g.k_proj, &g.v_proj, &g.q_norm,
                            &g.q_proj, &g.beta});
  Carver count;
  carve_backward(count, ctx, s);
  checked_workspace(op, ctx, a.workspace, count.off);
  Carver c{static_cast<char*>(a.workspace.data), ctx.device, 0};
  const BackwardWs ws = carve_backward(c, ctx, s);
  if (s.N == 0) return;

  // What is needed follows from which gradients are asked for (frozen ones cost nothing).
  const bool need_dx = g.embed_norm.defined() || g.latent_proj.defined();
  const bool need_dk = need_dx || g.k_proj.defined();
  const bool need_dvv = need_dx || g.v_proj.defined();
  const bool need_dq = need_dvv || g.q_norm.defined() || g.q_proj.defined();
  if (!need_dk && !need_dq && !g.beta.defined()) return;
  const double scale = a.dloss / a.valid_count;

  // Pass B1: scores → dL/du → dQ (accumulated over tiles), dK (tile rows), dβ per row.
  for (int64_t j0 = 0; j0 < s.V; j0 += s.tl) {
    const BhTile tile{s.N, s.H, s.tl, std::min(s.tl, s.V - j0), j0, 1.0 / std::sqrt(double(s.dkh))};
    scores_tile(ctx, s, sv.query, sv.keys, j0, tile.cols, ws.u);
    bh_rows_score_grad(ctx, tile, ws.u, a.params.beta, sv.score_lse, sv.target_logp, a.loss, a.targets, scale,
                       ws.du, g.beta.defined() ? ws.dbeta_rows : Tensor{}, j0 == 0);
    if (need_dq) {
      MatmulArgs m;
      m.c = ws.dq, m.a = ws.du, m.b = sv.keys.slice0(j0, j0 + tile.cols);
      m.M = s.N, m.N = s.dkh, m.K = tile.cols, m.batch = s.H;
      m.lda = s.tl, m.ldb = s.dk, m.ldc = s.dk;
      m.stride_a = s.N * s.tl, m.stride_b = s.dkh, m.stride_c = s.dkh;
      m.beta = j0 == 0 ? 0.f : 1.f;
      matmul(ctx, m);
    }
    if (need_dk) {
      MatmulArgs m;
      m.c = ws.dkeys.slice0(j0, j0 + tile.cols), m.a = ws.du, m.b = sv.query;
      m.M = tile.cols, m.N = s.dkh, m.K = s.N, m.batch = s.H, m.trans_a = true;
      m.lda = s.tl, m.ldb = s.dk, m.ldc = s.dk;
      m.stride_a = s.N * s.tl, m.stride_b = s.dkh, m.stride_c = s.dkh;
      matmul(ctx, m);
    }
  }
  if (g.beta.defined()) bh_rows_column_sum(ctx, ws.dbeta_rows, s.N, s.H, g.beta);

  if (need_dq) {
    Tensor dq_t = ws.dq;
    if (s.T != s.A) {
      bh_rows_cast(ctx, ws.dq, ws.dq_t, s.N * s.dk);
      dq_t = ws.dq_t;
    }
    if (g.q_proj.defined()) {  // dW_Q^h += dQ^hᵀ n^h
      MatmulArgs m;
      m.c = g.q_proj, m.a = dq_t, m.b = sv.q_normed;
      m.M = s.dkh, m.N = s.dvh, m.K = s.N, m.batch = s.H, m.trans_a = true;
      m.lda = s.dk, m.ldb = s.dv, m.ldc = s.dvh;
      m.stride_a = s.dkh, m.stride_b = s.dvh, m.stride_c = s.dkh * s.dvh;
      m.beta = 1.f;
      matmul(ctx, m);
    }
    if (need_dvv || g.q_norm.defined()) {  // dn^h = dQ^h W_Q^h, then the query RMSNorm backward
      MatmulArgs m;
      m.c = ws.dn, m.a = dq_t, m.b = a.params.q_proj;
      m.M = s.N, m.N = s.dvh, m.K = s.dkh, m.batch = s.H;
      m.lda = s.dk, m.ldb = s.dvh, m.ldc = s.dv;
      m.stride_a = s.dkh, m.stride_b = s.dkh * s.dvh, m.stride_c = s.dvh;
      matmul(ctx, m);
      bh_rows_qnorm_backward(ctx, s.N, s.H, s.dv, ws.dn, sv.mean, sv.q_rstd, a.params.q_norm,
                             need_dvv ? ws.dm : Tensor{}, g.q_norm.defined() ? ws.gterms : Tensor{});
      if (g.q_norm.defined()) bh_rows_column_sum(ctx, ws.gterms, s.N, s.dv, g.q_norm);
    }
  }

  // Pass B2: w again (normalised by the saved lse) → dVv tile rows = wᵀ dm.
  if (need_dvv)
    for (int64_t j0 = 0; j0 < s.V; j0 += s.tl) {
      const BhTile tile{s.N, 1, s.tl, std::min(s.tl, s.V - j0), j0};
      logits_tile(ctx, s, a.hidden, a.embed, j0, tile.cols, ws.z);
      bh_rows_weights(ctx, tile, ws.z, inv_tau(a.spec), sv.w_lse, s.k ? sv.w_theta : Tensor{}, ws.w, Tensor{},
                      j0 == 0);
      MatmulArgs m;
      m.c = ws.dvalues.slice0(j0, j0 + tile.cols), m.a = ws.w, m.b = ws.dm;
      m.M = tile.cols, m.N = s.dv, m.K = s.N, m.trans_a = true, m.lda = s.tl;
      matmul(ctx, m);
    }

  // Vocabulary side: K = Ẽ W_Kᵀ, Vv = Ẽ W_Vᵀ, Ẽ = Ê W_latᵀ, Ê = RMSNorm(E).
  const Tensor X = s.latent ? sv.latent_out : sv.embed_hat;
  if (need_dk) linear_backward(ctx, {ws.dkeys, X, a.params.k_proj, need_dx ? ws.dx : Tensor{}, g.k_proj});
  if (need_dvv) {
    LinearBackwardArgs l{ws.dvalues, X, a.params.v_proj, need_dx ? ws.dx : Tensor{}, g.v_proj};
    l.accumulate_dx = true;
    linear_backward(ctx, l);
  }
  if (!need_dx) return;
  Tensor dehat = ws.dx;
  if (s.latent) {
    linear_backward(ctx, {ws.dx, sv.embed_hat, a.params.latent_proj,
                          g.embed_norm.defined() ? ws.dehat : Tensor{}, g.latent_proj});
    dehat = ws.dehat;
  }
  if (g.embed_norm.defined()) {
    RmsNormBackwardArgs r;
    r.dweight = g.embed_norm, r.dy = dehat, r.x = a.embed.slice0(0, s.V), r.weight = a.params.embed_norm;
    r.rstd = sv.embed_rstd, r.scratch = ws.rms_scratch;
    rmsnorm_backward(ctx, r);
  }
}

void backward_head_identity_init(const Ctx& ctx, const BackwardHeadSpec& spec, const BackwardHeadParams& p) {
  check_spec("backward_head_identity_init", spec);
  auto fill = [&](const Tensor& t, auto value) {
    if (!t.defined()) return;
    const int64_t rows = t.ndim == 2 ? t.dim(0) : 1, cols = t.ndim == 2 ? t.dim(1) : t.numel();
    std::vector<double> v(size_t(t.numel()));
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) v[size_t(i * cols + j)] = value(i, j);
    from_host_f64(ctx, t, v);
  };
  auto one = [](int64_t, int64_t) { return 1.0; };
  auto eye = [](int64_t i, int64_t j) { return i == j ? 1.0 : 0.0; };
  const int64_t dkh = spec.key_dim() / spec.heads;
  fill(p.embed_norm, one);
  fill(p.q_norm, one);
  fill(p.beta, one);
  fill(p.latent_proj, eye);
  fill(p.k_proj, eye);
  fill(p.v_proj, eye);
  fill(p.q_proj, [&](int64_t i, int64_t j) { return i % dkh == j ? 1.0 : 0.0; });
}

}  // namespace attnlab
