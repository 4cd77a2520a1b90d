#pragma once
// Helpers for the generation tests: a tiny model per architecture, the logits of a full forward
// (Model::forward, the training path) over one sequence, and the P14 greedy choice on the host.
#include <algorithm>
#include <limits>
#include <vector>

#include "core/models/cached_forward.h"
#include "core/models/generate.h"
#include "models/model_test_util.h"

namespace attnlab::test {

struct GenCase {
  const char* name;
  ModelArch arch;
  bool tied;
  const char* attention_options;  // JSON for config.attnlab, or nullptr
};

inline TinyShape gen_shape() {
  TinyShape s;
  s.D = 16;
  s.L = 2;
  s.Hq = 4;
  s.Hkv = 2;  // GQA for the Qwen models (GPT-2 forces Hkv = Hq)
  s.d = 8;
  s.I = 24;
  s.V = 37;
  s.P = 32;
  return s;
}

inline ModelConfig gen_config(const GenCase& c, const TinyShape& shape = gen_shape()) {
  ModelConfig cfg = tiny_config(c.arch, c.tied, shape);
  if (c.attention_options) cfg.attnlab = nlohmann::ordered_json::parse(c.attention_options);
  return cfg;
}

// Logits [V] of the last position of a full forward over `ids` (one sequence).
inline std::vector<double> full_last_logits(Model& m, Ctx& ctx, const std::vector<int32_t>& ids) {
  const int64_t T = int64_t(ids.size()), V = m.config().vocab_size;
  m.plan(ctx, 1, T);
  Buffer ids_dev = make_ids(ctx.device, {1, T}, ids);
  m.forward(ctx, ids_dev, Tensor(), 0);
  std::vector<double> all = m.logits_f64(ctx);
  return std::vector<double>(all.end() - V, all.end());
}

// Row b of a [B, V] host copy.
inline std::vector<double> row_of(const std::vector<double>& logits, int64_t b, int64_t V) {
  return std::vector<double>(logits.begin() + b * V, logits.begin() + (b + 1) * V);
}

// METHODS P14 on the host: penalise every seen token (logit/rp when positive, logit·rp otherwise),
// then argmax with ties to the lowest id.
inline int32_t penalised_argmax(std::vector<double> logits, const std::vector<int32_t>& seen, double rp) {
  std::vector<bool> is_seen(logits.size(), false);
  for (int32_t s : seen) is_seen[size_t(s)] = true;
  int32_t best = 0;
  double best_value = -std::numeric_limits<double>::infinity();
  for (size_t v = 0; v < logits.size(); ++v) {
    double x = logits[v];
    if (is_seen[v]) x = x > 0 ? x / rp : x * rp;
    if (x > best_value) {
      best_value = x;
      best = int32_t(v);
    }
  }
  return best;
}

// Greedy continuation by recomputing the full forward over the whole prefix at every step.
inline std::vector<int32_t> greedy_by_recompute(Model& m, Ctx& ctx, const std::vector<int32_t>& prompt, int64_t steps,
                                                double rp = 1.0) {
  std::vector<int32_t> seq = prompt, out;
  for (int64_t s = 0; s < steps; ++s) {
    const int32_t next = penalised_argmax(full_last_logits(m, ctx, seq), seq, rp);
    out.push_back(next);
    seq.push_back(next);
  }
  return out;
}

}  // namespace attnlab::test
