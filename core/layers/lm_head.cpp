#include "core/layers/lm_head.h"

#include "core/nvtx.h"
#include "core/ops/cross_entropy.h"

namespace attnlab {

LmHead::LmHead(const std::string& name, Param* weight)
    : name_(name), proj_(weight, nullptr), vocab_(weight->shape[0] - weight->pad_rows) {}

void LmHead::plan(ActivationPlanner& p, const Ctx&, DType dt, int64_t B, int64_t T) {
  const int64_t N = B * T, V = proj_.out_features();
  const DType acc = acc_dtype(dt);
  logits_ = p.saved(dt, {N, V}, name_.name + ".logits");
  row_loss_ = p.saved(acc, {N}, name_.name + ".row_loss");
  lse_ = p.saved(acc, {N}, name_.name + ".lse");
  loss_ = p.saved(acc, {1}, name_.name + ".loss");
}

void LmHead::forward(Ctx& ctx, const Tensor& h, const Tensor& targets, double valid_count) {
  NVTX_RANGE(ctx, name_.forward.c_str());
  proj_.forward(ctx, h, logits_);
  targets_ = Tensor();
  if (!targets.defined()) return;
  CHECK(valid_count > 0, "LM head: the loss needs valid_count > 0 (the number of target tokens), got ",
        valid_count);
  CHECK(targets.numel() == logits_.dim(0), "LM head: targets ", targets.shape_str(), " do not match ",
        logits_.dim(0), " positions");
  targets_ = targets.view({logits_.dim(0)});
  valid_count_ = valid_count;
  CrossEntropyArgs ce;
  ce.logits = logits_;
  ce.targets = targets_;
  ce.loss = row_loss_;
  ce.lse = lse_;
  ce.vocab = vocab_;
  cross_entropy_forward(ctx, ce);
  CrossEntropyMeanArgs mean;
  mean.loss = row_loss_;
  mean.out = loss_;
  mean.valid_count = valid_count;
  cross_entropy_mean(ctx, mean);
}

void LmHead::backward(Ctx& ctx, const Tensor& h, const Tensor& dh) {
  NVTX_RANGE(ctx, name_.backward.c_str());
  CHECK(targets_.defined(), "LM head '", name_.name, "': backward needs a forward with targets");
  CrossEntropyBackwardArgs ce;
  ce.logits = logits_;
  ce.targets = targets_;
  ce.lse = lse_;
  ce.dlogits = logits_;  // in place: the logits are not needed after this
  ce.valid_count = valid_count_;
  ce.vocab = vocab_;
  cross_entropy_backward(ctx, ce);
  proj_.backward(ctx, logits_, h, dh, false);
  targets_ = Tensor();  // the logits buffer now holds gradients
}

void LmHead::logits_rows(Ctx& ctx, const Tensor& h, const Tensor& logits, Arena&) const {
  Linear(proj_.weight_param(), nullptr, 0, vocab_).forward(ctx, h, logits);
}

std::unique_ptr<OutputHead> make_lm_head(const OutputHeadArgs& args) {
  const ModelConfig& c = args.config;
  INPUT_CHECK(args.options.is_null() || (args.options.is_object() && args.options.size() == 1), "config '", c.source,
              "': attnlab.head for lm_head takes only \"kind\"");
  // Tied: the head multiplies by the token embedding; checkpoints then hold that tensor once.
  Param* weight = c.tie_word_embeddings ? args.token_embedding : args.add_vocab_table("lm_head.weight");
  return std::make_unique<LmHead>("lm_head", weight);
}

std::unique_ptr<OutputHead> make_lm_head_untied(const OutputHeadArgs& args) {
  const ModelConfig& c = args.config;
  INPUT_CHECK(args.options.is_object() && args.options.size() == 1, "config '", c.source,
              "': attnlab.head for lm_head_untied takes only \"kind\"");
  INPUT_CHECK(c.tie_word_embeddings, "config '", c.source,
              "': lm_head_untied unties a tied head, and this model's lm_head is already untied. Fix: model.head: lm_head");
  Param* weight = args.add_vocab_table("lm_head.weight");
  weight->init = ParamInit::copy_added(args.token_embedding->name);
  return std::make_unique<LmHead>("lm_head", weight);
}

}  // namespace attnlab
