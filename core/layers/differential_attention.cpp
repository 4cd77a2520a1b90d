#include "core/layers/differential_attention.h"

#include <algorithm>
#include <cmath>

#include "core/memory.h"
#include "core/nvtx.h"
#include "core/ops/matmul.h"
#include "core/ops/permute.h"

namespace attnlab {

namespace {

Tensor as(const Tensor& storage, std::initializer_list<int64_t> dims) {
  Tensor t(storage.data, storage.dtype, storage.device, dims, storage.name);
  CHECK(t.numel() <= storage.numel(), "scratch '", storage.name, "' ", storage.shape_str(), " cannot hold ",
        t.shape_str());
  return t;
}

// Half `half` (0: Q1/K1, 1: Q2/K2) of a [2, B·H, T, d] pair tensor, as [B, H, T, d].
Tensor half_of(const Tensor& pair, int half, int64_t B, int64_t H, int64_t T, int64_t d) {
  return pair.slice0(half, half + 1).view({B, H, T, d});
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// grad += delta (host round trip; the vectors are d or H long).
void accumulate_grad(Ctx& ctx, Param* p, const std::vector<double>& delta) {
  if (!p || !p->grad.defined()) return;
  std::vector<double> g = to_host_f64(ctx, p->grad);
  for (size_t i = 0; i < g.size(); ++i) g[i] += delta[i];
  from_host_f64(ctx, p->grad, g);
}

}  // namespace

double diff_lambda_init(int64_t layer) { return 0.8 - 0.6 * std::exp(-0.3 * double(layer)); }

DifferentialAttention::DifferentialAttention(const AttentionLayerArgs& args) : name_(args.prefix), layer_(args.layer) {
  const ModelConfig& c = args.config;
  check_attention_option_keys(args.options, "differential", {"variant", "preset", "lambda_init"}, c.source);
  if (args.options.is_object() && args.options.contains("preset")) {
    const auto& v = args.options["preset"];
    const std::string s = v.is_string() ? v.get<std::string>() : "";
    if (s == "paper") preset_ = Preset::paper;
    else if (s == "seed") preset_ = Preset::seed;
    else FAIL_WITH("config '", c.source, "': attnlab.attention.preset is ", v.dump(), "; use paper or seed");
  }
  // The layer applies no positional rotation: on a RoPE model it would silently drop positions.
  CHECK(c.rope_theta == 0, "config '", c.source, "': the differential attention layer does not implement RoPE "
        "(rope_theta ", c.rope_theta, "); use it in models with learned positions (the scratch decoders, GPT-2)");
  D_ = c.hidden_size;
  d_ = c.head_dim;
  ParamStore& ps = args.params;
  const std::string& p = args.prefix;
  auto linear = [&](const char* nm, int64_t out, int64_t in, bool bias) {
    Param* w = &ps.add(p + "." + nm + ".weight", {out, in});
    Param* b = bias ? &ps.add(p + "." + nm + ".bias", {out}) : nullptr;
    return Linear(w, b);
  };
  if (preset_ == Preset::paper) {
    CHECK(c.num_heads % 2 == 0, "config '", c.source, "': the paper's differential attention halves num_heads (",
          c.num_heads, "), which must be even");
    CHECK(!args.options.is_object() || !args.options.contains("lambda_init"), "config '", c.source,
          "': lambda_init is the seed preset's constant; the paper preset uses 0.8 − 0.6·exp(−0.3·l)");
    H_ = c.num_heads / 2;
    dv_ = 2 * d_;
    lambda_init_ = diff_lambda_init(layer_);
    q_proj_ = linear("q_proj", H_ * 2 * d_, D_, false);
    k_proj_ = linear("k_proj", H_ * 2 * d_, D_, false);
    v_proj_ = linear("v_proj", H_ * dv_, D_, false);
    o_weight_ = &ps.add(p + ".o_proj.weight", {D_, H_ * dv_});
    const char* names[4] = {"lambda_q1", "lambda_k1", "lambda_q2", "lambda_k2"};
    for (int i = 0; i < 4; ++i) {
      lambda_vecs_[i] = &ps.add(p + "." + names[i], {d_});
      lambda_vecs_[i]->decay = false;
    }
    Param* g = &ps.add(p + ".subln.weight", {dv_});
    sub_norm_ = RmsNorm(p + ".subln", g, 1e-5);
  } else {
    H_ = c.num_heads;
    dv_ = d_;
    lambda_init_ = 0.8;
    if (args.options.is_object() && args.options.contains("lambda_init")) {
      const auto& v = args.options["lambda_init"];
      CHECK(v.is_number(), "config '", c.source, "': attnlab.attention.lambda_init must be a number, got ", v.dump());
      lambda_init_ = v.get<double>();
    }
    q_proj_ = linear("q_proj", H_ * 2 * d_, D_, true);
    k_proj_ = linear("k_proj", H_ * 2 * d_, D_, true);
    v_proj_ = linear("v_proj", H_ * dv_, D_, true);
    o_proj_ = linear("out_proj", D_, H_ * dv_, true);
    lambda_raw_ = &ps.add(p + ".lambda", {H_});
    lambda_raw_->decay = false;
    Param* w = &ps.add(p + ".out_norm.weight", {D_});
    Param* b = &ps.add(p + ".out_norm.bias", {D_});
    out_norm_ = LayerNorm(p + ".out_norm", w, b, 1e-5);
  }
  out_scale_ = 1.0 - lambda_init_;
  spec_.Hq = spec_.Hkv = H_;
  spec_.d = d_;
  spec_.dv = dv_;
  spec_.causal = true;
  spec_.differential = true;
}

void DifferentialAttention::plan(ActivationPlanner& p, const Ctx& ctx, DType dt, int64_t B, int64_t T) {
  B_ = B;
  T_ = T;
  const DType acc = acc_dtype(dt);
  const std::string& n = name_.name;
  const int64_t BH = B * H_;
  q_pair_ = p.saved(dt, {2, BH, T, d_}, n + ".q12");
  k_pair_ = p.saved(dt, {2, BH, T, d_}, n + ".k12");
  v_hf_ = p.saved(dt, {B, H_, T, dv_}, n + ".v");
  probs_ = p.saved(dt, {B, H_, T, T}, n + ".probs1");
  probs2_ = p.saved(dt, {B, H_, T, T}, n + ".probs2");
  lse_ = p.saved(acc, {B, H_, T}, n + ".lse1");
  lse2_ = p.saved(acc, {B, H_, T}, n + ".lse2");
  lambda_ = p.saved(acc, {preset_ == Preset::paper ? 1 : H_}, n + ".lambda");
  one_ = p.saved(dt, {1, 1}, n + ".one");
  if (preset_ == Preset::paper) {
    out_hf_ = p.saved(dt, {B, H_, T, dv_}, n + ".out");
    sub_norm_.plan(p, ctx, dt, BH * T, dv_);
    merged_ = p.saved(dt, {B, T, H_ * dv_}, n + ".merged");
    normed_ = p.scratch("dattn.normed", dt, {B, H_, T, dv_});
  } else {
    merged_ = p.saved(dt, {B, T, H_ * dv_}, n + ".merged");
    lin_out_ = p.saved(dt, {B, T, D_}, n + ".lin_out");
    out_norm_.plan(p, ctx, dt, B * T, D_);
    normed_ = p.scratch("dattn.normed", dt, {B, T, D_});
  }
  tok_ = p.scratch("dattn.tok", dt, {B, T, H_ * 2 * d_});
  tok2_ = p.scratch("dattn.tok2", dt, {B, T, H_ * 2 * d_});
  d_merged_ = p.scratch("dattn.d_merged", dt, {B, T, std::max(H_ * dv_, D_)});
  d_out_hf_ = p.scratch("dattn.d_out_hf", dt, {B, H_, T, dv_});
  dq_pair_ = p.scratch("dattn.dq12", dt, {2, BH, T, d_});
  dk_pair_ = p.scratch("dattn.dk12", dt, {2, BH, T, d_});
  dv_hf_ = p.scratch("dattn.dv", dt, {B, H_, T, dv_});
  dlambda_ = p.scratch("dattn.dlambda", acc, {preset_ == Preset::paper ? 1 : H_});
  const size_t ws = std::max(attention_workspace_bytes(spec_, B, T, T, dt, false, false),
                             attention_workspace_bytes(spec_, B, T, T, dt, true, false));
  workspace_ = p.scratch_bytes("dattn.workspace", ws);
}

template <class Args>
void DifferentialAttention::fill_attention_inputs(Args& a) const {
  const int64_t B = B_, T = T_, H = H_;
  a.spec = spec_;
  a.q = half_of(q_pair_, 0, B, H, T, d_);
  a.k = half_of(k_pair_, 0, B, H, T, d_);
  a.q2 = half_of(q_pair_, 1, B, H, T, d_);
  a.k2 = half_of(k_pair_, 1, B, H, T, d_);
  a.v = v_hf_;
  a.lambda = lambda_;
  a.probs = probs_;
  a.probs2 = probs2_;
  a.lse = lse_;
  a.lse2 = lse2_;
}

void DifferentialAttention::compute_lambda(Ctx& ctx) {
  if (preset_ == Preset::paper) {
    std::vector<double> v[4];
    for (int i = 0; i < 4; ++i) v[i] = to_host_f64(ctx, lambda_vecs_[i]->value);
    lambda_host_ = {std::exp(dot(v[0], v[1])) - std::exp(dot(v[2], v[3])) + lambda_init_};
  } else {
    lambda_host_ = to_host_f64(ctx, lambda_raw_->value);
    for (double& l : lambda_host_) l = std::exp(l) + 0.05;
  }
  from_host_f64(ctx, lambda_, lambda_host_);
}

void DifferentialAttention::lambda_backward(Ctx& ctx, const Tensor& dlambda) {
  const std::vector<double> dl = to_host_f64(ctx, dlambda);
  if (preset_ == Preset::paper) {
    std::vector<double> v[4];
    for (int i = 0; i < 4; ++i) v[i] = to_host_f64(ctx, lambda_vecs_[i]->value);
    const double e1 = std::exp(dot(v[0], v[1])), e2 = std::exp(dot(v[2], v[3]));
    // ∂λ/∂λq1 = e1·λk1, ∂λ/∂λk1 = e1·λq1, ∂λ/∂λq2 = −e2·λk2, ∂λ/∂λk2 = −e2·λq2.
    const double coef[4] = {dl[0] * e1, dl[0] * e1, -dl[0] * e2, -dl[0] * e2};
    const int partner[4] = {1, 0, 3, 2};
    for (int i = 0; i < 4; ++i) {
      std::vector<double> g(static_cast<size_t>(d_));
      for (int64_t j = 0; j < d_; ++j) g[size_t(j)] = coef[i] * v[partner[i]][size_t(j)];
      accumulate_grad(ctx, lambda_vecs_[i], g);
    }
  } else {
    std::vector<double> raw = to_host_f64(ctx, lambda_raw_->value);
    for (size_t h = 0; h < raw.size(); ++h) raw[h] = dl[h] * std::exp(raw[h]);  // dλ' = dλ·exp(λ')
    accumulate_grad(ctx, lambda_raw_, raw);
  }
}

void DifferentialAttention::scale(Ctx& ctx, const Tensor& y, const Tensor& x, double alpha) {
  const int64_t n = x.numel();
  MatmulArgs m;
  m.c = y.view({n, 1});
  m.a = x.view({n, 1});
  m.b = one_;
  m.M = n;
  m.N = 1;
  m.K = 1;
  m.alpha = float(alpha);
  matmul(ctx, m);
}

void DifferentialAttention::split_pairs(Ctx& ctx, const Tensor& tok, const Tensor& pair) {
  // [B, T, 2H, d] → [B, 2H, T, d] = [1, B·H, 2, T·d] → [1, 2, B·H, T·d] = [2, B·H, T, d].
  Tensor hf = as(tok2_, {B_, 2 * H_, T_, d_});
  permute_forward(ctx, {hf, tok.view({B_, T_, 2 * H_, d_})});
  permute_forward(ctx, {pair.view({1, 2, B_ * H_, T_ * d_}), hf.view({1, B_ * H_, 2, T_ * d_})});
}

void DifferentialAttention::merge_pairs(Ctx& ctx, const Tensor& dpair, const Tensor& dtok) {
  Tensor hf = as(tok2_, {B_, 2 * H_, T_, d_});
  permute_backward(ctx, {hf.view({1, B_ * H_, 2, T_ * d_}), dpair.view({1, 2, B_ * H_, T_ * d_})});
  permute_backward(ctx, {dtok.view({B_, T_, 2 * H_, d_}), hf});
}

void DifferentialAttention::forward(Ctx& ctx, const Tensor& x, const Tensor& y) {
  NVTX_RANGE(ctx, name_.forward.c_str());
  const int64_t B = B_, T = T_, H = H_;
  from_host_f64(ctx, one_, {1.0});
  compute_lambda(ctx);
  Tensor tok = as(tok_, {B, T, H * 2 * d_});
  q_proj_.forward(ctx, x, tok);
  split_pairs(ctx, tok, q_pair_);
  k_proj_.forward(ctx, x, tok);
  split_pairs(ctx, tok, k_pair_);
  Tensor v_tok = as(tok_, {B, T, H, dv_});
  v_proj_.forward(ctx, x, v_tok.view({B, T, H * dv_}));
  permute_forward(ctx, {v_hf_, v_tok});

  Tensor out_hf = preset_ == Preset::paper ? out_hf_ : as(d_out_hf_, {B, H, T, dv_});
  AttentionArgs a;
  fill_attention_inputs(a);
  a.out = out_hf;
  a.workspace = workspace_;
  a.captures.rows = capture_rows_;
  a.captures.probs = capture_probs_;
  attention_forward(ctx, a);

  if (preset_ == Preset::paper) {
    Tensor normed = as(normed_, {B, H, T, dv_});
    sub_norm_.forward(ctx, out_hf_, normed);
    permute_forward(ctx, {merged_.view({B, T, H, dv_}), normed});
    // y = (1 − λ_init)·merged Woᵀ
    MatmulArgs m;
    m.c = y.view({B * T, D_});
    m.a = merged_.view({B * T, H * dv_});
    m.b = o_weight_->value;
    m.M = B * T;
    m.N = D_;
    m.K = H * dv_;
    m.trans_b = true;
    m.alpha = float(out_scale_);
    matmul(ctx, m);
  } else {
    permute_forward(ctx, {merged_.view({B, T, H, dv_}), out_hf});
    o_proj_.forward(ctx, merged_, lin_out_);
    Tensor normed = as(normed_, {B, T, D_});
    out_norm_.forward(ctx, lin_out_, normed);
    scale(ctx, y, normed, out_scale_);
  }
}

void DifferentialAttention::backward(Ctx& ctx, const Tensor& dy, const Tensor& x, const Tensor& dx) {
  NVTX_RANGE(ctx, name_.backward.c_str());
  const int64_t B = B_, T = T_, H = H_;
  Tensor d_out_hf = as(d_out_hf_, {B, H, T, dv_});
  if (preset_ == Preset::paper) {
    // dmerged = c·dy Wo; dWo += c·dyᵀ merged.
    Tensor d_merged = as(d_merged_, {B * T, H * dv_});
    MatmulArgs m;
    m.c = d_merged;
    m.a = dy.view({B * T, D_});
    m.b = o_weight_->value;
    m.M = B * T;
    m.N = H * dv_;
    m.K = D_;
    m.alpha = float(out_scale_);
    matmul(ctx, m);
    if (o_weight_->grad.defined()) {
      MatmulArgs g;
      g.c = o_weight_->grad;
      g.a = dy.view({B * T, D_});
      g.b = merged_.view({B * T, H * dv_});
      g.M = D_;
      g.N = H * dv_;
      g.K = B * T;
      g.trans_a = true;
      g.alpha = float(out_scale_);
      g.beta = 1.f;
      matmul(ctx, g);
    }
    Tensor d_normed = as(normed_, {B, H, T, dv_});
    permute_backward(ctx, {d_normed, d_merged.view({B, T, H, dv_})});
    sub_norm_.backward(ctx, d_normed, out_hf_, d_out_hf, false);
  } else {
    Tensor d_normed = as(normed_, {B, T, D_});
    scale(ctx, d_normed, dy, out_scale_);
    Tensor d_lin = as(tok_, {B, T, D_});
    out_norm_.backward(ctx, d_normed, lin_out_, d_lin, false);
    Tensor d_merged = as(d_merged_, {B, T, H * dv_});
    o_proj_.backward(ctx, d_lin, merged_, d_merged, false);
    permute_backward(ctx, {d_out_hf, d_merged.view({B, T, H, dv_})});
  }

  AttentionBackwardArgs a;
  fill_attention_inputs(a);
  a.dout = d_out_hf;
  a.dq = half_of(dq_pair_, 0, B, H, T, d_);
  a.dk = half_of(dk_pair_, 0, B, H, T, d_);
  a.dq2 = half_of(dq_pair_, 1, B, H, T, d_);
  a.dk2 = half_of(dk_pair_, 1, B, H, T, d_);
  a.dv = dv_hf_;
  a.dlambda = dlambda_;
  a.workspace = workspace_;
  attention_backward(ctx, a);
  lambda_backward(ctx, dlambda_);

  Tensor dtok = as(tok_, {B, T, H * 2 * d_});
  merge_pairs(ctx, dq_pair_, dtok);
  q_proj_.backward(ctx, dtok, x, dx, false);
  merge_pairs(ctx, dk_pair_, dtok);
  k_proj_.backward(ctx, dtok, x, dx, true);
  Tensor dv_tok = as(tok_, {B, T, H, dv_});
  permute_backward(ctx, {dv_tok, dv_hf_});
  v_proj_.backward(ctx, dv_tok.view({B, T, H * dv_}), x, dx, true);
}

std::unique_ptr<AttentionLayer> make_differential_attention(const AttentionLayerArgs& args) {
  return std::make_unique<DifferentialAttention>(args);
}

}  // namespace attnlab
