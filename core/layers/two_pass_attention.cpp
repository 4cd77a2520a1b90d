#include "core/layers/two_pass_attention.h"

#include <algorithm>
#include <cmath>

#include "core/ops/kv_cache_write.h"
#include "core/ops/lm_entropy.h"
#include "core/ops/matmul.h"
#include "core/ops/permute.h"
#include "core/ops/scale.h"

namespace attnlab {

namespace {

// Vocabulary rows per entropy tile: a [rows, tile] fp32 scratch (2048 tokens: 32 MiB).
constexpr int64_t kEntropyTile = 4096;
const char* const kGateNames[kNumGates] = {"gate_q", "gate_k", "gate_v"};

}  // namespace

// One call's draft buffers (training: the layer's scratch slots; cached: the call's arena).
struct TwoPassAttention::Draft {
  Tensor e;            // [rows] acc: entropies
  Tensor ent_scratch;  // [rows, tile] acc
  Tensor ent_state;    // [rows, 3] acc
  Tensor o;            // [B, Hq, T, 1]: P̃_h e per head
  Tensor lse;          // [B, Hq, T] acc
  Tensor ws;           // the draft attention's workspace (its map included)
};

TwoPassAttention::TwoPassAttention(const AttentionLayerArgs& args) : StandardAttention(args) {
  const ModelConfig& c = args.config;
  const AttentionOptions o = attention_options_from_json(args.options, c.source);
  draft_keys_ = o.cached_gather == "draft_keys";
  draft_spec_.Hq = c.num_heads;
  draft_spec_.Hkv = c.num_kv_heads;
  draft_spec_.d = c.head_dim;
  draft_spec_.dv = 1;
  draft_spec_.causal = o.draft_mask == "causal";
  draft_spec_.norm = AttnNorm::softmax;

  const int64_t D = layout().D;
  const double bound = 1.0 / std::sqrt(double(D + 1));  // nn.Linear's default for fan_in = D + 1
  for (int g = 0; g < kNumGates; ++g) {
    const std::string p = args.prefix + "." + kGateNames[g];
    Gate& gt = gates_[g];
    gt.fc1_w = &args.params.add(p + ".fc1.weight", {kGateHidden, D + 1});
    gt.fc1_b = &args.params.add(p + ".fc1.bias", {kGateHidden});
    gt.fc2_w = &args.params.add(p + ".fc2.weight", {D, kGateHidden});
    gt.fc2_b = &args.params.add(p + ".fc2.bias", {D});
    gt.fc1_w->init = ParamInit::uniform_added(bound);
    gt.fc1_b->init = ParamInit::uniform_added(bound);
    // METHODS §1.3: the last Linear starts at zero, so adj = 0 and the layer is the pretrained one.
    gt.fc2_w->init = ParamInit::zeros_added();
    gt.fc2_b->init = ParamInit::zeros_added();
  }
}

void TwoPassAttention::bind_model(const AttentionModelRefs& refs) {
  CHECK(refs.lm_head_weight, "attention '", name(), "': the two_pass variant needs the model's lm_head (its ",
        "entropy gathers the uncertainty), and the model bound none");
  CHECK(refs.lm_head_weight->shape.size() == 2 && refs.lm_head_weight->shape[1] == layout().D, "attention '",
        name(), "': the lm_head '", refs.lm_head_weight->name, "' must be [V, ", layout().D, "]");
  head_ = refs.lm_head_weight;
}

Tensor TwoPassAttention::lm_head() const {
  CHECK(head_, "attention '", name(), "': two_pass used before the model bound its lm_head");
  return head_->value;
}

int64_t TwoPassAttention::vocab() const { return head_->shape[0] - head_->pad_rows; }

void TwoPassAttention::check_dtype(DType dt) const {
  CHECK(dt == DType::f32 || dt == DType::f64, "attention '", name(), "': the two_pass variant runs in f32 or f64, ",
        "not ", dtype_name(dt), " (the entropies it gathers are the draft attention's values and attnlab has no cast ",
        "op to bf16 yet); load the model in f32 (--dtype f32)");
}

GateParams TwoPassAttention::gate_params(int g) const {
  const Gate& gt = gates_[g];
  return {gt.fc1_w->value, gt.fc1_b->value, gt.fc2_w->value, gt.fc2_b->value};
}

bool TwoPassAttention::probing(const Ctx& ctx) const { return ctx.probes && ctx.probes->wants_gates(layer_); }

// ---- training path -----------------------------------------------------------------------------

void TwoPassAttention::plan_attend(ActivationPlanner& p, DType dt, int64_t B, int64_t T) {
  StandardAttention::plan_attend(p, dt, B, T);
  check_dtype(dt);
  B_ = B;
  T_ = T;
  const int64_t D = layout().D, rows = B * T, Hq = draft_spec_.Hq, Hkv = draft_spec_.Hkv;
  const DType acc = acc_dtype(dt);
  const std::string& n = name_.name;
  u_ = p.saved(acc, {rows}, n + ".gather_u");
  a1_ = p.saved(acc, {rows, kNumGates, kGateHidden}, n + ".gate_a1");
  const int64_t tile = std::min<int64_t>(kEntropyTile, std::max<int64_t>(1, head_ ? vocab() : kEntropyTile));
  e_ = p.scratch("two_pass.entropy", acc, {rows});
  ent_scratch_ = p.scratch("two_pass.entropy_tile", acc, {rows, tile});
  ent_state_ = p.scratch("two_pass.entropy_state", acc, {rows, 3});
  draft_v_ = p.scratch("two_pass.draft_v", dt, {B, Hkv, T, 1});
  draft_o_ = p.scratch("two_pass.draft_o", dt, {B, Hq, T, 1});
  draft_lse_ = p.scratch("two_pass.draft_lse", acc, {B, Hq, T});
  draft_ws_ = p.scratch_bytes("two_pass.draft_ws", attention_workspace_bytes(draft_spec_, B, T, T, dt, false, false, true));
  for (int g = 0; g < kNumGates; ++g) {
    xg_[g] = p.scratch(std::string("two_pass.x_") + "qkv"[g], dt, {B, T, D});
    dxg_[g] = p.scratch(std::string("two_pass.dx_") + "qkv"[g], dt, {B, T, D});
  }
  bwd_scratch_ = p.scratch("two_pass.gate_scratch", acc, {rows, kGateScratchCols});
  adj_norm_ = p.scratch("two_pass.adj_norm", acc, {rows, kNumGates});
  third_ = p.scratch("two_pass.third", acc, {kNumGates});
  magnitude_ = p.scratch("two_pass.magnitude", acc, {rows});
}

void TwoPassAttention::entropy(Ctx& ctx, const Tensor& x, const Draft& d) const {
  LmEntropyArgs a;
  a.x = x.view({x.numel() / layout().D, layout().D});
  a.emb = lm_head();
  a.entropy = d.e;
  a.scratch = d.ent_scratch;
  a.state = d.ent_state;
  a.vocab = vocab();
  lm_entropy_forward(ctx, a);
}

void TwoPassAttention::gather(Ctx& ctx, const Tensor& q, const Tensor& k, const Tensor& values, int64_t keys,
                              const Tensor& key_lengths, int64_t query_offset, const Draft& d,
                              const Tensor& u) const {
  const int64_t B = q.dim(0), Hq = draft_spec_.Hq, T = q.dim(2);
  AttentionArgs a;
  a.spec = draft_spec_;
  a.q = q;
  a.k = k;
  a.v = values;
  a.keys = keys;
  a.key_lengths = key_lengths;
  a.query_offset = query_offset;
  a.out = d.o;
  a.lse = d.lse;
  a.workspace = d.ws;
  attention_forward(ctx, a);
  // u = (1/Hq) Σ_h o_h: heads summed in order, each scaled first (the same rounding for every row).
  const Tensor o = d.o.view({B * Hq, T});
  const Tensor ub = u.view({B, T});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hq; ++h)
      scale_forward(ctx, {ub.slice0(b, b + 1), o.slice0(b * Hq + h, b * Hq + h + 1), 1.0 / double(Hq), h ? 1.0 : 0.0});
}

void TwoPassAttention::run_gates(Ctx& ctx, const Tensor& x, const Tensor& u, const Tensor* y, const Tensor& a1,
                                 const Tensor& adj_norm, const Tensor& third, const Tensor& magnitude,
                                 bool probe) const {
  const int64_t D = layout().D, rows = x.numel() / D;
  GateMlpArgs g;
  g.x = x.view({rows, D});
  g.u = u;
  for (int i = 0; i < kNumGates; ++i) {
    g.gate[i] = gate_params(i);
    g.y[i] = y[i].view({rows, D});
  }
  g.a1 = a1;
  if (probe) g.adj_norm = adj_norm;
  gate_mlp_forward(ctx, g);
  if (!probe) return;
  // m_t = (‖adj_q‖ + ‖adj_k‖ + ‖adj_v‖)/3: [rows, 3] · [3, 1] of thirds.
  from_host_f64(ctx, third, std::vector<double>(kNumGates, 1.0 / kNumGates));
  MatmulArgs m;
  m.c = magnitude.view({rows, 1});
  m.a = adj_norm;
  m.b = third.view({kNumGates, 1});
  m.M = rows;
  m.N = 1;
  m.K = kNumGates;
  matmul(ctx, m);
  ctx.probes->take_gates(ctx, layer_, magnitude.view({x.dim(0), x.dim(1)}));
}

GatedInputs TwoPassAttention::gate_forward(Ctx& ctx, const DraftInputs& in) {
  const int64_t B = B_, T = T_, Hkv = draft_spec_.Hkv;
  Draft d{e_, ent_scratch_, ent_state_, draft_o_, draft_lse_, draft_ws_};
  entropy(ctx, in.x, d);
  // The draft's values: e repeated for every kv head ([B, Hkv, T, 1]).
  const Tensor e = e_.view({B, T}), v = draft_v_.view({B * Hkv, T});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hkv; ++h) scale_forward(ctx, {v.slice0(b * Hkv + h, b * Hkv + h + 1), e.slice0(b, b + 1)});
  gather(ctx, in.q, in.k, draft_v_, T, Tensor(), 0, d, u_);
  run_gates(ctx, in.x, u_, xg_, a1_, adj_norm_, third_, magnitude_, probing(ctx));
  return {xg_[0], xg_[1], xg_[2]};
}

GatedInputs TwoPassAttention::gate_inputs_again(Ctx& ctx, const Tensor& x) {
  // Recomputed from the saved u (deterministic: the same values as the forward's), so the layer
  // saves 48 numbers per token instead of three [B, T, D] copies of its input.
  run_gates(ctx, x, u_, xg_, a1_, Tensor(), Tensor(), Tensor(), false);
  return {xg_[0], xg_[1], xg_[2]};
}

void TwoPassAttention::gate_backward(Ctx& ctx, const Tensor& x, const GatedInputs& din, const Tensor& dx) {
  const int64_t D = layout().D, rows = B_ * T_;
  GateMlpBackwardArgs g;
  g.x = x.view({rows, D});
  g.u = u_;
  g.a1 = a1_;
  const Tensor dy[kNumGates] = {din.q, din.k, din.v};
  for (int i = 0; i < kNumGates; ++i) {
    g.gate[i] = gate_params(i);
    g.dy[i] = dy[i].view({rows, D});
    g.da3[i] = g.dy[i];  // in place: the op reads each element before it writes it
    const Gate& gt = gates_[i];
    g.grad[i] = {gt.fc1_w->grad, gt.fc1_b->grad, gt.fc2_w->grad, gt.fc2_b->grad};
  }
  g.dx = dx.view({rows, D});
  g.scratch = bwd_scratch_;
  gate_mlp_backward(ctx, g);
}

// ---- KV-cache inference ------------------------------------------------------------------------

bool TwoPassAttention::draft_needed(const CachedAttentionArgs& a) const { return draft_keys_ || a.query_offset == 0; }

namespace {

// Counts (arena null) or takes (arena set) the call's buffers in one place.
struct Taker {
  Arena* arena;
  size_t bytes = 0;
  Tensor operator()(DType t, std::initializer_list<int64_t> dims, const char* name) {
    const Tensor shape(nullptr, t, Device::cpu, dims, name);
    bytes += Arena::aligned(shape.bytes());
    return arena ? arena->alloc(t, dims, name) : Tensor();
  }
  Tensor bytes_of(size_t n, const char* name) {
    bytes += Arena::aligned(n);
    return arena ? arena->alloc(DType::i32, {int64_t((n + 3) / 4)}, name) : Tensor();
  }
};

}  // namespace

size_t TwoPassAttention::gate_cached_bytes(DType dt, int64_t B, int64_t T, int64_t S) const {
  check_dtype(dt);
  const int64_t D = layout().D, rows = B * T, Hq = draft_spec_.Hq, Hkv = draft_spec_.Hkv, d = draft_spec_.d;
  const DType acc = acc_dtype(dt);
  Taker take{nullptr};
  for (int g = 0; g < kNumGates; ++g) take(dt, {B, T, D}, "x_g");
  take(acc, {rows}, "u");
  take(acc, {rows, kNumGates, kGateHidden}, "a1");
  take(acc, {rows}, "e");
  take(acc, {rows, std::min<int64_t>(kEntropyTile, vocab())}, "tile");
  take(acc, {rows, 3}, "state");
  take(dt, {B, Hkv, T, d}, "k_hf");
  take(dt, {B, Hkv, T, 1}, "v");
  take(dt, {B, Hq, T, 1}, "o");
  take(acc, {B, Hq, T}, "lse");
  take.bytes_of(attention_workspace_bytes(draft_spec_, B, T, std::max(S, T), dt, false, false, true), "ws");
  take(acc, {rows, kNumGates}, "adj_norm");
  take(acc, {kNumGates}, "third");
  take(acc, {rows}, "magnitude");
  return take.bytes;
}

GatedInputs TwoPassAttention::gate_forward_cached(Ctx& ctx, const DraftInputs& in) {
  const CachedAttentionArgs& a = *in.cached;
  const int64_t B = a.x.dim(0), T = a.x.dim(1), D = layout().D, rows = B * T;
  const int64_t Hq = draft_spec_.Hq, Hkv = draft_spec_.Hkv, dh = draft_spec_.d;
  const DType dt = a.x.dtype, acc = acc_dtype(dt);
  check_dtype(dt);
  Taker take{a.scratch};
  GatedInputs out;
  out.q = take(dt, {B, T, D}, "two_pass.cached.x_q");
  out.k = take(dt, {B, T, D}, "two_pass.cached.x_k");
  out.v = take(dt, {B, T, D}, "two_pass.cached.x_v");
  const size_t mark = a.scratch->used();  // everything below is given back before the gated pass
  const Tensor u = take(acc, {rows}, "two_pass.cached.u");
  const Tensor a1 = take(acc, {rows, kNumGates, kGateHidden}, "two_pass.cached.a1");
  Draft d;
  d.e = take(acc, {rows}, "two_pass.cached.entropy");
  d.ent_scratch = take(acc, {rows, std::min<int64_t>(kEntropyTile, vocab())}, "two_pass.cached.entropy_tile");
  d.ent_state = take(acc, {rows, 3}, "two_pass.cached.entropy_state");
  entropy(ctx, a.x, d);

  if (!draft_needed(a)) {
    // METHODS §1.3 step 7, cached decoding (ORIGINAL): u_t = e_t, the token's own entropy.
    scale_forward(ctx, {u, d.e});
  } else {
    d.o = take(dt, {B, Hq, T, 1}, "two_pass.cached.draft_o");
    d.lse = take(acc, {B, Hq, T}, "two_pass.cached.draft_lse");
    if (!draft_keys_) {
      // A prefill: the draft attends over this call's own tokens (as the full forward does).
      const Tensor k_hf = take(dt, {B, Hkv, T, dh}, "two_pass.cached.draft_k");
      permute_forward(ctx, {k_hf, in.k});
      const Tensor v = take(dt, {B, Hkv, T, 1}, "two_pass.cached.draft_v");
      const Tensor e = d.e.view({B, T}), vv = v.view({B * Hkv, T});
      for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < Hkv; ++h)
          scale_forward(ctx, {vv.slice0(b * Hkv + h, b * Hkv + h + 1), e.slice0(b, b + 1)});
      d.ws = take.bytes_of(attention_workspace_bytes(draft_spec_, B, T, T, dt, false, false, true), "two_pass.cached.ws");
      gather(ctx, in.q, k_hf, v, T, a.key_lengths, 0, d, u);
    } else {
      // The layer's own draft caches (the model's cache holds the gated keys): sized on first use
      // and whenever the batch or the capacity changes; zeroed so unwritten slots are finite.
      const int64_t S_cap = a.k_cache.dim(2);
      const Tensor& kc = draft_k_cache_.t();
      if (!kc.defined() || kc.dim(0) != B || kc.dim(2) != S_cap || kc.dtype != dt || kc.device != a.x.device) {
        draft_k_cache_ = Buffer(a.x.device, dt, {B, Hkv, S_cap, dh}, "two_pass.draft_k_cache");
        draft_e_cache_ = Buffer(a.x.device, dt, {B, 1, S_cap, 1}, "two_pass.draft_e_cache");
        draft_v_cache_ = Buffer(a.x.device, dt, {B, Hkv, S_cap, 1}, "two_pass.draft_v_cache");
        zero_tensor(ctx, draft_k_cache_);
        zero_tensor(ctx, draft_e_cache_);
        zero_tensor(ctx, draft_v_cache_);
      }
      kv_cache_write_forward(ctx, {draft_k_cache_, in.k, a.positions});
      kv_cache_write_forward(ctx, {draft_e_cache_, d.e.view({B, T, 1, 1}), a.positions});
      const Tensor ec = draft_e_cache_.t().view({B, S_cap}), vc = draft_v_cache_.t().view({B * Hkv, S_cap});
      for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < Hkv; ++h)
          scale_forward(ctx, {vc.slice0(b * Hkv + h, b * Hkv + h + 1), ec.slice0(b, b + 1)});
      d.ws = take.bytes_of(attention_workspace_bytes(draft_spec_, B, T, a.keys, dt, false, false, true),
                           "two_pass.cached.ws");
      gather(ctx, in.q, draft_k_cache_, draft_v_cache_, a.keys, a.key_lengths, a.query_offset, d, u);
    }
  }
  const bool probe = probing(ctx);
  const Tensor adj_norm = probe ? take(acc, {rows, kNumGates}, "two_pass.cached.adj_norm") : Tensor();
  const Tensor third = probe ? take(acc, {kNumGates}, "two_pass.cached.third") : Tensor();
  const Tensor magnitude = probe ? take(acc, {rows}, "two_pass.cached.magnitude") : Tensor();
  const Tensor y[kNumGates] = {out.q, out.k, out.v};
  run_gates(ctx, a.x, u, y, a1, adj_norm, third, magnitude, probe);
  a.scratch->rewind(mark);
  return out;
}

std::unique_ptr<AttentionLayer> make_two_pass_attention(const AttentionLayerArgs& args) {
  return std::make_unique<TwoPassAttention>(args);
}

}  // namespace attnlab
