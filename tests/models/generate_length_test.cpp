// Generation past a model's positions (plan_generation_length): GPT-2's learned positions end at
// n_positions, so generation stops there with a note instead of refusing the request; a prompt
// alone longer than that is refused with the fix; RoPE models (Qwen) run on with a warning.
#include "models/generate_test_util.h"

namespace attnlab::test {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(GenerationLength, Gpt2StopsAtItsLastLearnedPositionWithANote) {
  Ctx& ctx = cpu_ctx();
  const TinyShape shape = gen_shape();  // P = 32 positions
  Model m(tiny_config(ModelArch::gpt2, true, shape), {Device::cpu, DType::f64, false}, ctx);
  randomize_params(m, ctx, 5);
  const int32_t V = int32_t(m.config().vocab_size);
  // 29 prompt tokens + 10 new ones would need 38 positions: 4 new tokens fit (positions 29..31
  // are fed back, the 4th token is only sampled).
  const std::vector<std::vector<int32_t>> prompts = {rand_ints(29, 0, V, 61), rand_ints(13, 0, V, 62)};
  GenerationConfig g;
  g.max_new_tokens = 10;
  const GenerationResult r = generate(m, ctx, prompts, g);
  ASSERT_EQ(r.tokens.size(), 2u);
  EXPECT_EQ(r.tokens[0].size(), 4u);
  EXPECT_EQ(r.tokens[1].size(), 4u) << "the batch stops with its longest prompt";
  EXPECT_NE(r.length_note.find("32 learned positions"), std::string::npos) << r.length_note;
  EXPECT_NE(r.length_note.find("4 new tokens, not the 10"), std::string::npos) << r.length_note;
  // The tokens are those of a request that fits: the same first 4 as asking for 4.
  GenerationConfig four = g;
  four.max_new_tokens = 4;
  const GenerationResult fits = generate(m, ctx, prompts, four);
  EXPECT_EQ(fits.tokens, r.tokens);
  EXPECT_TRUE(fits.length_note.empty()) << fits.length_note;

  const GenerationLength plan = plan_generation_length(m.config(), 29, 10);
  EXPECT_TRUE(plan.truncated);
  EXPECT_EQ(plan.max_new_tokens, 4);
  // A prompt that alone passes the positions cannot be generated from: refused with the fix.
  const std::string e = error_of([&] { plan_generation_length(m.config(), 33, 1); });
  EXPECT_NE(e.find("33 tokens"), std::string::npos) << e;
  EXPECT_NE(e.find("Fix: shorten the prompt to at most 32 tokens"), std::string::npos) << e;
}

TEST(GenerationLength, QwenRunsPastMaxPositionEmbeddingsWithAWarning) {
  Ctx& ctx = cpu_ctx();
  Model m(tiny_config(ModelArch::qwen2, true, gen_shape()), {Device::cpu, DType::f64, false}, ctx);
  randomize_params(m, ctx, 6);
  const int32_t V = int32_t(m.config().vocab_size);
  GenerationConfig g;
  g.max_new_tokens = 9;
  const GenerationResult r = generate(m, ctx, {rand_ints(30, 0, V, 63)}, g);
  EXPECT_EQ(r.tokens[0].size(), 9u);
  EXPECT_NE(r.length_note.find("warning"), std::string::npos) << r.length_note;
  EXPECT_NE(r.length_note.find("max_position_embeddings 32"), std::string::npos) << r.length_note;
  const GenerationLength plan = plan_generation_length(m.config(), 30, 9);
  EXPECT_FALSE(plan.truncated);
  EXPECT_EQ(plan.max_new_tokens, 9);
  EXPECT_TRUE(plan_generation_length(m.config(), 24, 9).note.empty());
}

}  // namespace
}  // namespace attnlab::test
