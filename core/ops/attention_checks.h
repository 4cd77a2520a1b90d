#pragma once
// The argument checks the attention entry points share: the materialized op (attention.cpp) and
// the tiled / fused one (attention_tiled.cpp) validate the same inputs, statistics, captures and
// gradients the same way. `op` opens every message ("attention", "attention_tiled").
#include <initializer_list>

#include "core/ops/attention.h"

namespace attnlab::attention_checks {

// A required tensor of dtype dt and shape dims; `optional` accepts an undefined one.
void required(const char* op, const Tensor& t, DType dt, std::initializer_list<int64_t> dims, const char* what);
void optional(const char* op, const Tensor& t, DType dt, std::initializer_list<int64_t> dims, const char* what);

// Head counts, dims, the ramp weight and the score scale.
void spec(const char* op, const AttentionSpec& s);
// B, heads, T, S_cap and dims from q, k, v (checked against the spec, 4-d, same dtype); sh.S, the
// query offset and the capture sizes are the caller's.
AttnShape shape(const char* op, const AttentionSpec& s, const Tensor& q, const Tensor& k, const Tensor& v);
// Resolves sh.offset from query_offset (-1: S − T) and checks it.
void resolve_offset(const char* op, AttnShape& sh, int64_t query_offset);
// Key lengths, controllers, and the differential inputs (q2, k2, λ) or their absence.
void inputs(const char* op, const AttentionInputs& in, const AttnShape& sh, DType dt);
// One map's row statistics: lse when need_lse, row min / row sum for linear and ramp.
void stats(const char* op, const AttentionSpec& s, const AttnShape& sh, DType dt, const Tensor& lse,
           const Tensor& row_min, const Tensor& row_sum, bool need_lse, const char* what);
// The captures; sets sh.nrows_capture and sh.nspans.
void captures(const char* op, const AttentionCaptures& c, const AttentionSpec& s, AttnShape& sh, DType dt);
// dout and every gradient a backward may be asked for.
void gradients(const char* op, const AttentionBackwardArgs& a, const AttnShape& sh, DType dt);

}  // namespace attnlab::attention_checks
