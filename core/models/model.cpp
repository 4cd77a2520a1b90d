#include "core/models/model.h"

#include <algorithm>

#include "core/memory.h"
#include "core/models/weights.h"
#include "core/nvtx.h"
#include "core/ops/cross_entropy.h"

namespace attnlab {

namespace {

void check_model_dtype(const ModelOptions& o) {
  if (o.device == Device::cpu)
    CHECK(o.dtype == DType::f32 || o.dtype == DType::f64, "model on the CPU runs f32 or f64, got ",
          dtype_name(o.dtype), " (bf16 runs on CUDA)");
  else
    CHECK(o.dtype == DType::f32 || o.dtype == DType::bf16, "model on CUDA runs f32 or bf16, got ",
          dtype_name(o.dtype));
}

}  // namespace

int64_t padded_vocab_size(int64_t vocab, int64_t multiple) {
  CHECK(vocab > 0 && multiple >= 1, "padded vocabulary: need V > 0 and a multiple ≥ 1, got V=", vocab,
        " multiple=", multiple, " (ModelOptions::vocab_multiple; 1 = no padding)");
  return (vocab + multiple - 1) / multiple * multiple;
}

std::string Model::block_prefix(int64_t layer) const {
  return (config_.arch == ModelArch::gpt2 ? "transformer.h." : "model.layers.") + std::to_string(layer);
}

Model::Model(const ModelConfig& config, const ModelOptions& options, const Ctx& ctx)
    : config_(config), options_(options), planner_(options.device) {
  check_model_dtype(options_);
  CHECK(ctx.device == options_.device, "model on ", device_name(options_.device), " built with a ",
        device_name(ctx.device), " context");
  const ModelConfig& c = config_;
  CHECK(c.hidden_size > 0 && c.num_layers > 0 && c.num_heads > 0 && c.num_kv_heads > 0 && c.head_dim > 0 &&
            c.intermediate_size > 0 && c.vocab_size > 0,
        "config '", c.source, "': sizes must be positive (hidden ", c.hidden_size, ", layers ", c.num_layers,
        ", heads ", c.num_heads, "/", c.num_kv_heads, ", head_dim ", c.head_dim, ", intermediate ",
        c.intermediate_size, ", vocab ", c.vocab_size, ")");
  const bool gpt2 = c.arch == ModelArch::gpt2;
  const int64_t D = c.hidden_size, V = c.vocab_size;
  const int64_t Vp = padded_vocab_size(V, options_.vocab_multiple);
  // A [Vp, D] table whose rows ≥ V are padding (zero, not in checkpoints).
  auto add_vocab_table = [&](const std::string& name) -> Param* {
    Param& p = params_.add(name, {Vp, D});
    p.pad_rows = Vp - V;
    return &p;
  };

  if (gpt2) {
    Param* wte = add_vocab_table("transformer.wte.weight");
    Param* wpe = &params_.add("transformer.wpe.weight", {c.max_position_embeddings, D});
    embedding_ = TokenEmbedding("transformer.wte", wte, wpe);
  } else {
    embedding_ = TokenEmbedding("model.embed_tokens", add_vocab_table("model.embed_tokens.weight"), nullptr);
  }
  embedding_dropout_ = Dropout(gpt2 ? "transformer.drop" : "model.embed_dropout", config_dropout(c, "embd_pdrop"));
  const double resid_p = config_dropout(c, "resid_pdrop");
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const size_t before = params_.size();
    blocks_.push_back(std::make_unique<DecoderBlock>(c, l, block_prefix(l), params_, resid_p));
    CHECK(params_.size() > before, "block ", l, " registered no parameter");
    block_first_.push_back(&*std::next(params_.begin(), std::ptrdiff_t(before)));
  }
  if (gpt2) {
    final_norm_ = Norm::layer_norm("transformer.ln_f", &params_.add("transformer.ln_f.weight", {D}),
                                   &params_.add("transformer.ln_f.bias", {D}), c.norm_eps);
  } else {
    final_norm_ = Norm::rms_norm("model.norm", &params_.add("model.norm.weight", {D}), c.norm_eps);
  }
  static const nlohmann::ordered_json no_options;
  const auto& head_opts = c.attnlab.is_object() && c.attnlab.contains("head") ? c.attnlab["head"] : no_options;
  head_first_ = params_.size();
  head_ = make_output_head({c, params_, embedding_.tokens(), add_vocab_table, head_opts});

  AttentionModelRefs refs;
  refs.lm_head_weight = head_->vocab_table();
  for (auto& b : blocks_) b->attention().bind_model(refs);

  params_.allocate(options_.device, options_.dtype);
  params_.zero_padding(ctx);
  if (options_.allocate_grads) params_.allocate_grads(ctx);
}

Model::~Model() = default;

std::string Model::describe() const {
  const ModelConfig& c = config_;
  return std::string(model_type_name(c.arch)) + " L=" + std::to_string(c.num_layers) + " D=" +
         std::to_string(c.hidden_size) + " heads " + std::to_string(c.num_heads) + "/" + std::to_string(c.num_kv_heads) +
         "x" + std::to_string(c.head_dim) + " V=" + std::to_string(c.vocab_size);
}

void Model::save_weights(Ctx& ctx, const std::string& folder) const { save_model(*this, ctx, folder); }
void Model::load_weights(Ctx& ctx, const std::string& folder) { attnlab::load_weights(*this, ctx, folder); }

void Model::set_training(bool training) {
  training_ = training;
  set_trunk_training(training);
}

void Model::set_trunk_training(bool training) {
  embedding_dropout_.set_training(training);
  for (auto& b : blocks_) b->set_training(training);
}

bool Model::trunk_trainable() const {
  size_t i = 0;
  for (const Param& p : params_)
    if (i++ < head_first_ && p.trainable) return true;
  return false;
}

void Model::plan_all(ActivationPlanner& p, const Ctx& ctx) {
  const DType dt = options_.dtype;
  const int64_t D = config_.hidden_size, L = num_layers();
  residual_.clear();
  for (int64_t l = 0; l <= L; ++l) residual_.push_back(p.saved(dt, {B_, T_, D}, "residual." + std::to_string(l)));
  final_out_ = p.saved(dt, {B_, T_, D}, "final_norm_out");
  d_residual_ = p.saved(dt, {B_, T_, D}, "d_residual");
  d_final_ = p.scratch("model.d_final_norm_out", dt, {B_, T_, D});
  embedding_.plan(p, ctx, B_, T_);
  for (auto& b : blocks_) b->plan(p, ctx, dt, B_, T_);
  final_norm_.plan(p, ctx, dt, B_ * T_, D);
  head_->plan(p, ctx, dt, B_, T_);
}

void Model::plan(Ctx& ctx, int64_t B, int64_t T) {
  CHECK(B > 0 && T > 0, "plan: batch and sequence length must be positive, got B=", B, " T=", T);
  if (config_.arch == ModelArch::gpt2)
    CHECK(T <= config_.max_position_embeddings, "plan: T=", T, " exceeds GPT-2's ", config_.max_position_embeddings,
          " learned positions (n_positions in '", config_.source, "')");
  B_ = B;
  T_ = T;
  have_loss_ = false;
  planner_.begin_sizing();
  plan_all(planner_, ctx);
  planner_.begin_carving();
  plan_all(planner_, ctx);
  planner_.finish();
}

void Model::check_inputs(const Tensor& ids, const Tensor& targets) const {
  CHECK(B_ > 0, "forward before plan(B, T)");
  for (const Tensor* t : {&ids, &targets}) {
    if (t == &targets && !targets.defined()) continue;
    const char* what = t == &ids ? "ids" : "targets";
    CHECK(t->defined() && t->dtype == DType::i32, "forward: ", what, " must be i32 [B, T], got ",
          t->defined() ? dtype_name(t->dtype) : "undefined");
    CHECK(t->ndim == 2 && t->dim(0) == B_ && t->dim(1) == T_, "forward: ", what, " ", t->shape_str(),
          " does not match the planned [", B_, ",", T_, "]");
    CHECK(t->device == options_.device, "forward: ", what, " are on ", device_name(t->device), ", the model on ",
          device_name(options_.device));
  }
}

Tensor Model::forward(Ctx& ctx, const Tensor& ids, const Tensor& targets, double valid_count) {
  NVTX_RANGE(ctx, "model forward");
  check_inputs(ids, targets);
  // A frozen trunk (only the head trains, METHODS §5.3) runs as in eval mode: no dropout.
  set_trunk_training(training_ && trunk_trainable());
  ids_ = ids;
  embedding_.forward(ctx, ids, residual_[0]);
  embedding_dropout_.forward(ctx, residual_[0]);
  for (size_t l = 0; l < blocks_.size(); ++l) blocks_[l]->forward(ctx, residual_[l], residual_[l + 1]);
  final_norm_.forward(ctx, residual_.back(), final_out_);
  head_->forward(ctx, final_out_, targets, valid_count);
  have_loss_ = targets.defined();
  return have_loss_ ? head_->loss() : Tensor();
}

void Model::backward(Ctx& ctx) {
  NVTX_RANGE(ctx, "model backward");
  CHECK(have_loss_, "backward needs a forward with targets since the last backward");
  have_loss_ = false;
  head_->backward(ctx, final_out_, d_final_);
  // Only the head trains (a frozen trunk, METHODS §5.5): nothing below it has a gradient to take.
  // (With a data-parallel hook the blocks still run, so every block's hook fires.)
  if (!grad_ready_ && !trunk_trainable()) return;
  final_norm_.backward(ctx, d_final_, residual_.back(), d_residual_, false);
  for (size_t l = blocks_.size(); l-- > 0;) {
    blocks_[l]->backward(ctx, residual_[l], d_residual_);
    if (grad_ready_) grad_ready_(*block_first_[l]);
  }
  if (embedding_dropout_.applied()) embedding_dropout_.backward(ctx, d_residual_, d_residual_);
  embedding_.backward(ctx, d_residual_, ids_);
}

Tensor Model::padded_logits() const {
  CHECK(B_ > 0, "logits before plan(B, T)");
  return head_->padded_logits().view({B_, T_, padded_vocab()});
}

std::vector<double> Model::logits_f64(Ctx& ctx) const {
  return drop_padding_columns(to_host_f64(ctx, padded_logits()), B_ * T_, padded_vocab(), vocab());
}

std::vector<double> drop_padding_columns(const std::vector<double>& padded, int64_t rows, int64_t padded_vocab,
                                         int64_t vocab) {
  CHECK(int64_t(padded.size()) == rows * padded_vocab && vocab <= padded_vocab, "drop_padding_columns: ",
        padded.size(), " values are not ", rows, " rows of ", padded_vocab, " (keeping ", vocab, ")");
  if (vocab == padded_vocab) return padded;
  std::vector<double> out(size_t(rows * vocab));
  for (int64_t r = 0; r < rows; ++r)
    std::copy(padded.begin() + r * padded_vocab, padded.begin() + r * padded_vocab + vocab, out.begin() + r * vocab);
  return out;
}

int64_t causal_lm_targets(const std::vector<int32_t>& ids, int64_t B, int64_t T, std::vector<int32_t>& targets) {
  CHECK(int64_t(ids.size()) == B * T, "causal_lm_targets: ", ids.size(), " ids for B=", B, " T=", T);
  targets.assign(ids.size(), kIgnoreIndex);
  int64_t valid = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t + 1 < T; ++t) {
      targets[size_t(b * T + t)] = ids[size_t(b * T + t + 1)];
      valid += targets[size_t(b * T + t)] != kIgnoreIndex;
    }
  return valid;
}

}  // namespace attnlab
