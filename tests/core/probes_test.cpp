// ProbeSink's staging: captures wait on the device until the scope ends (or the stage is full) and
// then land on the host in call order with the values a sink flushed after every call gets; reading
// while captures are staged is refused; an exception in the scope restores ctx.probes and drops
// what was staged; the scope restores the sink attached before it.
#include <cmath>
#include <stdexcept>

#include "core/probes.h"
#include "models/generate_test_util.h"

namespace attnlab::test {
namespace {

ProbeRequest hidden_and_stats() {
  ProbeRequest r;
  r.entropy = r.kl = r.variance = true;
  r.hidden = true;
  r.positions = {0, 2};
  r.probs = true;
  r.rows = {0};
  return r;
}

TinyShape long_context() {
  TinyShape s = gen_shape();
  s.P = 256;
  return s;
}

struct Tiny {
  Ctx& ctx = cpu_ctx();
  Model m{gen_config({"qwen2", ModelArch::qwen2, true, nullptr}, long_context()), {Device::cpu, DType::f64, false},
          ctx};
  Tiny() { randomize_params(m, ctx, 5); }
};

TEST(ProbeStaging, CapturesWaitUntilTheScopeEnds) {
  Tiny t;
  ProbeSink sink;
  sink.add(hidden_and_stats());
  {
    ProbeScope scope(t.ctx, &sink);
    EXPECT_EQ(t.ctx.probes, &sink);
    full_last_logits(t.m, t.ctx, {1, 2, 3, 4, 5});
    EXPECT_TRUE(sink.staged());
    EXPECT_THROW(sink.captures(), Error);
    EXPECT_THROW(sink.find("entropy"), Error);
  }
  EXPECT_EQ(t.ctx.probes, nullptr);
  EXPECT_FALSE(sink.staged());
  const auto ent = sink.find("entropy", 0);
  ASSERT_EQ(ent.size(), 1u);
  EXPECT_EQ(ent[0]->shape, (std::vector<int64_t>{1, 4, 5}));
  for (size_t i = 0; i < ent[0]->values.size(); ++i)  // random scores: every row but t = 0 (one key) spreads
    if (i % 5 != 0) EXPECT_GT(ent[0]->values[i], 0.0) << i;
    else EXPECT_EQ(ent[0]->values[i], 0.0) << i;
  const auto hid = sink.find("hidden", 1);
  ASSERT_EQ(hid.size(), 1u);
  EXPECT_EQ(hid[0]->shape[1], 2);  // positions 0 and 2
}

// A probability row beyond a call's queries (row 3 of a one-token decode step) reads NaN.
TEST(ProbeStaging, RowsBeyondTheCallReadNaN) {
  Tiny t;
  ProbeSink sink;
  ProbeRequest r;
  r.probs = true;
  r.rows = {3};
  sink.add(r);
  {
    CachedForward f(t.m, t.ctx, 1, 4, 6);
    ProbeScope scope(t.ctx, &sink);
    f.prefill(t.ctx, {{1, 2, 3, 4}});
    f.decode(t.ctx, {5});
  }
  const auto got = sink.find("probs", 0);
  ASSERT_EQ(got.size(), 2u);
  double mass = 0;
  for (size_t j = 0; j < 4; ++j) mass += got[0]->values[j];  // prefill, head 0: row 3 sees 4 keys
  EXPECT_NEAR(mass, 1.0, 1e-12);
  for (double v : got[1]->values) EXPECT_TRUE(std::isnan(v));
}

// Many calls overflow the first stage (2^16 elements): every capture must still come back, in call
// order, with the values of a sink flushed after each call.
TEST(ProbeStaging, AFullStageFlushesAndKeepsEveryCallInOrder) {
  Tiny t;
  ProbeSink many, one;
  many.add(hidden_and_stats());
  one.add(hidden_and_stats());
  // A prefill of 120 tokens, then decode steps: 2-3k staged elements per call (the probability row
  // of query 0 grows with the cache), ~240k in all.
  const int calls = 100, prompt_len = 120;
  {
    CachedForward a(t.m, t.ctx, 1, prompt_len, prompt_len + calls);
    CachedForward b(t.m, t.ctx, 1, prompt_len, prompt_len + calls);
    std::vector<int32_t> prompt;
    for (int i = 0; i < prompt_len; ++i) prompt.push_back(int32_t((i * 7 + 3) % 37));
    ProbeScope scope(t.ctx, &many);
    a.prefill(t.ctx, {prompt});
    for (int c = 1; c < calls; ++c) a.decode(t.ctx, {int32_t(c % 37)});
    // The same calls, each flushed on its own (the scope nesting restores `many` afterwards).
    for (int c = 0; c < calls; ++c) {
      ProbeScope inner(t.ctx, &one);
      if (c == 0) b.prefill(t.ctx, {prompt});
      else b.decode(t.ctx, {int32_t(c % 37)});
    }
    EXPECT_EQ(t.ctx.probes, &many);
  }
  for (const char* what : {"hidden", "entropy", "kl", "variance", "probs"}) {
    for (int64_t layer = 0; layer < t.m.num_layers(); ++layer) {
      const auto got = many.find(what, layer), want = one.find(what, layer);
      ASSERT_EQ(got.size(), size_t(calls)) << what << " layer " << layer;
      ASSERT_EQ(want.size(), size_t(calls)) << what;
      for (int c = 0; c < calls; ++c) {
        EXPECT_EQ(got[size_t(c)]->call, c) << what;
        EXPECT_EQ(got[size_t(c)]->shape, want[size_t(c)]->shape) << what << " call " << c;
        EXPECT_EQ(got[size_t(c)]->values, want[size_t(c)]->values) << what << " call " << c;
      }
    }
  }
}

TEST(ProbeStaging, AnExceptionInTheScopeDropsWhatWasStaged) {
  Tiny t;
  ProbeSink sink;
  sink.add(hidden_and_stats());
  {
    ProbeScope scope(t.ctx, &sink);
    full_last_logits(t.m, t.ctx, {1, 2, 3});
  }
  const size_t before = sink.captures().size();
  ASSERT_GT(before, 0u);
  try {
    ProbeScope scope(t.ctx, &sink);
    full_last_logits(t.m, t.ctx, {1, 2, 3, 4});
    throw std::runtime_error("stop");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(t.ctx.probes, nullptr);
  EXPECT_FALSE(sink.staged());
  EXPECT_EQ(sink.captures().size(), before);
  // An empty sink attaches nothing.
  ProbeSink empty;
  {
    ProbeScope scope(t.ctx, &empty);
    EXPECT_EQ(t.ctx.probes, nullptr);
  }
}

}  // namespace
}  // namespace attnlab::test
