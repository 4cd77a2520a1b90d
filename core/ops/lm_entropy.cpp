#include "core/ops/lm_entropy.h"

#include <algorithm>

#include "core/dispatch.h"
#include "core/nvtx.h"
#include "core/ops/lm_entropy_math.h"
#include "core/ops/matmul.h"

namespace attnlab {

const char* lm_entropy_mode_name(LmEntropyMode m) { return m == LmEntropyMode::exact ? "exact" : "one_pass"; }

namespace {

// One tile of logits folded into the row states (see the header for the state's columns).
template <class A>
void tile_cpu(const LmEntropyArgs& a, int64_t rows, int64_t width, int64_t ld, LmEntropyPass pass, bool first,
              bool last) {
  const A* logits = a.scratch.ptr<A>();
  A* state = a.state.ptr<A>();
  A* entropy = a.entropy.ptr<A>();
#pragma omp parallel for schedule(static) if (rows * width > 65536)
  for (int64_t r = 0; r < rows; ++r) {
    const A* z = logits + r * ld;
    A* st = state + r * 3;
    if (pass == LmEntropyPass::stats) {
      EntState<A> s = ent_empty<A>();
      for (int64_t c = 0; c < width; ++c) s = ent_push(s, z[c]);
      if (!first) s = ent_merge(EntState<A>{st[0], st[1], st[2]}, s);
      st[0] = s.max, st[1] = s.sum, st[2] = s.wsum;
      if (last) entropy[r] = ent_plain(s);
    } else {
      const A lse = st[0] + ce_log(st[1]);
      A acc = 0;
      for (int64_t c = 0; c < width; ++c) acc += ent_term(z[c], lse, A(kLmEntropyEps));
      st[2] = first ? acc : st[2] + acc;
      if (last) entropy[r] = -st[2];
    }
  }
}

}  // namespace

void lm_entropy_forward(Ctx& ctx, const LmEntropyArgs& a) {
  NVTX_RANGE(ctx, "lm_entropy_forward");
  const char* op = "lm_entropy_forward";
  CHECK(a.x.defined() && a.x.ndim >= 1 && a.x.dim(-1) > 0, op, ": x must be [T, D] with D >= 1, got '",
        a.x.name, "' ", a.x.shape_str());
  const int64_t D = a.x.dim(-1), T = a.x.numel() / D;
  CHECK(a.emb.defined() && a.emb.ndim == 2 && a.emb.dim(1) == D, op, ": emb '", a.emb.name, "' ",
        a.emb.shape_str(), " must be [Vp, D] with D = ", D, " (x's last dim)");
  CHECK(a.emb.dtype == a.x.dtype, op, ": emb is ", dtype_name(a.emb.dtype), " but x is ", dtype_name(a.x.dtype),
        "; they must share a dtype");
  const int64_t vp = a.emb.dim(0);
  CHECK(a.vocab >= 0 && a.vocab <= vp, op, ": vocab ", a.vocab, " must be in [0, ", vp,
        "] (the first `vocab` rows of emb are tokens; 0 = all)");
  const int64_t V = a.vocab == 0 ? vp : a.vocab;
  CHECK(V >= 1, op, ": the vocabulary is empty (emb has no rows)");
  const DType acc = acc_dtype(a.x.dtype);
  auto check_acc = [&](const Tensor& t, const char* role) {
    CHECK(t.defined(), op, ": ", role, " is not set");
    CHECK(t.dtype == acc, op, ": ", role, " '", t.name, "' is ", dtype_name(t.dtype), "; it must be ",
          dtype_name(acc), " (the accumulation dtype of ", dtype_name(a.x.dtype), " inputs)");
  };
  check_acc(a.entropy, "entropy");
  check_acc(a.scratch, "scratch");
  check_acc(a.state, "state");
  CHECK(a.entropy.numel() == T, op, ": entropy '", a.entropy.name, "' ", a.entropy.shape_str(), " must hold T=", T,
        " values");
  check_shape(a.state, {T, 3});
  CHECK(a.scratch.ndim == 2 && a.scratch.dim(0) == T && a.scratch.dim(1) >= 1, op, ": scratch '", a.scratch.name,
        "' ", a.scratch.shape_str(), " must be [T=", T, ", tile] with tile >= 1");
  check_device(ctx.device, {&a.x, &a.emb, &a.entropy, &a.scratch, &a.state});
  if (T == 0) return;
  if (!ctx.is_cuda()) dispatch_cpu_float(a.x.dtype, op, [](auto) {});  // a clear message for bf16 on the CPU

  const int64_t tile = a.scratch.dim(1);
  const size_t row_bytes = size_t(D) * dtype_size(a.emb.dtype);
  const int passes = a.mode == LmEntropyMode::exact ? 2 : 1;
  for (int p = 0; p < passes; ++p) {
    const LmEntropyPass pass = p == 0 ? LmEntropyPass::stats : LmEntropyPass::weighted_log;
    for (int64_t v0 = 0; v0 < V; v0 += tile) {
      const int64_t w = std::min(tile, V - v0);
      MatmulArgs m;  // logits[:, 0:w] = x · E[v0:v0+w]ᵀ
      m.c = a.scratch;
      m.a = a.x;
      m.b = Tensor(static_cast<char*>(a.emb.data) + size_t(v0) * row_bytes, a.emb.dtype, a.emb.device, {w, D},
                   a.emb.name);
      m.M = T, m.N = w, m.K = D;
      m.trans_b = true;
      m.ldc = tile;
      m.allow_tf32 = a.allow_tf32;
      matmul(ctx, m);
      const bool first = v0 == 0, last = p == passes - 1 && v0 + w == V;
      if (ctx.is_cuda()) {
        ATTNLAB_CUDA_DISPATCH(cuda::lm_entropy_tile(ctx, a, T, w, tile, pass, first, last));
        continue;
      }
      dispatch_cpu_float(acc, op, [&](auto tag) { tile_cpu<decltype(tag)>(a, T, w, tile, pass, first, last); });
    }
  }
}

}  // namespace attnlab
