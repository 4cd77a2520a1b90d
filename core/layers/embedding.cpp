#include "core/layers/embedding.h"

#include "core/nvtx.h"
#include "core/ops/embedding.h"

namespace attnlab {

TokenEmbedding::TokenEmbedding(const std::string& name, Param* tokens, Param* positions)
    : name_(name), tokens_(tokens), positions_(positions) {
  CHECK(tokens_ && tokens_->shape.size() == 2, "embedding '", name, "': the token table must be [V, C]");
  CHECK(!positions_ || (positions_->shape.size() == 2 && positions_->shape[1] == tokens_->shape[1]),
        "embedding '", name, "': the position table must be [P, C] with C = ", tokens_->shape[1]);
}

void TokenEmbedding::plan(ActivationPlanner& p, const Ctx& ctx, int64_t B, int64_t T) {
  if (positions_)
    CHECK(T <= positions_->shape[0], "embedding '", name_.name, "': sequence length ", T, " exceeds the ",
          positions_->shape[0], " learned positions of '", positions_->name, "'");
  index_scratch_ = partial_scratch_ = Tensor();
  if (!ctx.is_cuda()) return;
  const int64_t N = B * T, V = tokens_->shape[0] - tokens_->pad_rows, C = tokens_->shape[1];
  index_scratch_ = p.scratch("embedding.index_scratch", DType::i32,
                             {int64_t(embedding_backward_index_scratch(N, V))});
  partial_scratch_ = p.scratch("embedding.partial_scratch", DType::f32,
                               {int64_t(embedding_backward_partial_scratch(N, C))});
}

void TokenEmbedding::forward(Ctx& ctx, const Tensor& ids, const Tensor& out) {
  NVTX_RANGE(ctx, name_.forward.c_str());
  EmbeddingArgs a;
  a.out = out;
  a.ids = ids;
  a.table = tokens_->unpadded(tokens_->value);  // ids index the V real rows (the GPU clamps to V − 1)
  a.pos = positions_ ? positions_->value : Tensor();
  embedding_forward(ctx, a);
}

void TokenEmbedding::backward(Ctx& ctx, const Tensor& dout, const Tensor& ids) {
  NVTX_RANGE(ctx, name_.backward.c_str());
  EmbeddingBackwardArgs a;
  a.dtable = tokens_->unpadded(tokens_->grad);
  a.dpos = positions_ ? positions_->grad : Tensor();
  if (!a.dtable.defined() && !a.dpos.defined()) return;
  a.dout = dout;
  a.ids = ids;
  a.index_scratch = index_scratch_;
  a.partial_scratch = partial_scratch_;
  embedding_backward(ctx, a);
}

}  // namespace attnlab
