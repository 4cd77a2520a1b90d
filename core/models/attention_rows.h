#pragma once
// Attention probability rows of any model (HF-config Model or from-scratch decoder) through the
// probes (core/probes.h): one forward without loss of a single sequence, the chosen layer's
// probability rows captured inside the attention op, averaged over heads (differential: the
// combined map A1 − λA2 per head, as the op captures it).
#include <cstdint>
#include <vector>

#include "core/ctx.h"
#include "core/models/trainable_model.h"

namespace attnlab {

// Rows `rows` (positions in [0, T)) of layer `layer`'s attention, averaged over heads: [n][T].
// `m` must already be planned for [1, T] (plan(ctx, 1, ids.size())); it runs in the current mode
// (set_training(false) for analyses).
std::vector<std::vector<double>> planned_attention_rows(TrainableModel& m, Ctx& ctx, const std::vector<int32_t>& ids,
                                                        const std::vector<int32_t>& rows, int64_t layer);

}  // namespace attnlab
