// `attnlab bench attention [d T [variants [B H]]] [--impl materialized|fused|both]`: attention by
// the chosen backend (core/ops/attention.h; fused keeps no map), causal softmax,
// forward and forward+backward in FLOP/s by the FlashAttention count (4·B·T²·H·d forward,
// halved when causal; backward 2.5× forward). `variants` = 1 adds differential / linear / ramp at
// the same width with their time ratio to softmax (2: and softmax with per-row controllers; 3: and
// softmax with every statistics capture, forward only, against the plain forward). Every timed
// configuration is first verified at a reduced size (B = 1, 2 heads, T = 192) against the CPU in f64,
// its captures included.
// On a GPU: bf16 at B·T = 16k tokens and H·d = 2048 (PERFORMANCE.md's anchor shape) unless B and
// H are given. On the CPU backend: f32 (the CPU kernels' fast type) at B = 1, H = 4 unless given,
// since the anchor shape is minutes per call on a few cores. Fused rows name the kernels that ran
// (core/ops/attention_fused_path.h) at the end: path=mma (bf16 tensor cores), path=warp, path=cpu;
// a capture row's path is its forward's (captures stay on the warp kernels).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>

#include "core/memory.h"
#include "core/ops/attention.h"
#include "core/ops/attention_fused_path.h"
#include "tools/bench/bench.h"
#include "tools/bench/bench_util.h"

namespace attnlab::bench {
namespace {

// What a timed configuration adds to the plain op: per-row controllers (x = Sc·τ + a, with their
// gradients) and/or the statistics captures of every row (entropy, KL to softmax, variance, the mass
// of kSpans key spans), which probes ask of the forward (issue 19's capture overhead).
struct Adds {
  bool ctrl = false, stats = false;
};
constexpr int64_t kSpans = 3;

// Every buffer of one forward + backward call, on one context.
struct AttnRun {
  AttentionSpec spec;
  AttentionBackend backend = AttentionBackend::materialized;
  int64_t B = 0, T = 0;
  std::vector<std::unique_ptr<Buffer>> owned;
  AttentionArgs fwd;
  AttentionBackwardArgs bwd;

  Tensor make(Ctx& c, DType dt, std::initializer_list<int64_t> dims, uint64_t seed, double lo = -1, double hi = 1) {
    owned.push_back(std::make_unique<Buffer>(c.device, dt, dims));
    if (seed) from_host_f64(c, owned.back()->t(), random_values(size_t(owned.back()->t().numel()), seed, lo, hi));
    return owned.back()->t();
  }

  AttnRun(Ctx& c, const AttentionSpec& s, int64_t B_, int64_t T_, DType dt,
          AttentionBackend be = AttentionBackend::materialized, Adds adds = {})
      : spec(s), backend(be), B(B_), T(T_) {
    const bool ctrl = adds.ctrl;
    const bool fused = be == AttentionBackend::fused;
    fwd.backend = bwd.backend = be;
    const int64_t Hq = s.Hq, Hkv = s.Hkv, d = s.d, dv = s.value_dim();
    const DType acc = acc_dtype(dt);
    const bool sm = s.norm == AttnNorm::softmax || s.norm == AttnNorm::ramp;
    const bool lin = s.norm == AttnNorm::linear || s.norm == AttnNorm::ramp;
    fwd.spec = bwd.spec = s;
    // q, k scaled so that scores spread over a few units (peaked rows, not uniform ones).
    fwd.q = make(c, dt, {B, Hq, T, d}, 11, -2, 2);
    fwd.k = make(c, dt, {B, Hkv, T, d}, 12, -2, 2);
    fwd.v = make(c, dt, {B, Hkv, T, dv}, 13);
    if (s.differential) {
      fwd.q2 = make(c, dt, {B, Hq, T, d}, 14, -2, 2);
      fwd.k2 = make(c, dt, {B, Hkv, T, d}, 15, -2, 2);
      fwd.lambda = make(c, acc, {1}, 16, 0.3, 0.6);
      if (!fused) fwd.probs2 = make(c, dt, {B, Hq, T, T}, 0);
      if (sm) fwd.lse2 = make(c, acc, {B, Hq, T}, 0);
      if (lin) fwd.row_min2 = make(c, DType::i32, {B, Hq, T}, 0), fwd.row_sum2 = make(c, acc, {B, Hq, T}, 0);
      bwd.dq2 = make(c, dt, {B, Hq, T, d}, 0);
      bwd.dk2 = make(c, dt, {B, Hkv, T, d}, 0);
      bwd.dlambda = make(c, acc, {1}, 0);
    }
    fwd.out = make(c, dt, {B, Hq, T, dv}, 0);
    if (adds.stats) {  // every row's statistics, and the mass of three key spans (the first, a middle, the last)
      AttentionCaptures& cap = fwd.captures;
      if (!s.differential) cap.entropy = make(c, acc, {B, Hq, T}, 0), cap.kl = make(c, acc, {B, Hq, T}, 0);
      cap.variance = make(c, acc, {B, Hq, T}, 0);
      cap.spans = make(c, DType::i32, {kSpans, 2}, 0);
      from_host_f64(c, cap.spans, {0, 1, double(T / 3), double(std::max(T / 3 + 1, T / 2)), double(std::max<int64_t>(T - 8, 0)),
                                    double(T)});
      cap.span_mass = make(c, acc, {B, Hq, T, kSpans}, 0);
    }
    if (ctrl) {  // per-row controllers (METHODS §4.3): x = Sc·τ + a, with their gradients
      fwd.score_mul = make(c, acc, {B, Hq, T}, 18, 0.5, 1.5);
      fwd.score_add = make(c, acc, {B, Hq, T}, 19, -0.5, 0.5);
      bwd.dscore_mul = make(c, acc, {B, Hq, T}, 0);
      bwd.dscore_add = make(c, acc, {B, Hq, T}, 0);
    }
    if (!fused) fwd.probs = make(c, dt, {B, Hq, T, T}, 0);
    const int64_t np = attention_fused_nparts(s);
    if (fused && np > 1) fwd.out_parts = make(c, dt, {B, Hq, T, np * dv}, 0);
    if (sm) fwd.lse = make(c, acc, {B, Hq, T}, 0);
    if (lin) fwd.row_min = make(c, DType::i32, {B, Hq, T}, 0), fwd.row_sum = make(c, acc, {B, Hq, T}, 0);
    const size_t ws = std::max(attention_backend_workspace_bytes(be, s, B, T, T, dt, false, ctrl),
                               attention_backend_workspace_bytes(be, s, B, T, T, dt, true, ctrl));
    fwd.workspace = bwd.workspace = make(c, DType::f32, {int64_t(ws / 4 + 64)}, 0);
    bwd.score_mul = fwd.score_mul, bwd.score_add = fwd.score_add;
    bwd.q = fwd.q, bwd.k = fwd.k, bwd.v = fwd.v, bwd.q2 = fwd.q2, bwd.k2 = fwd.k2, bwd.lambda = fwd.lambda;
    bwd.probs = fwd.probs, bwd.probs2 = fwd.probs2, bwd.out_parts = fwd.out_parts;
    if (fused && np == 1) bwd.out = fwd.out;
    bwd.lse = fwd.lse, bwd.row_min = fwd.row_min, bwd.row_sum = fwd.row_sum;
    bwd.lse2 = fwd.lse2, bwd.row_min2 = fwd.row_min2, bwd.row_sum2 = fwd.row_sum2;
    bwd.dout = make(c, dt, {B, Hq, T, dv}, 17);
    bwd.dq = make(c, dt, {B, Hq, T, d}, 0);
    bwd.dk = make(c, dt, {B, Hkv, T, d}, 0);
    bwd.dv = make(c, dt, {B, Hkv, T, dv}, 0);
  }
  void forward(Ctx& c) { attention_forward(c, fwd); }
  void backward(Ctx& c) { attention_backward(c, bwd); }
  std::string memory_note() const {
    if (backend == AttentionBackend::fused) {
      const int64_t np = attention_fused_nparts(spec);
      const double saved = (np > 1 ? double(B * spec.Hq * T * np * spec.value_dim()) * double(dtype_size(fwd.q.dtype)) : 0) +
                           double(B * spec.Hq * T) * 4.0 * (spec.differential ? 2 : 1) * 3;
      char buf[128];
      std::snprintf(buf, sizeof buf, "fused: saved %.3g GB (row statistics%s), no map", saved / 1e9,
                    np > 1 ? " + un-mixed outputs" : "");
      return buf;
    }
    const double saved =
        double(B * spec.Hq * T * T) * (spec.differential ? 2 : 1) * double(dtype_size(fwd.q.dtype)) / 1e9;
    const double ws = double(fwd.workspace.bytes()) / 1e9;
    char buf[128];
    std::snprintf(buf, sizeof buf, "materialized: saved maps %.3g GB + workspace %.3g GB (%s)", saved, ws,
                  dtype_name(fwd.q.dtype));
    return buf;
  }
};

// Reduced-size check of a spec on the timed context (GPU, or the CPU in f32) against the CPU in f64
// (same rounded inputs): the worst relative error over O, dQ, dK, dV.
double verify(Ctx& gpu, const AttentionSpec& s, DType dt, AttentionBackend be, Adds adds) {
  const int64_t B = 1, T = 192;
  AttentionSpec small = s;
  small.Hq = small.Hkv = 2;
  AttnRun g(gpu, small, B, T, dt, be, adds);
  Ctx cpu = Ctx::make_cpu(0);
  AttnRun r(cpu, small, B, T, DType::f64, AttentionBackend::materialized, adds);
  // Same values: the CPU copies the GPU's (already rounded) inputs.
  for (auto [dst, src] : {std::pair{r.fwd.q, g.fwd.q}, {r.fwd.k, g.fwd.k}, {r.fwd.v, g.fwd.v}, {r.bwd.dout, g.bwd.dout},
                          {r.fwd.q2, g.fwd.q2}, {r.fwd.k2, g.fwd.k2}, {r.fwd.lambda, g.fwd.lambda},
                          {r.fwd.score_mul, g.fwd.score_mul}, {r.fwd.score_add, g.fwd.score_add}})
    if (dst.defined()) from_host_f64(cpu, dst, to_host_f64(gpu, src));
  g.forward(gpu);
  g.backward(gpu);
  r.forward(cpu);
  r.backward(cpu);
  double worst = 0;
  const AttentionCaptures &gc = g.fwd.captures, &rc = r.fwd.captures;
  for (auto [x, y] : {std::pair{g.fwd.out, r.fwd.out}, {g.bwd.dq, r.bwd.dq}, {g.bwd.dk, r.bwd.dk}, {g.bwd.dv, r.bwd.dv},
                      {gc.entropy, rc.entropy}, {gc.kl, rc.kl}, {gc.variance, rc.variance}, {gc.span_mass, rc.span_mass}})
    if (x.defined()) worst = std::max(worst, rel_error(to_host_f64(gpu, x), to_host_f64(cpu, y)));
  return worst;
}

// The fused backend's kernels for this call (core/ops/attention_fused_path.h): cpu, warp or mma.
std::string fused_path_of(const Ctx& ctx, const AttentionSpec& s, DType dt, Adds adds) {
  FusedPathQuery q;
  q.spec = s, q.dtype = dt, q.sm = fused_device_sm(ctx);
  q.score_add = q.score_mul = adds.ctrl;
  q.captures = adds.stats;
  q.force_warp = fused_force_warp();
  return fused_path_name(fused_path(q));
}

std::string label(const Ctx& ctx, const AttentionSpec& s, int64_t B, int64_t T, DType dt, AttentionBackend be,
                  Adds adds) {
  std::string l = std::string(attention_backend_name(be)) + " " + dtype_name(dt) + " " +
                  (adds.ctrl ? "ctrl-" : "") + (adds.stats ? "stats-" : "") + (s.differential ? "diff-" : "") +
                  attn_norm_name(s.norm) + " d=" + std::to_string(s.d) + " T=" + std::to_string(T) +
                  " B=" + std::to_string(B) + " H=" + std::to_string(s.Hq);
  if (be == AttentionBackend::fused) l += " path=" + fused_path_of(ctx, s, dt, adds);
  return l;
}

// Forward and forward+backward µs of one timed configuration (0 when not run).
struct Times {
  double fwd = 0, fb = 0;
};

std::string ratio(double x) { return std::to_string(x).substr(0, 4); }

// Times forward and forward+backward of one spec on one backend. The notes give the time ratio to
// causal softmax on the same backend (`base`) and, for fused rows, to the materialized backend on
// the same spec (`mat`) when both ran. With statistics captures only the forward is timed (the
// captures add nothing to the backward), against the plain forward of `base`.
Times time_spec(Runner& r, const AttentionSpec& s, int64_t B, int64_t T, Times base, AttentionBackend be, Adds adds,
                Times mat = {}) {
  const DType dt = r.ctx().is_cuda() ? DType::bf16 : DType::f32;
  AttentionSpec small = s;
  small.Hq = small.Hkv = 2;
  Row check{"attention_verify", label(r.ctx(), small, 1, 192, dt, be, adds)};
  const std::string why = attention_backend_support(be, s, r.ctx().device, dt);
  if (!why.empty()) {
    check.note = "skipped: " + why;
    r.add(check);
    return {};
  }
  check.rel_err = verify(r.ctx(), s, dt, be, adds);
  verify(r, check, dt);
  AttnRun run(r.ctx(), s, B, T, dt, be, adds);
  // Same width for every variant: the FLOP count of the standard layer with H·d = Hq·dv.
  const double width = double(s.Hq) * double(s.value_dim());
  const double fwd_flops = 4.0 * double(B) * double(T) * double(T) * width / 2.0;
  const std::string mem = run.memory_note();
  Times t;
  Row f{"attention_fwd", label(r.ctx(), s, B, T, dt, be, adds)};
  f.rel_err = check.rel_err;
  t.fwd = f.us = r.time_us([&] { run.forward(r.ctx()); });
  f.flops = fwd_flops;
  f.note = mem;
  if (adds.stats && base.fwd > 0)
    f.note = "time " + ratio(f.us / base.fwd) + "x the forward without captures (entropy, KL, variance, " +
             std::to_string(kSpans) + " span masses)";
  r.add(f);
  if (adds.stats) return t;
  Row fb{"attention_fwd_bwd", label(r.ctx(), s, B, T, dt, be, adds)};
  fb.rel_err = check.rel_err;
  t.fb = fb.us = r.time_us([&] {
    run.forward(r.ctx());
    run.backward(r.ctx());
  });
  fb.flops = 3.5 * fwd_flops;
  fb.note = base.fb > 0 ? "time " + ratio(fb.us / base.fb) + "x causal softmax" : mem;
  if (mat.fb > 0) fb.note += "; " + ratio(mat.fb / fb.us) + "x the speed of materialized";
  r.add(fb);
  return t;
}

// One spec on the backends --impl names (both: materialized, then fused with its speed ratio).
// Returns the times per backend: {materialized, fused}.
std::pair<Times, Times> time_impls(Runner& r, const AttentionSpec& s, int64_t B, int64_t T,
                                   std::pair<Times, Times> base, Adds adds = {}) {
  const std::string& impl = r.attention_impl;
  Times m, f;
  if (impl != "fused") m = time_spec(r, s, B, T, base.first, AttentionBackend::materialized, adds);
  if (impl != "materialized") f = time_spec(r, s, B, T, base.second, AttentionBackend::fused, adds, m);
  return {m, f};
}

void run(Runner& r, const std::vector<int64_t>& sizes) {
  if (sizes.size() < 2 || sizes.size() > 5 || sizes.size() == 4)
    FAIL_WITH("bench attention takes the sizes d T [variants [B H]], e.g. `attnlab bench attention 64 1024 1`");
  const int64_t d = sizes[0], T = sizes[1];
  const bool variants = sizes.size() >= 3 && sizes[2] != 0;
  const bool gpu = r.ctx().is_cuda();
  int64_t B = 0, H = 0;
  if (sizes.size() == 5) {
    B = sizes[3], H = sizes[4];
    if (B < 1 || H < 2 || H % 2 != 0 || d < 1 || T < 1)
      FAIL_WITH("bench attention: need d, T, B ≥ 1 and an even H ≥ 2 (differential halves the heads); got d=", d,
                " T=", T, " B=", B, " H=", H);
  } else if (gpu) {
    if (d <= 0 || 2048 % d != 0 || T <= 0 || 16384 % T != 0)
      FAIL_WITH("bench attention: on the GPU d must divide 2048 and T divide 16384 (B = 16384/T, H = 2048/d); got d=",
                d, " T=", T, ". Fix: choose such sizes, or give B and H (`d T variants B H`)");
    B = 16384 / T, H = 2048 / d;
  } else {
    if (d < 1 || T < 1) FAIL_WITH("bench attention: need d ≥ 1 and T ≥ 1; got d=", d, " T=", T);
    B = 1, H = 4;
  }
  AttentionSpec s;
  s.Hq = s.Hkv = H, s.d = d, s.causal = true, s.norm = AttnNorm::softmax;
  const std::pair<Times, Times> base = time_impls(r, s, B, T, {});
  if (!variants) return;
  if (sizes[2] >= 2) time_impls(r, s, B, T, base, {.ctrl = true});  // softmax with both per-row controllers
  if (sizes[2] >= 3) time_impls(r, s, B, T, base, {.stats = true});  // softmax with every statistics capture
  for (AttnNorm n : {AttnNorm::linear, AttnNorm::ramp}) {
    AttentionSpec v = s;
    v.norm = n;
    v.ramp_alpha = 0.5;
    time_impls(r, v, B, T, base);
  }
  // Differential at the same width: H/2 heads, two maps of head dim d, value dim 2d (METHODS §3.2).
  AttentionSpec diff = s;
  diff.differential = true;
  diff.Hq = diff.Hkv = H / 2;
  diff.dv = 2 * d;
  time_impls(r, diff, B, T, base);
}

ATTNLAB_BENCH("attention",
              "d T [variants [B H]]; variants 1 adds linear, ramp, differential (2: and softmax with per-row "
              "controllers; 3: and softmax with the entropy, KL, variance and span-mass captures, forward only). "
              "GPU: bf16, B = 16384/T, "
              "H = 2048/d unless given; CPU: f32, B = 1, H = 4 unless given. --impl materialized|fused|both",
              {{64, 1024, 1}, {64, 512}, {64, 2048}, {64, 4096}, {128, 512}, {128, 1024}, {128, 2048}, {128, 4096}},
              run, /*needs_gpu=*/false, /*cpu_default_sizes=*/{{64, 256, 1}, {64, 512}, {128, 512}});

}  // namespace
}  // namespace attnlab::bench
