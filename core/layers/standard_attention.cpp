#include "core/layers/standard_attention.h"

#include <algorithm>

#include "core/nvtx.h"
#include "core/ops/kv_cache_write.h"
#include "core/ops/permute.h"
#include "core/ops/rmsnorm.h"

namespace attnlab {

namespace {

AttnNorm parse_norm(const nlohmann::ordered_json& opts, const std::string& source, double* ramp_alpha) {
  if (!opts.is_object()) return AttnNorm::softmax;
  AttnNorm norm = AttnNorm::softmax;
  if (opts.contains("norm")) {
    const auto& v = opts["norm"];
    const std::string s = v.is_string() ? v.get<std::string>() : "";
    if (s == "softmax") norm = AttnNorm::softmax;
    else if (s == "linear") norm = AttnNorm::linear;
    else if (s == "ramp") norm = AttnNorm::ramp;
    else FAIL_WITH("config '", source, "': attnlab.attention.norm is ", v.dump(), "; use softmax, linear or ramp");
  }
  if (opts.contains("ramp_alpha")) {
    const auto& v = opts["ramp_alpha"];
    CHECK(norm == AttnNorm::ramp, "config '", source, "': attnlab.attention.ramp_alpha is set but norm is not ramp");
    CHECK(v.is_number() && v.get<double>() >= 0 && v.get<double>() <= 1, "config '", source,
          "': attnlab.attention.ramp_alpha must be a number in [0, 1], got ", v.dump());
    *ramp_alpha = v.get<double>();
  }
  return norm;
}

// A view of `storage` (scratch sized for the largest use) with the given dims.
Tensor as(const Tensor& storage, std::initializer_list<int64_t> dims) {
  Tensor t(storage.data, storage.dtype, storage.device, dims, storage.name);
  CHECK(t.numel() <= storage.numel(), "scratch '", storage.name, "' ", storage.shape_str(), " cannot hold ",
        t.shape_str());
  return t;
}

}  // namespace

StandardAttention::StandardAttention(const AttentionLayerArgs& args) : name_(args.prefix) {
  const ModelConfig& c = args.config;
  check_attention_option_keys(args.options, "standard", {"variant", "norm", "ramp_alpha"}, c.source);
  D_ = c.hidden_size;
  d_ = c.head_dim;
  const int64_t Hq = c.num_heads, Hkv = c.num_kv_heads;
  q_.heads = Hq;
  k_.heads = Hkv;
  qk_norm_ = c.qk_norm;
  rope_ = c.arch != ModelArch::gpt2;
  ParamStore& ps = args.params;
  const std::string& p = args.prefix;

  if (c.arch == ModelArch::gpt2) {
    CHECK(Hq == Hkv && Hq * d_ == D_, "GPT-2 attention needs Hkv = Hq and Hq·d = D");
    // Conv1D weights: [in, out] in the checkpoint, [out, in] here. Rows of c_attn: q, k, v.
    Param* w = &ps.add(p + ".c_attn.weight", {3 * D_, D_}, true);
    Param* b = &ps.add(p + ".c_attn.bias", {3 * D_});
    q_.proj = Linear(w, b, 0, D_);
    k_.proj = Linear(w, b, D_, D_);
    v_proj_ = Linear(w, b, 2 * D_, D_);
    Param* ow = &ps.add(p + ".c_proj.weight", {D_, D_}, true);
    Param* ob = &ps.add(p + ".c_proj.bias", {D_});
    o_proj_ = Linear(ow, ob);
  } else {
    const bool bias = c.attention_bias;
    auto proj = [&](const char* nm, int64_t out, int64_t in, bool with_bias) {
      Param* w = &ps.add(p + "." + nm + ".weight", {out, in});
      Param* b = with_bias ? &ps.add(p + "." + nm + ".bias", {out}) : nullptr;
      return Linear(w, b);
    };
    q_.proj = proj("q_proj", Hq * d_, D_, bias);
    k_.proj = proj("k_proj", Hkv * d_, D_, bias);
    v_proj_ = proj("v_proj", Hkv * d_, D_, bias);
    // Qwen2's o_proj has no bias; Qwen3's follows attention_bias.
    o_proj_ = proj("o_proj", D_, Hq * d_, c.arch == ModelArch::qwen3 && bias);
    if (qk_norm_) {
      q_.norm_weight = &ps.add(p + ".q_norm.weight", {d_});
      k_.norm_weight = &ps.add(p + ".k_norm.weight", {d_});
      q_.norm_eps = k_.norm_eps = c.norm_eps;
      q_.norm = RmsNorm(p + ".q_norm", q_.norm_weight, c.norm_eps);
      k_.norm = RmsNorm(p + ".k_norm", k_.norm_weight, c.norm_eps);
    }
    rope_spec_.layout = RopeLayout::rotate_half;
    rope_spec_.theta = c.rope_theta;
    rope_spec_.rotary_dim = d_;
    rope_spec_.heads_first = true;
  }
  spec_.Hq = Hq;
  spec_.Hkv = Hkv;
  spec_.d = d_;
  spec_.causal = true;
  spec_.norm = parse_norm(args.options, c.source, &spec_.ramp_alpha);
}

void StandardAttention::plan(ActivationPlanner& p, const Ctx& ctx, DType dt, int64_t B, int64_t T) {
  B_ = B;
  T_ = T;
  const int64_t Hq = q_.heads, Hkv = k_.heads, Hmax = std::max(Hq, Hkv);
  const DType acc = acc_dtype(dt);
  const std::string& n = name_.name;
  for (Branch* b : {&q_, &k_}) {
    const std::string which = b == &q_ ? ".q" : ".k";
    b->raw = qk_norm_ ? p.saved(dt, {B, T, b->heads, d_}, n + which + "_proj_out") : Tensor();
    if (qk_norm_) b->norm.plan(p, ctx, dt, B * T * b->heads, d_);
    b->heads_first = p.saved(dt, {B, b->heads, T, d_}, n + which);
  }
  v_hf_ = p.saved(dt, {B, Hkv, T, d_}, n + ".v");
  probs_ = p.saved(dt, {B, Hq, T, T}, n + ".probs");
  const bool need_lse = spec_.norm == AttnNorm::softmax || spec_.norm == AttnNorm::ramp;
  const bool need_min = spec_.norm == AttnNorm::linear || spec_.norm == AttnNorm::ramp;
  lse_ = need_lse ? p.saved(acc, {B, Hq, T}, n + ".lse") : Tensor();
  row_min_ = need_min ? p.saved(DType::i32, {B, Hq, T}, n + ".row_min") : Tensor();
  row_sum_ = need_min ? p.saved(acc, {B, Hq, T}, n + ".row_sum") : Tensor();
  merged_ = p.saved(dt, {B, T, Hq * d_}, n + ".merged");

  tok_ = p.scratch("attn.tok", dt, {B, T, Hmax, d_});
  tok2_ = qk_norm_ ? p.scratch("attn.tok2", dt, {B, T, Hmax, d_}) : Tensor();
  out_hf_ = p.scratch("attn.out_hf", dt, {B, Hq, T, d_});
  d_merged_ = p.scratch("attn.d_merged", dt, {B, T, Hq * d_});
  d_out_hf_ = p.scratch("attn.d_out_hf", dt, {B, Hq, T, d_});
  dq_hf_ = p.scratch("attn.dq_hf", dt, {B, Hq, T, d_});
  dk_hf_ = p.scratch("attn.dk_hf", dt, {B, Hkv, T, d_});
  dv_hf_ = p.scratch("attn.dv_hf", dt, {B, Hkv, T, d_});
  const size_t ws = std::max(attention_workspace_bytes(spec_, B, T, T, dt, false, false),
                             attention_workspace_bytes(spec_, B, T, T, dt, true, false));
  workspace_ = p.scratch_bytes("attn.workspace", ws);
}

void StandardAttention::branch_forward(Ctx& ctx, Branch& b, const Tensor& x) {
  const int64_t H = b.heads;
  Tensor tok = as(tok_, {B_, T_, H, d_});
  if (qk_norm_) {
    b.proj.forward(ctx, x, b.raw.view({B_, T_, H * d_}));
    b.norm.forward(ctx, b.raw, tok);
  } else {
    b.proj.forward(ctx, x, tok.view({B_, T_, H * d_}));
  }
  if (rope_) rope_forward(ctx, {b.heads_first, tok, rope_spec_});
  else permute_forward(ctx, {b.heads_first, tok});
}

void StandardAttention::forward(Ctx& ctx, const Tensor& x, const Tensor& y) {
  NVTX_RANGE(ctx, name_.forward.c_str());
  const int64_t Hq = q_.heads, Hkv = k_.heads;
  branch_forward(ctx, q_, x);
  branch_forward(ctx, k_, x);
  Tensor v_tok = as(tok_, {B_, T_, Hkv, d_});
  v_proj_.forward(ctx, x, v_tok.view({B_, T_, Hkv * d_}));
  permute_forward(ctx, {v_hf_, v_tok});

  AttentionArgs a;
  a.spec = spec_;
  a.q = q_.heads_first;
  a.k = k_.heads_first;
  a.v = v_hf_;
  a.out = out_hf_;
  a.probs = probs_;
  a.lse = lse_;
  a.row_min = row_min_;
  a.row_sum = row_sum_;
  a.workspace = workspace_;
  attention_forward(ctx, a);

  permute_forward(ctx, {merged_.view({B_, T_, Hq, d_}), out_hf_});
  o_proj_.forward(ctx, merged_, y);
}

void StandardAttention::branch_backward(Ctx& ctx, Branch& b, const Tensor& d_heads_first, const Tensor& x,
                                        const Tensor& dx, bool accumulate_dx) {
  const int64_t H = b.heads;
  Tensor d_tok = as(tok_, {B_, T_, H, d_});
  if (rope_) rope_backward(ctx, {d_tok, d_heads_first, rope_spec_});
  else permute_backward(ctx, {d_tok, d_heads_first});
  Tensor d_proj = d_tok;
  if (qk_norm_) {
    d_proj = as(tok2_, {B_, T_, H, d_});
    b.norm.backward(ctx, d_tok, b.raw, d_proj, false);
  }
  b.proj.backward(ctx, d_proj.view({B_, T_, H * d_}), x, dx, accumulate_dx);
}

void StandardAttention::backward(Ctx& ctx, const Tensor& dy, const Tensor& x, const Tensor& dx) {
  NVTX_RANGE(ctx, name_.backward.c_str());
  const int64_t Hq = q_.heads, Hkv = k_.heads;
  o_proj_.backward(ctx, dy, merged_, d_merged_, false);
  permute_backward(ctx, {d_out_hf_, d_merged_.view({B_, T_, Hq, d_})});

  AttentionBackwardArgs a;
  a.spec = spec_;
  a.q = q_.heads_first;
  a.k = k_.heads_first;
  a.v = v_hf_;
  a.probs = probs_;
  a.lse = lse_;
  a.row_min = row_min_;
  a.row_sum = row_sum_;
  a.dout = d_out_hf_;
  a.dq = dq_hf_;
  a.dk = dk_hf_;
  a.dv = dv_hf_;
  a.workspace = workspace_;
  attention_backward(ctx, a);

  // q, k and v each run to their projection's backward before the next starts: they share the
  // token-major scratch.
  branch_backward(ctx, q_, dq_hf_, x, dx, false);
  branch_backward(ctx, k_, dk_hf_, x, dx, true);
  Tensor dv_tok = as(tok_, {B_, T_, Hkv, d_});
  permute_backward(ctx, {dv_tok, dv_hf_});
  v_proj_.backward(ctx, dv_tok.view({B_, T_, Hkv * d_}), x, dx, true);
}

// ---- KV-cache inference ------------------------------------------------------------------------

struct StandardAttention::CachedBuffers {
  Tensor q_tok, k_tok, v_tok;  // [B, T, H, d] projections (after q/k norm; k rotated in place)
  Tensor raw, rstd;            // q/k norm only: the projection output [B, T, Hmax, d] and its row statistics
  Tensor q_hf, out_hf;         // [B, Hq, T, d]
  Tensor merged;               // [B, T, Hq·d] o_proj's input
  Tensor probs;                // [B, Hq, T, S]
  Tensor lse, row_min, row_sum, workspace;
};

StandardAttention::CachedBuffers StandardAttention::cached_buffers(Arena* arena, DType dt, int64_t B, int64_t T,
                                                                   int64_t S, size_t* bytes) const {
  const int64_t Hq = q_.heads, Hkv = k_.heads, Hmax = std::max(Hq, Hkv);
  const DType acc = acc_dtype(dt);
  *bytes = 0;
  auto take = [&](DType t, std::initializer_list<int64_t> dims, const char* name) {
    const Tensor shape(nullptr, t, Device::cpu, dims, name);
    *bytes += Arena::aligned(shape.bytes());
    return arena ? arena->alloc(t, dims, name) : Tensor();
  };
  CachedBuffers c;
  c.q_tok = take(dt, {B, T, Hq, d_}, "attn.cached.q_tok");
  c.k_tok = take(dt, {B, T, Hkv, d_}, "attn.cached.k_tok");
  c.v_tok = take(dt, {B, T, Hkv, d_}, "attn.cached.v_tok");
  if (qk_norm_) {
    c.raw = take(dt, {B, T, Hmax, d_}, "attn.cached.proj_out");
    c.rstd = take(acc, {B * T * Hmax}, "attn.cached.qk_rstd");
  }
  c.q_hf = take(dt, {B, Hq, T, d_}, "attn.cached.q");
  c.out_hf = take(dt, {B, Hq, T, d_}, "attn.cached.out");
  c.merged = take(dt, {B, T, Hq * d_}, "attn.cached.merged");
  c.probs = take(dt, {B, Hq, T, S}, "attn.cached.probs");
  if (spec_.norm == AttnNorm::softmax || spec_.norm == AttnNorm::ramp) c.lse = take(acc, {B, Hq, T}, "attn.cached.lse");
  if (spec_.norm == AttnNorm::linear || spec_.norm == AttnNorm::ramp) {
    c.row_min = take(DType::i32, {B, Hq, T}, "attn.cached.row_min");
    c.row_sum = take(acc, {B, Hq, T}, "attn.cached.row_sum");
  }
  const size_t ws = attention_workspace_bytes(spec_, B, T, S, dt, false, false);
  if (ws > 0) {
    const int64_t words = int64_t((ws + 3) / 4);
    c.workspace = take(DType::i32, {words}, "attn.cached.workspace");
  }
  return c;
}

size_t StandardAttention::cached_scratch_bytes(DType dt, int64_t B, int64_t T, int64_t S) const {
  size_t bytes = 0;
  cached_buffers(nullptr, dt, B, T, S, &bytes);
  return bytes;
}

void StandardAttention::forward_cached(Ctx& ctx, const CachedAttentionArgs& a) {
  NVTX_RANGE(ctx, name_.forward.c_str());
  CHECK(a.x.defined() && a.x.ndim == 3 && a.x.dim(2) == D_, "attention '", name_.name,
        "' forward_cached: x must be [B, T, ", D_, "], got ", a.x.shape_str());
  CHECK(a.scratch, "attention '", name_.name, "' forward_cached: no scratch arena");
  const int64_t B = a.x.dim(0), T = a.x.dim(1), S = a.keys, Hq = q_.heads, Hkv = k_.heads;
  const DType dt = a.x.dtype;
  CHECK(a.positions.defined() && a.positions.ndim == 2 && a.positions.dim(0) == B && a.positions.dim(1) == T,
        "attention '", name_.name, "' forward_cached: positions must be [", B, ", ", T, "], got ",
        a.positions.shape_str());
  size_t bytes = 0;
  CachedBuffers c = cached_buffers(a.scratch, dt, B, T, S, &bytes);

  // q and k: projection → (per-head RMSNorm) → RoPE at the given positions. q goes heads-first for
  // the attention op; k stays token-major (rotated in place), the layout the cache write reads.
  RopeSpec rope = rope_spec_;
  rope.positions = a.positions;
  for (Branch* b : {&q_, &k_}) {
    const Tensor& tok = b == &q_ ? c.q_tok : c.k_tok;
    const int64_t H = b->heads;
    if (qk_norm_) {
      Tensor raw = as(c.raw, {B, T, H, d_});
      b->proj.forward(ctx, a.x, raw.view({B, T, H * d_}));
      RmsNormArgs n;
      n.y = tok;
      n.rstd = as(c.rstd, {B * T * H});
      n.x = raw;
      n.weight = b->norm_weight->value;
      n.eps = b->norm_eps;
      rmsnorm_forward(ctx, n);
    } else {
      b->proj.forward(ctx, a.x, tok.view({B, T, H * d_}));
    }
    if (b == &q_) {
      rope.heads_first = true;
      if (rope_) rope_forward(ctx, {c.q_hf, tok, rope});
      else permute_forward(ctx, {c.q_hf, tok});
    } else if (rope_) {
      rope.heads_first = false;
      rope_forward(ctx, {tok, tok, rope});
    }
  }
  v_proj_.forward(ctx, a.x, c.v_tok.view({B, T, Hkv * d_}));
  kv_cache_write_forward(ctx, {a.k_cache, c.k_tok, a.positions});
  kv_cache_write_forward(ctx, {a.v_cache, c.v_tok, a.positions});

  AttentionArgs at;
  at.spec = spec_;
  at.q = c.q_hf;
  at.k = a.k_cache;
  at.v = a.v_cache;
  at.key_lengths = a.key_lengths;
  at.query_offset = a.query_offset;
  at.out = c.out_hf;
  at.probs = c.probs;
  at.lse = c.lse;
  at.row_min = c.row_min;
  at.row_sum = c.row_sum;
  at.workspace = c.workspace;
  attention_forward(ctx, at);

  permute_forward(ctx, {c.merged.view({B, T, Hq, d_}), c.out_hf});
  o_proj_.forward(ctx, c.merged, a.y);
}

std::unique_ptr<AttentionLayer> make_standard_attention(const AttentionLayerArgs& args) {
  return std::make_unique<StandardAttention>(args);
}

}  // namespace attnlab
