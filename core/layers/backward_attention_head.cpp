#include "core/layers/backward_attention_head.h"

#include "core/nvtx.h"
#include "core/ops/backward_head_rows.h"
#include "core/ops/cross_entropy.h"

namespace attnlab {

namespace {

// A buffer of `bytes` as an i32 tensor (the op carves typed tensors out of it).
int64_t words(size_t bytes) { return int64_t((bytes + 3) / 4); }

}  // namespace

BackwardAttentionHead::BackwardAttentionHead(const OutputHeadArgs& args, const BackwardHeadOptions& o) {
  const ModelConfig& c = args.config;
  INPUT_CHECK(args.token_embedding, "config '", c.source, "': the backward head reads the token embedding");
  INPUT_CHECK(c.tie_word_embeddings, "config '", c.source,
              "': the backward head (METHODS §5.2) reads the tied embedding E that GPT-2's logits h·Eᵀ use; this "
              "model's lm_head is untied. Fix: use a tied model (GPT-2) or model.head: lm_head");
  const auto problems = backward_head_option_problems(o, c.hidden_size, "attnlab.head.");
  INPUT_CHECK(problems.empty(), "config '", c.source, "': ", problems.empty() ? "" : problems[0]);
  embed_ = args.token_embedding;
  store_ = &args.params;
  vocab_ = embed_->shape[0] - embed_->pad_rows;
  spec_.D = c.hidden_size;
  spec_.latent = o.latent;
  spec_.dk = o.dk;
  spec_.dv = o.dv;
  spec_.heads = o.heads;
  spec_.top_k = o.top_k;
  spec_.tau = o.tau;
  spec_.tile = o.tile;
  spec_.eps = 1e-6;
  learn_beta_ = o.learn_beta;
  const int64_t D = spec_.D, r = spec_.r(), dk = spec_.key_dim(), dv = spec_.value_dim(), H = spec_.heads;
  ParamStore& ps = args.params;
  auto add = [&](const std::string& n, std::vector<int64_t> shape, ParamInit init) {
    Param& p = ps.add("backward_head." + n, std::move(shape));
    p.init = init;
    return &p;
  };
  embed_norm_ = add("embed_norm.weight", {D}, ParamInit::ones_added());
  if (spec_.latent > 0) latent_proj_ = add("latent_proj.weight", {r, D}, ParamInit::identity_added());
  k_proj_ = add("k_proj.weight", {dk, r}, ParamInit::identity_added());
  v_proj_ = add("v_proj.weight", {dv, r}, ParamInit::identity_added());
  q_norm_ = add("q_norm.weight", {dv}, ParamInit::ones_added());
  q_proj_ = add("q_proj.weight", {dk, dv / H}, ParamInit::identity_added(dk / H));
  beta_ = add("beta", {H}, ParamInit::ones_added());
}

BackwardHeadParams BackwardAttentionHead::values() const {
  BackwardHeadParams p;
  p.embed_norm = embed_norm_->value;
  if (latent_proj_) p.latent_proj = latent_proj_->value;
  p.k_proj = k_proj_->value;
  p.v_proj = v_proj_->value;
  p.q_norm = q_norm_->value;
  p.q_proj = q_proj_->value;
  p.beta = beta_->value;
  return p;
}

Tensor BackwardAttentionHead::beta_acc(Ctx& ctx, const Tensor& buffer) const {
  const Tensor& b = beta_->value;
  if (b.dtype == acc_dtype(b.dtype)) return b;
  from_host_f64(ctx, buffer, to_host_f64(ctx, b));
  return buffer;
}

void BackwardAttentionHead::plan(ActivationPlanner& p, const Ctx& ctx, DType dt, int64_t B, int64_t T) {
  const int64_t N = B * T, V = vocab_;
  const DType acc = acc_dtype(dt);
  saved_buf_ = p.saved(DType::i32, {words(backward_head_saved_bytes(spec_, N, V, dt))}, name_ + ".saved");
  saved_ = saved_buf_.data ? backward_head_carve_saved(spec_, N, V, dt, saved_buf_.device, saved_buf_.data)
                           : BackwardHeadSaved{};
  row_loss_ = p.saved(acc, {N}, name_ + ".row_loss");
  loss_ = p.saved(acc, {1}, name_ + ".loss");
  beta_f32_ = p.saved(acc, {spec_.heads}, name_ + ".beta_acc");
  // The [N, V] log-probabilities only where no backward will run (inference models).
  logprobs_ = store_->grads_allocated() ? Tensor() : p.saved(acc, {N, V}, name_ + ".logprobs");
  const size_t ws = std::max(backward_head_workspace_bytes(ctx, spec_, N, V, dt, false),
                             store_->grads_allocated() ? backward_head_workspace_bytes(ctx, spec_, N, V, dt, true) : 0);
  workspace_ = p.scratch_bytes("backward_head.workspace", ws);
}

void BackwardAttentionHead::forward(Ctx& ctx, const Tensor& h, const Tensor& targets, double valid_count) {
  NVTX_RANGE(ctx, "backward_head forward");
  gen_ready_ = false;  // the parameters may change after this (an optimizer step follows a forward)
  const int64_t N = h.numel() / spec_.D;
  BackwardHeadArgs a;
  a.spec = spec_;
  a.hidden = h.view({N, spec_.D});
  a.embed = embed_->value;
  a.vocab = vocab_;
  a.params = values();
  a.params.beta = beta_acc(ctx, beta_f32_);
  a.saved = saved_;
  a.workspace = workspace_;
  a.logprobs = logprobs_;
  targets_ = Tensor();
  if (targets.defined()) {
    CHECK(valid_count > 0, "backward head: the loss needs valid_count > 0 (the number of target tokens), got ",
          valid_count);
    targets_ = targets.view({N});
    a.targets = targets_;
    a.loss = row_loss_;
    valid_count_ = valid_count;
  }
  backward_head_forward(ctx, a);
  if (!targets.defined()) return;
  CrossEntropyMeanArgs mean;
  mean.loss = row_loss_;
  mean.out = loss_;
  mean.valid_count = valid_count;
  cross_entropy_mean(ctx, mean);
}

void BackwardAttentionHead::backward(Ctx& ctx, const Tensor& h, const Tensor& dh) {
  NVTX_RANGE(ctx, "backward_head backward");
  CHECK(targets_.defined(), "backward head: backward needs a forward with targets");
  const int64_t N = h.numel() / spec_.D;
  BackwardHeadBackwardArgs a;
  a.spec = spec_;
  a.hidden = h.view({N, spec_.D});
  a.embed = embed_->value;
  a.vocab = vocab_;
  a.targets = targets_;
  a.params = values();
  a.params.beta = beta_acc(ctx, beta_f32_);
  a.saved = saved_;
  a.loss = row_loss_;
  a.grads.embed_norm = embed_norm_->grad;
  if (latent_proj_) a.grads.latent_proj = latent_proj_->grad;
  a.grads.k_proj = k_proj_->grad;
  a.grads.v_proj = v_proj_->grad;
  a.grads.q_norm = q_norm_->grad;
  a.grads.q_proj = q_proj_->grad;
  if (learn_beta_) a.grads.beta = beta_->grad;
  a.valid_count = valid_count_;
  a.workspace = workspace_;
  const bool any = a.grads.embed_norm.defined() || a.grads.latent_proj.defined() || a.grads.k_proj.defined() ||
                   a.grads.v_proj.defined() || a.grads.q_norm.defined() || a.grads.q_proj.defined() ||
                   a.grads.beta.defined();
  if (any) backward_head_backward(ctx, a);
  zero_tensor(ctx, dh);  // METHODS §5.4: nothing flows into GPT-2
  targets_ = Tensor();
}

size_t BackwardAttentionHead::logits_rows_bytes(DType dt, int64_t N) const {
  static const Ctx host = Ctx::make_cpu(0);  // the forward workspace does not depend on the device
  const DType acc = acc_dtype(dt);
  return Arena::aligned(backward_head_saved_bytes(spec_, N, 1, dt)) +
         Arena::aligned(backward_head_workspace_bytes(host, spec_, N, vocab_, dt, false)) +
         Arena::aligned(size_t(N * vocab_) * dtype_size(acc)) + Arena::aligned(size_t(spec_.heads) * dtype_size(acc)) +
         4 * 256;
}

void BackwardAttentionHead::logits_rows(Ctx& ctx, const Tensor& h, const Tensor& logits, Arena& scratch) const {
  const int64_t N = h.dim(0), V = vocab_;
  const DType dt = h.dtype, acc = acc_dtype(dt);
  CHECK(logits.numel() == N * V, "backward head: logits ", logits.shape_str(), " must be [", N, ", ", V, "]");
  BackwardHeadArgs a;
  a.spec = spec_;
  a.hidden = h;
  a.embed = embed_->value;
  a.vocab = V;
  a.params = values();
  a.params.beta = beta_acc(ctx, scratch.alloc(acc, {spec_.heads}, "backward_head.gen.beta"));
  // Vocabulary side: once per generation (cached), rows from the scratch arena.
  if (!gen_ready_ || !gen_vocab_.t().defined()) {
    const size_t bytes = backward_head_saved_bytes(spec_, 1, V, dt);
    if (!gen_vocab_.t().defined() || gen_vocab_.t().bytes() < bytes)
      gen_vocab_ = Buffer(ctx.device, DType::i32, {words(bytes)}, "backward_head.gen_vocab");
    gen_saved_ = backward_head_carve_saved(spec_, 1, V, dt, ctx.device, gen_vocab_.t().data);
    a.vocab_ready = false;
  } else {
    a.vocab_ready = true;
  }
  Tensor rows_buf = scratch.alloc(DType::i32, {words(backward_head_saved_bytes(spec_, N, 1, dt))}, "backward_head.gen.rows");
  BackwardHeadSaved rows = backward_head_carve_saved(spec_, N, 1, dt, ctx.device, rows_buf.data);
  rows.embed_hat = gen_saved_.embed_hat;
  rows.embed_rstd = gen_saved_.embed_rstd;
  rows.latent_out = gen_saved_.latent_out;
  rows.keys = gen_saved_.keys;
  rows.values = gen_saved_.values;
  a.saved = rows;
  static const Ctx host = Ctx::make_cpu(0);
  const size_t ws = backward_head_workspace_bytes(host, spec_, N, V, dt, false);
  a.workspace = scratch.alloc(DType::i32, {words(ws)}, "backward_head.gen.workspace");
  const bool direct = logits.dtype == acc;
  a.logprobs = direct ? logits.view({N, V}) : scratch.alloc(acc, {N, V}, "backward_head.gen.logprobs");
  backward_head_forward(ctx, a);
  gen_ready_ = true;
  if (!direct) bh_rows_cast(ctx, a.logprobs, logits, N * V);
}

std::unique_ptr<OutputHead> make_backward_attention_head(const OutputHeadArgs& args) {
  return std::make_unique<BackwardAttentionHead>(
      args, backward_head_options_from_json(args.options, args.config.source));
}

}  // namespace attnlab
