// attnlab chat's library: multi-turn prompts (chat templates and the plain transcript), the gate
// report from gate_magnitude captures (synthetic ones: fed to a ProbeSink as a two-pass layer
// would), the alignment of decode calls with generated tokens, and the errors of --analyze-gates on
// models without gates.
#include "studies/two_pass/chat_session.h"

#include <gtest/gtest.h>

#include "core/models/generate_any.h"
#include "core/models/scratch_decoder.h"
#include "data/asset_cache.h"
#include "data/data_test_util.h"
#include "models/model_test_util.h"

namespace attnlab::test {
namespace {

using data::ChatMessage;

const std::vector<ChatMessage> kExchange = {
    {"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "2+2?"}};

TEST(ChatPrompt, MultiTurnQwen25TemplateText) {
  two_pass::PromptFormat f;
  f.family = data::ChatFamily::qwen2_5;
  EXPECT_EQ(two_pass::conversation_text(f, kExchange),
            "<|im_start|>system\nBe brief.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nHello!<|im_end|>\n"
            "<|im_start|>user\n2+2?<|im_end|>\n"
            "<|im_start|>assistant\n");
  // Without a system message Qwen2.5 inserts its own.
  const std::vector<ChatMessage> no_system(kExchange.begin() + 1, kExchange.end());
  EXPECT_EQ(two_pass::conversation_text(f, no_system),
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nHello!<|im_end|>\n"
            "<|im_start|>user\n2+2?<|im_end|>\n"
            "<|im_start|>assistant\n");
  // Qwen3 without thinking: no default system message, an empty think block to answer in.
  f.family = data::ChatFamily::qwen3;
  f.enable_thinking = false;
  EXPECT_EQ(two_pass::conversation_text(f, no_system),
            "<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nHello!<|im_end|>\n"
            "<|im_start|>user\n2+2?<|im_end|>\n"
            "<|im_start|>assistant\n<think>\n\n</think>\n\n");
}

TEST(ChatPrompt, PlainTranscriptWithoutATemplate) {
  EXPECT_EQ(two_pass::plain_conversation(kExchange), "Be brief.\n\nUser: Hi\nAssistant: Hello!\nUser: 2+2?\nAssistant:");
  EXPECT_EQ(two_pass::conversation_text(two_pass::PromptFormat{}, {{"user", "Yo"}}), "User: Yo\nAssistant:");
  EXPECT_THROW(two_pass::plain_conversation({{"tool", "x"}}), Error);
  EXPECT_FALSE(two_pass::prompt_format("none", "qwen2.5").family.has_value());
  EXPECT_EQ(two_pass::prompt_format("auto", "qwen2.5").family, data::ChatFamily::qwen2_5);
  EXPECT_EQ(two_pass::prompt_format("qwen3", "gpt2").family, data::ChatFamily::qwen3);
  EXPECT_FALSE(two_pass::prompt_format("auto", "gpt2").family.has_value());
}

TEST(ChatPrompt, EncodedTurnsAndStopTokensWithTheQwenTokenizer) {
  ATTNLAB_REQUIRE_ASSET("qwen3/tokenizer.json");  // the qwen2.5 tokenizer is read from these files
  const data::Tokenizer& tok = cached_tokenizer("qwen2.5");
  two_pass::PromptFormat f;
  f.family = data::ChatFamily::qwen2_5;
  const std::vector<int32_t> ids = two_pass::encode_conversation(tok, f, kExchange);
  const int32_t start = *tok.token_id("<|im_start|>"), end = *tok.token_id("<|im_end|>");
  EXPECT_EQ(std::count(ids.begin(), ids.end(), start), 5);  // system, user, assistant, user, generation prompt
  EXPECT_EQ(std::count(ids.begin(), ids.end(), end), 4);
  EXPECT_EQ(tok.decode(ids), two_pass::conversation_text(f, kExchange));
  std::vector<int32_t> stops = {7, end};
  two_pass::add_template_stop_tokens(tok, f, stops);
  EXPECT_EQ(stops, (std::vector<int32_t>{7, *tok.token_id("<|endoftext|>"), end}));
  std::vector<int32_t> plain = {7};
  two_pass::add_template_stop_tokens(tok, two_pass::PromptFormat{}, plain);
  EXPECT_EQ(plain, std::vector<int32_t>{7});
}

// Feeds gate_magnitude captures as a two-pass model of `L` layers would during generation: the
// prefill ([B, T]) then one [B, 1] call per generated token; row `row` holds `per_token[i][l]`.
void feed_generation(ProbeSink& sink, Ctx& ctx, int64_t B, int64_t row, int64_t T,
                     const std::vector<std::vector<double>>& per_token) {
  const int64_t L = int64_t(per_token[0].size());
  for (int64_t l = 0; l < L; ++l) {
    Buffer prefill = make_tensor(Device::cpu, DType::f64, {B, T}, rand_uniform(size_t(B * T), 5, 9, uint64_t(l)));
    sink.take_gates(ctx, l, prefill.t());
  }
  for (size_t i = 0; i < per_token.size(); ++i)
    for (int64_t l = 0; l < L; ++l) {
      std::vector<double> v(size_t(B), 100.0 + double(i));  // other rows: values that must not be read
      v[size_t(row)] = per_token[i][size_t(l)];
      Buffer b = make_tensor(Device::cpu, DType::f64, {B, 1}, v);
      sink.take_gates(ctx, l, b.t());
    }
  sink.flush(ctx);  // as a ProbeScope does when generation ends
}

TEST(GateReport, PerTokenPerLayerMeansAndLargestToken) {
  Ctx& ctx = cpu_ctx();
  ProbeSink sink;
  // Token means 0.2, 0.3, 0.2: token 1 is the largest; layer means 0.8/3 and 0.6/3.
  feed_generation(sink, ctx, 2, 1, 7, {{0.1, 0.3}, {0.5, 0.1}, {0.2, 0.2}});
  const two_pass::GateReport r =
      two_pass::gate_report_from_captures(sink, 2, 1, 1, {11, 12, 13}, {"a", " b", "\n"}, "m");
  ASSERT_EQ(r.magnitude.size(), 3u);
  EXPECT_EQ(r.magnitude[1], (std::vector<double>{0.5, 0.1}));
  EXPECT_NEAR(r.per_layer_mean[0], 0.8 / 3, 1e-15);
  EXPECT_NEAR(r.per_layer_mean[1], 0.6 / 3, 1e-15);
  EXPECT_NEAR(r.overall_mean, 0.7 / 3, 1e-15);
  EXPECT_EQ(r.max_index, 1);
  EXPECT_NEAR(r.max_value, 0.3, 1e-15);

  const nlohmann::ordered_json j = two_pass::gate_report_json(r);
  EXPECT_EQ(j["tokens"], (std::vector<std::string>{"a", " b", "\n"}));
  EXPECT_EQ(j["layers"], 2);
  EXPECT_EQ(j["magnitude"][2], (std::vector<double>{0.2, 0.2}));
  EXPECT_EQ(j["max_token"]["index"], 1);
  EXPECT_EQ(j["max_token"]["id"], 12);
  EXPECT_EQ(j["max_token"]["token"], " b");
  const std::string table = two_pass::gate_report_table(r);
  EXPECT_NE(table.find("largest: token #1 ' b'"), std::string::npos) << table;
  EXPECT_NE(table.find("'\\n'"), std::string::npos) << table;  // a newline token stays on its line
  EXPECT_NE(table.find("0.26667"), std::string::npos) << table;
}

TEST(GateReport, RandomCapturesMatchAHostRecomputation) {
  Ctx& ctx = cpu_ctx();
  const int64_t L = 5, N = 13;
  std::vector<std::vector<double>> v(N);
  for (int64_t i = 0; i < N; ++i) v[size_t(i)] = rand_uniform(size_t(L), 0.0, 0.4, uint64_t(50 + i));
  ProbeSink sink;
  feed_generation(sink, ctx, 1, 0, 3, v);
  std::vector<int32_t> ids(N);
  std::vector<std::string> texts(N);
  for (int64_t i = 0; i < N; ++i) ids[size_t(i)] = int32_t(i), texts[size_t(i)] = "t" + std::to_string(i);
  const auto r = two_pass::gate_report_from_captures(sink, L, 1, 0, ids, texts, "m");
  int64_t best = 0;
  double best_mean = -1;
  for (int64_t i = 0; i < N; ++i) {
    double mean = 0;
    for (double x : v[size_t(i)]) mean += x;
    mean /= double(L);
    if (mean > best_mean) best_mean = mean, best = i;
  }
  EXPECT_EQ(r.max_index, best);
  EXPECT_NEAR(r.max_value, best_mean, 1e-14);
  for (int64_t l = 0; l < L; ++l) {
    double mean = 0;
    for (int64_t i = 0; i < N; ++i) mean += v[size_t(i)][size_t(l)];
    EXPECT_NEAR(r.per_layer_mean[size_t(l)], mean / double(N), 1e-14);
  }
}

TEST(GateReport, NoCaptureIsTheNoGatesErrorAndGapsAreNamed) {
  Ctx& ctx = cpu_ctx();
  ProbeSink empty;
  const std::string m = error_of([&] { two_pass::gate_report_from_captures(empty, 2, 1, 0, {1}, {"x"}, "/m/base"); });
  EXPECT_NE(m.find("no gate_magnitude capture was produced"), std::string::npos) << m;
  EXPECT_NE(m.find("'/m/base' has no two-pass gates"), std::string::npos) << m;
  EXPECT_NE(m.find("Fix:"), std::string::npos) << m;
  EXPECT_NE(m.find("two_pass"), std::string::npos) << m;
  ProbeSink short_sink;
  feed_generation(short_sink, ctx, 1, 0, 3, {{0.1, 0.2}});
  const std::string gap =
      error_of([&] { two_pass::gate_report_from_captures(short_sink, 2, 1, 0, {1, 2}, {"x", "y"}, "m"); });
  EXPECT_NE(gap.find("call 2"), std::string::npos) << gap;
}

ModelConfig byte_model_config() {
  TinyShape s;
  s.V = 258;
  s.P = 256;
  return tiny_config(ModelArch::qwen2, false, s);
}

// Decode call i + 1 of every layer holds generated token i's own hidden state: the same rows a full
// forward over prompt + generated tokens gives at those positions.
TEST(ChatTurn, EveryGeneratedTokenHasItsOwnDecodeCall) {
  Ctx& ctx = cpu_ctx();
  ScratchDir dir;
  const data::Tokenizer tok = make_byte_tokenizer(dir / "tok");
  Model m(byte_model_config(), {Device::cpu, DType::f64, false}, ctx);
  randomize_params(m, ctx, 3);
  const std::vector<int32_t> prompt = bytes_of("User: Hi\nAssistant:");
  GenerationConfig g;
  g.max_new_tokens = 5;
  ProbeSink sink;
  ProbeRequest req;
  req.positions = {0};
  req.hidden = true;
  sink.add(req);
  GenerationResult r;
  {
    ProbeScope scope(ctx, &sink);
    r = two_pass::generate_with_last_step(m, ctx, tok, prompt, g);
  }
  ASSERT_EQ(r.tokens[0].size(), 5u);
  EXPECT_EQ(r.tokens[0], generate(m, ctx, {prompt}, g).tokens[0]);
  std::vector<int32_t> seq = prompt;
  seq.insert(seq.end(), r.tokens[0].begin(), r.tokens[0].end());
  const int64_t P = int64_t(prompt.size()), T = int64_t(seq.size()), D = m.config().hidden_size;
  ProbeSink full;
  ProbeRequest fr;
  for (int64_t i = 0; i < 5; ++i) fr.positions.push_back(int32_t(P + i));
  fr.hidden = true;
  full.add(fr);
  m.plan(ctx, 1, T);
  Buffer ids = make_ids(Device::cpu, {1, T}, seq);
  {
    ProbeScope scope(ctx, &full);
    m.forward(ctx, ids.t(), Tensor(), 0);
  }
  for (int64_t l = 0; l < m.num_layers(); ++l) {
    const auto calls = sink.find("hidden", l);
    ASSERT_EQ(calls.size(), 6u) << "prefill + one call per generated token";
    const Capture& want = *full.find("hidden", l).at(0);
    for (int64_t i = 0; i < 5; ++i)
      for (int64_t d = 0; d < D; ++d)
        EXPECT_NEAR(calls[size_t(i + 1)]->values[size_t(d)], want.values[size_t(i * D + d)], 1e-10)
            << "layer " << l << " token " << i;
  }
}

TEST(ChatTurn, AnalyzeGatesOnModelsWithoutGatesIsOneClearError) {
  Ctx& ctx = cpu_ctx();
  ScratchDir dir;
  const data::Tokenizer tok = make_byte_tokenizer(dir / "tok");
  Model m(byte_model_config(), {Device::cpu, DType::f32, false}, ctx);
  randomize_params(m, ctx, 4);
  GenerationConfig g;
  g.max_new_tokens = 3;
  const std::vector<int32_t> prompt = bytes_of("User: Hi\nAssistant:");
  const std::string e = error_of([&] { two_pass::run_chat_turn(m, ctx, tok, prompt, g, true, "/models/base"); });
  EXPECT_NE(e.find("no gate_magnitude capture was produced: the model '/models/base' has no two-pass gates"),
            std::string::npos)
      << e;
  EXPECT_EQ(ctx.probes, nullptr);  // the sink is detached again
  // Without the analysis the turn is plain generation.
  const two_pass::ChatTurn t = two_pass::run_chat_turn(m, ctx, tok, prompt, g, false, "/models/base");
  EXPECT_EQ(t.generation.tokens[0], generate(m, ctx, {prompt}, g).tokens[0]);
  EXPECT_FALSE(t.gates.has_value());

  ScratchDecoderConfig c;
  c.vocab_size = 258;
  c.pad_id = 256;
  c.hidden = 8;
  c.layers = 1;
  c.heads = 2;
  c.head_dim = 4;
  c.ffn = 8;
  c.context = 64;
  ScratchDecoder s(c, {Device::cpu, DType::f32}, ctx);
  init_scratch_decoder(s, ctx, 1);
  const std::string se = error_of([&] { two_pass::run_chat_turn(s, ctx, tok, prompt, g, true, "/ckpt/std"); });
  EXPECT_NE(se.find("'/ckpt/std' is a from-scratch decoder, which has no two-pass gates"), std::string::npos) << se;
  EXPECT_EQ(two_pass::run_chat_turn(s, ctx, tok, prompt, g, false, "/ckpt/std").generation.tokens[0].size(), 3u);
}

}  // namespace
}  // namespace attnlab::test
