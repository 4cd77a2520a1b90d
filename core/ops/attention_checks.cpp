#include "core/ops/attention_checks.h"

#include <cmath>

namespace attnlab::attention_checks {

void required(const char* op, const Tensor& t, DType dt, std::initializer_list<int64_t> dims, const char* what) {
  CHECK(t.defined(), op, ": '", what, "' is required for this spec but undefined");
  CHECK(t.dtype == dt, op, ": '", what, "' (", t.name, ") must be ", dtype_name(dt), ", got ", dtype_name(t.dtype));
  check_shape(t, dims);
}

void optional(const char* op, const Tensor& t, DType dt, std::initializer_list<int64_t> dims, const char* what) {
  if (t.defined()) required(op, t, dt, dims, what);
}

void spec(const char* op, const AttentionSpec& s) {
  CHECK(s.Hq > 0 && s.Hkv > 0 && s.Hq % s.Hkv == 0, op, ": Hq (", s.Hq, ") must be a positive multiple of Hkv (",
        s.Hkv, ")");
  CHECK(s.d > 0 && s.value_dim() > 0, op, ": head dims must be positive, got d=", s.d, " dv=", s.dv);
  CHECK(s.norm != AttnNorm::ramp || (s.ramp_alpha >= 0 && s.ramp_alpha <= 1), op,
        ": ramp alpha must lie in [0, 1], got ", s.ramp_alpha);
  CHECK(std::isfinite(s.score_scale()), op, ": the score scale must be finite");
  CHECK(s.dropout >= 0 && s.dropout < 1, op, ": dropout must lie in [0, 1), got ", s.dropout);
}

AttnShape shape(const char* op, const AttentionSpec& s, const Tensor& q, const Tensor& k, const Tensor& v) {
  CHECK(q.defined() && k.defined() && v.defined(), op, ": q, k and v are required");
  CHECK(q.ndim == 4 && k.ndim == 4 && v.ndim == 4, op, ": q, k and v must be 4-d [B, H, rows, dim]");
  AttnShape sh;
  sh.B = q.dim(0);
  sh.Hq = s.Hq;
  sh.Hkv = s.Hkv;
  sh.G = s.Hq / s.Hkv;
  sh.T = q.dim(2);
  sh.S_cap = k.dim(2);
  sh.d = s.d;
  sh.dv = s.value_dim();
  sh.scale = s.score_scale();
  const DType dt = q.dtype;
  required(op, q, dt, {sh.B, sh.Hq, sh.T, sh.d}, "q");
  required(op, k, dt, {sh.B, sh.Hkv, sh.S_cap, sh.d}, "k");
  required(op, v, dt, {sh.B, sh.Hkv, sh.S_cap, sh.dv}, "v");
  CHECK(sh.B > 0 && sh.T > 0, op, ": B and T must be positive, got ", q.shape_str());
  return sh;
}

void resolve_offset(const char* op, AttnShape& sh, int64_t query_offset) {
  sh.offset = query_offset < 0 ? sh.S - sh.T : query_offset;
  CHECK(sh.offset >= 0, op, ": the query offset resolves to ", sh.offset, " (S = ", sh.S, " < T = ", sh.T,
        "); pass query_offset explicitly");
}

void inputs(const char* op, const AttentionInputs& in, const AttnShape& sh, DType dt) {
  const DType acc = acc_dtype(dt);
  optional(op, in.key_lengths, DType::i32, {sh.B}, "key_lengths");
  optional(op, in.score_add, acc, {sh.B, sh.Hq, sh.T}, "score_add");
  optional(op, in.score_mul, acc, {sh.B, sh.Hq, sh.T}, "score_mul");
  const Tensor& lambda = in.lambda;
  if (in.spec.differential) {
    required(op, in.q2, dt, {sh.B, sh.Hq, sh.T, sh.d}, "q2");
    required(op, in.k2, dt, {sh.B, sh.Hkv, sh.S_cap, sh.d}, "k2");
    CHECK(lambda.defined() && lambda.ndim == 1 && lambda.dtype == acc && (lambda.dim(0) == 1 || lambda.dim(0) == sh.Hq),
          op, ": differential needs lambda as ", dtype_name(acc), " [1] or [Hq = ", sh.Hq, "], got ",
          lambda.defined() ? dtype_name(lambda.dtype) : "undefined", lambda.defined() ? lambda.shape_str() : "");
  } else {
    CHECK(!in.q2.defined() && !in.k2.defined() && !lambda.defined(), op,
          ": q2/k2/lambda are only for spec.differential");
  }
}

void stats(const char* op, const AttentionSpec& s, const AttnShape& sh, DType dt, const Tensor& lse,
           const Tensor& row_min, const Tensor& row_sum, bool need_lse, const char* what) {
  const DType acc = acc_dtype(dt);
  const bool need_min = s.norm == AttnNorm::linear || s.norm == AttnNorm::ramp;
  (need_lse ? required : optional)(op, lse, acc, {sh.B, sh.Hq, sh.T}, what);
  (need_min ? required : optional)(op, row_min, DType::i32, {sh.B, sh.Hq, sh.T}, what);
  (need_min ? required : optional)(op, row_sum, acc, {sh.B, sh.Hq, sh.T}, what);
}

void captures(const char* op, const AttentionCaptures& c, const AttentionSpec& s, AttnShape& sh, DType dt) {
  const DType acc = acc_dtype(dt);
  if (c.rows.defined()) {
    CHECK(c.rows.dtype == DType::i32 && c.rows.ndim == 1, op, ": captures.rows must be i32 [nrows]");
    sh.nrows_capture = c.rows.dim(0);
  }
  CHECK(c.rows.defined() || (!c.scores.defined() && !c.scores2.defined() && !c.probs.defined()), op,
        ": score/probability captures need captures.rows");
  optional(op, c.scores, acc, {sh.B, sh.Hq, sh.nrows_capture, sh.S}, "captures.scores");
  optional(op, c.probs, acc, {sh.B, sh.Hq, sh.nrows_capture, sh.S}, "captures.probs");
  CHECK(!c.scores2.defined() || s.differential, op, ": captures.scores2 is for differential");
  optional(op, c.scores2, acc, {sh.B, sh.Hq, sh.nrows_capture, sh.S}, "captures.scores2");
  const bool distribution = !s.differential && s.norm != AttnNorm::relaxed_linear;
  CHECK(distribution || (!c.entropy.defined() && !c.kl.defined()), op,
        ": entropy and KL need a probability distribution; not defined for ",
        s.differential ? "differential" : "relaxed_linear", " maps");
  optional(op, c.entropy, acc, {sh.B, sh.Hq, sh.T}, "captures.entropy");
  optional(op, c.kl, acc, {sh.B, sh.Hq, sh.T}, "captures.kl");
  optional(op, c.variance, acc, {sh.B, sh.Hq, sh.T}, "captures.variance");
  CHECK(c.spans.defined() == c.span_mass.defined(), op, ": captures.spans and span_mass go together");
  if (c.spans.defined()) {
    CHECK(c.spans.dtype == DType::i32 && c.spans.ndim == 2 && c.spans.dim(1) == 2, op,
          ": captures.spans must be i32 [nspans, 2], got ", c.spans.shape_str());
    sh.nspans = c.spans.dim(0);
    required(op, c.span_mass, acc, {sh.B, sh.Hq, sh.T, sh.nspans}, "captures.span_mass");
  }
}

void gradients(const char* op, const AttentionBackwardArgs& a, const AttnShape& sh, DType dt) {
  const DType acc = acc_dtype(dt);
  required(op, a.dout, dt, {sh.B, sh.Hq, sh.T, sh.dv}, "dout");
  optional(op, a.dq, dt, {sh.B, sh.Hq, sh.T, sh.d}, "dq");
  optional(op, a.dk, dt, {sh.B, sh.Hkv, sh.S_cap, sh.d}, "dk");
  optional(op, a.dv, dt, {sh.B, sh.Hkv, sh.S_cap, sh.dv}, "dv");
  CHECK(a.spec.differential || (!a.dq2.defined() && !a.dk2.defined() && !a.dlambda.defined()), op,
        ": dq2/dk2/dlambda are only for spec.differential");
  optional(op, a.dq2, dt, {sh.B, sh.Hq, sh.T, sh.d}, "dq2");
  optional(op, a.dk2, dt, {sh.B, sh.Hkv, sh.S_cap, sh.d}, "dk2");
  if (a.dlambda.defined()) required(op, a.dlambda, acc, {a.lambda.dim(0)}, "dlambda");
  CHECK(!a.dscore_add.defined() || a.score_add.defined(), op, ": dscore_add without score_add");
  CHECK(!a.dscore_mul.defined() || a.score_mul.defined(), op, ": dscore_mul without score_mul");
  optional(op, a.dscore_add, acc, {sh.B, sh.Hq, sh.T}, "dscore_add");
  optional(op, a.dscore_mul, acc, {sh.B, sh.Hq, sh.T}, "dscore_mul");
}

}  // namespace attnlab::attention_checks
