#pragma once
// Token embedding with optional learned positions (GPT-2 wte + wpe), over the embedding op:
// out[b, t] = wte[ids[b, t]] (+ wpe[t]). Saves nothing: backward takes the ids again.
// A token table with padding rows (Param::pad_rows: the vocabulary padded for the LM head) is
// used without them: ids must be < V, and the padding rows never receive gradient.
#include <string>

#include "core/layers/activations.h"
#include "core/layers/layer_name.h"
#include "core/layers/param.h"

namespace attnlab {

class TokenEmbedding {
 public:
  TokenEmbedding() = default;
  // positions: undefined (nullptr) for RoPE models.
  TokenEmbedding(const std::string& name, Param* tokens, Param* positions);

  // The CUDA backward's sort scratch for N = B·T tokens.
  void plan(ActivationPlanner& p, const Ctx& ctx, int64_t B, int64_t T);
  void forward(Ctx& ctx, const Tensor& ids, const Tensor& out);
  // dwte, dwpe += (when trainable; the tied LM head adds to the same dwte).
  void backward(Ctx& ctx, const Tensor& dout, const Tensor& ids);

  Param* tokens() const { return tokens_; }

 private:
  LayerName name_;
  Param* tokens_ = nullptr;
  Param* positions_ = nullptr;
  Tensor index_scratch_, partial_scratch_;
};

}  // namespace attnlab
