// `attnlab bench backward_head N V D [H [latent [top_k]]]`: the backward attention head of seed 004
// (forward with loss, and forward + backward with every parameter gradient), tile 8192. Every
// timed configuration is first verified at a reduced size (N = 16, V = 1031, D = 64, same H /
// latent / top-k options) against the CPU in f64. On the CPU backend N is capped at 32 (the f32
// path is timed, verification as above).
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

#include "core/memory.h"
#include "core/ops/backward_head.h"
#include "core/ops/cross_entropy.h"
#include "tools/bench/bench.h"
#include "tools/bench/bench_util.h"

namespace attnlab::bench {
namespace {

// Every buffer of one forward + backward call, on one context.
struct HeadRun {
  std::vector<std::unique_ptr<Buffer>> owned;
  BackwardHeadArgs fwd;
  BackwardHeadBackwardArgs bwd;

  Tensor make(Ctx& c, DType dt, std::initializer_list<int64_t> dims, const std::vector<double>& v) {
    owned.push_back(std::make_unique<Buffer>(c.device, dt, dims));
    if (!v.empty()) from_host_f64(c, owned.back()->t(), v);
    return owned.back()->t();
  }
  Tensor make_random(Ctx& c, DType dt, std::initializer_list<int64_t> dims, uint64_t seed, double lo, double hi) {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    return make(c, dt, dims, random_values(size_t(n), seed, lo, hi));
  }

  HeadRun(Ctx& c, const BackwardHeadSpec& s, int64_t N, int64_t V, DType dt) {
    const DType A = acc_dtype(dt);
    const int64_t D = s.D, r = s.r(), dk = s.key_dim(), dv = s.value_dim(), H = s.heads;
    fwd.spec = bwd.spec = s;
    fwd.hidden = make_random(c, dt, {N, D}, 1, -1.5, 1.5);
    fwd.embed = make_random(c, dt, {V, D}, 2, -1, 1);
    std::vector<double> t = random_values(size_t(N), 3, 0, double(V) - 1);
    std::vector<int32_t> ti(t.size());
    for (size_t i = 0; i < t.size(); ++i) {
      t[i] = i % 13 == 4 ? kIgnoreIndex : std::floor(t[i]);
      ti[i] = int32_t(t[i]);
    }
    fwd.targets = make(c, DType::i32, {N}, t);
    BackwardHeadParams& p = fwd.params;
    p.embed_norm = make(c, dt, {D}, {});
    if (s.latent) p.latent_proj = make(c, dt, {r, D}, {});
    p.k_proj = make(c, dt, {dk, r}, {});
    p.v_proj = make(c, dt, {dv, r}, {});
    p.q_norm = make(c, dt, {dv}, {});
    p.q_proj = make(c, dt, {dk, dv / H}, {});
    p.beta = make(c, A, {H}, {});
    backward_head_identity_init(c, s, p);
    const size_t sb = backward_head_saved_bytes(s, N, V, dt);
    Tensor saved = make(c, DType::f32, {int64_t(sb / 4 + 1)}, {});
    fwd.saved = backward_head_carve_saved(s, N, V, dt, c.device, saved.data);
    fwd.loss = make(c, A, {N}, {});
    const size_t wb = std::max(backward_head_workspace_bytes(c, s, N, V, dt, false),
                               backward_head_workspace_bytes(c, s, N, V, dt, true));
    fwd.workspace = make(c, DType::f32, {int64_t(wb / 4 + 1)}, {});
    bwd.hidden = fwd.hidden, bwd.embed = fwd.embed, bwd.targets = fwd.targets, bwd.params = p;
    bwd.saved = fwd.saved, bwd.loss = fwd.loss, bwd.workspace = fwd.workspace;
    bwd.valid_count = double(std::max<int64_t>(1, count_valid_targets(ti.data(), N)));
    BackwardHeadGrads& g = bwd.grads;
    g.embed_norm = make(c, A, {D}, std::vector<double>(size_t(D), 0.0));
    if (s.latent) g.latent_proj = make(c, A, {r, D}, std::vector<double>(size_t(r * D), 0.0));
    g.k_proj = make(c, A, {dk, r}, std::vector<double>(size_t(dk * r), 0.0));
    g.v_proj = make(c, A, {dv, r}, std::vector<double>(size_t(dv * r), 0.0));
    g.q_norm = make(c, A, {dv}, std::vector<double>(size_t(dv), 0.0));
    g.q_proj = make(c, A, {dk, dv / H}, std::vector<double>(size_t(dk * dv / H), 0.0));
    g.beta = make(c, A, {H}, std::vector<double>(size_t(H), 0.0));
  }
  // Loss, then every gradient, on the host.
  std::vector<double> results(Ctx& c) {
    std::vector<double> out = to_host_f64(c, fwd.loss);
    for (const Tensor* t : {&bwd.grads.embed_norm, &bwd.grads.latent_proj, &bwd.grads.k_proj, &bwd.grads.v_proj,
                            &bwd.grads.q_norm, &bwd.grads.q_proj, &bwd.grads.beta})
      if (t->defined()) {
        auto v = to_host_f64(c, *t);
        out.insert(out.end(), v.begin(), v.end());
      }
    return out;
  }
};

// The same options at N = 16, V = 1031, D = 64 on this context (rounded inputs copied to the CPU
// f64 run): the worst relative error of the loss and of the gradients.
double verify_small(Ctx& ctx, BackwardHeadSpec s, DType dt) {
  const int64_t N = 16, V = 1031;
  s.D = 64, s.tile = 300;
  if (s.latent) s.latent = 48;
  s.dk = s.dv = 0;
  s.top_k = std::min<int64_t>(s.top_k, 100);
  while (s.r() % s.heads) --s.heads;
  HeadRun g(ctx, s, N, V, dt);
  Ctx cpu = Ctx::make_cpu(0);
  HeadRun r(cpu, s, N, V, DType::f64);
  // Random parameters instead of the identity (a gradient check at the identity misses
  // transposes), the same values on both sides.
  uint64_t seed = 50;
  for (auto [dst, src] : {std::pair{r.fwd.params.embed_norm, g.fwd.params.embed_norm},
                          {r.fwd.params.latent_proj, g.fwd.params.latent_proj}, {r.fwd.params.k_proj, g.fwd.params.k_proj},
                          {r.fwd.params.v_proj, g.fwd.params.v_proj}, {r.fwd.params.q_norm, g.fwd.params.q_norm},
                          {r.fwd.params.q_proj, g.fwd.params.q_proj}}) {
    if (!src.defined()) continue;
    auto v = to_host_f64(ctx, src);
    auto noise = random_values(v.size(), ++seed, -0.1, 0.1);
    for (size_t i = 0; i < v.size(); ++i) v[i] += noise[i];
    from_host_f64(ctx, src, v);
    from_host_f64(cpu, dst, to_host_f64(ctx, src));
  }
  for (auto [dst, src] : {std::pair{r.fwd.hidden, g.fwd.hidden}, {r.fwd.embed, g.fwd.embed}})
    from_host_f64(cpu, dst, to_host_f64(ctx, src));
  backward_head_forward(ctx, g.fwd);
  backward_head_backward(ctx, g.bwd);
  backward_head_forward(cpu, r.fwd);
  backward_head_backward(cpu, r.bwd);
  return rel_error(g.results(ctx), r.results(cpu));
}

void run(Runner& r, const std::vector<int64_t>& sz) {
  CHECK(sz.size() >= 3 && sz.size() <= 6, "backward_head sizes: N V D [H [latent [top_k]]]");
  Ctx& c = r.ctx();
  int64_t N = sz[0];
  const int64_t V = sz[1], D = sz[2];
  BackwardHeadSpec s;
  s.D = D, s.heads = sz.size() > 3 ? sz[3] : 1, s.latent = sz.size() > 4 ? sz[4] : 0;
  s.top_k = sz.size() > 5 ? sz[5] : 0;
  std::string note = "tile " + std::to_string(s.tile);
  if (!c.is_cuda() && N > 32) {
    N = 32;
    note += "; CPU: N capped at 32";
  }
  const double dk = double(s.key_dim()), dv = double(s.value_dim()), rr = double(s.r());
  const double nv = double(N) * double(V);
  // The GEMMs: logits twice, w·Vv, scores (+ the vocabulary side); backward: scores, dQ, dK,
  // logits, dVv, and the vocabulary-side weight and input gradients.
  const double vocab_f = 2.0 * double(V) * rr * (dk + dv) + (s.latent ? 2.0 * double(V) * double(D) * rr : 0);
  const double fwd_flops = 2 * nv * (2 * double(D) + dv + dk) + vocab_f;
  const double bwd_flops = 2 * nv * (3 * dk + double(D) + dv) + 2 * vocab_f;
  for (DType dt : bench_dtypes(c)) {
    const std::string shape = dtype_label(dt) + " N=" + std::to_string(N) + " V=" + std::to_string(V) + " D=" +
                              std::to_string(D) + " H=" + std::to_string(s.heads) +
                              (s.latent ? " r=" + std::to_string(s.latent) : "") +
                              (s.top_k ? " k=" + std::to_string(s.top_k) : "");
    Row check{"backward_head_verify", dtype_label(dt) + " N=16 V=1031 D=64"};
    check.rel_err = verify_small(c, s, dt);
    verify(r, check, dt, 1e-4, 3e-2);
    HeadRun run(c, s, N, V, dt);
    Row f{"backward_head_fwd", shape};
    f.rel_err = check.rel_err;
    f.us = r.time_us([&] { backward_head_forward(c, run.fwd); });
    f.flops = fwd_flops;
    f.peak_tflops = dt == DType::bf16 ? kPeakBf16Tflops : kPeakFp32Tflops;
    f.note = note;
    r.add(f);
    Row fb{"backward_head_fwd+bwd", shape};
    fb.rel_err = check.rel_err;
    fb.us = r.time_us([&] {
      backward_head_forward(c, run.fwd);
      backward_head_backward(c, run.bwd);
    });
    fb.flops = fwd_flops + bwd_flops;
    fb.peak_tflops = f.peak_tflops;
    fb.note = note;
    r.add(fb);
  }
}

// GPT-2 small: V = 50257, D = 768; 4096 positions (a batch of 4 x 1024), single and 4-head, a
// latent of 256 with top-k 50; and one decoding row.
ATTNLAB_BENCH("backward_head", "N V D [H [latent [top_k]]] (rows, vocabulary, hidden, heads, latent, top-k)",
              {{4096, 50257, 768}, {4096, 50257, 768, 4}, {4096, 50257, 768, 1, 256, 50}, {1, 50257, 768}}, run);

}  // namespace
}  // namespace attnlab::bench
