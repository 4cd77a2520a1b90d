// attnlab eval gsm8k's library (studies/two_pass/gsm8k_eval.h) and generation on any model
// (core/models/generate_any.h): batched generation equals one prompt at a time, the full-forward
// path equals the KV-cache path, the CSV columns and quoting, the summary.
#include "studies/two_pass/gsm8k_eval.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "core/models/generate_any.h"
#include "core/models/scratch_decoder.h"
#include "data/data_test_util.h"
#include "data/synth.h"
#include "models/model_test_util.h"

namespace attnlab::test {
namespace {

// RFC 4180 rows (quoted fields may hold commas, quotes and newlines).
std::vector<std::vector<std::string>> parse_csv(const std::string& text) {
  std::vector<std::vector<std::string>> rows(1, std::vector<std::string>(1));
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') rows.back().back() += '"', ++i;
      else if (c == '"') quoted = false;
      else rows.back().back() += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      rows.back().emplace_back();
    } else if (c == '\n') {
      rows.emplace_back(1);
    } else {
      rows.back().back() += c;
    }
  }
  if (rows.back().size() == 1 && rows.back()[0].empty()) rows.pop_back();
  return rows;
}

std::vector<data::Gsm8kRecord> synth_records(int n, uint64_t seed) {
  std::vector<data::Gsm8kRecord> r;
  for (int i = 0; i < n; ++i) {
    const data::Gsm8kProblem p = data::make_gsm8k_problem(seed, uint64_t(i));
    r.push_back({p.question, p.answer, i + 1});
  }
  return r;
}

// A tiny Qwen2 over the byte tokenizer's 258 ids, positions enough for the GSM8K prompt.
ModelConfig byte_qwen_config() {
  TinyShape s;
  s.V = 258;
  s.P = 1024;
  return tiny_config(ModelArch::qwen2, true, s);
}

TEST(Gsm8kEval, BatchedLeftoverBatchesEqualOneByOne) {
  Ctx& ctx = cpu_ctx();
  ScratchDir dir;
  const data::Tokenizer tok = make_byte_tokenizer(dir / "tok");
  Model m(byte_qwen_config(), {Device::cpu, DType::f64, false}, ctx);
  randomize_params(m, ctx, 17);
  const auto records = synth_records(5, 3);
  const auto prompts = two_pass::gsm8k_prompt_ids(tok, two_pass::PromptFormat{}, records);
  // The plain transcript of §1.7's prompt: "User: <prompt>\nAssistant:".
  EXPECT_EQ(tok.decode(prompts[1]), "User: " + data::gsm8k_prompt(records[1].question) + "\nAssistant:");
  EXPECT_NE(prompts[0].size(), prompts[1].size());  // lengths differ: the batch is ragged
  GenerationConfig g;
  g.max_new_tokens = 6;
  int batches = 0;
  const auto batched = two_pass::evaluate_gsm8k(m, ctx, tok, records, prompts, g, 2, [&](const auto&) { ++batches; });
  EXPECT_EQ(batches, 3);  // 2 + 2 + 1
  const auto single = two_pass::evaluate_gsm8k(m, ctx, tok, records, prompts, g, 1);
  ASSERT_EQ(batched.rows.size(), 5u);
  std::set<std::string> distinct;
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(batched.rows[i].response, single.rows[i].response) << "record " << i;
    EXPECT_EQ(batched.rows[i].new_tokens, 6);
    EXPECT_EQ(batched.rows[i].index, int64_t(i));
    // The scores are those of the response, recomputed here.
    const data::Gsm8kScore s = data::score_gsm8k(batched.rows[i].response, records[i].answer);
    EXPECT_EQ(batched.rows[i].score.correct, s.correct);
    distinct.insert(batched.rows[i].response);
  }
  EXPECT_GT(distinct.size(), 1u);  // not one answer copied to every row
  EXPECT_EQ(batched.new_tokens, 30);
}

TEST(GenerateAny, FullForwardPathEqualsTheKvCachePath) {
  Ctx& ctx = cpu_ctx();
  TinyShape s;
  s.V = 41;
  s.P = 64;
  Model m(tiny_config(ModelArch::qwen2, false, s), {Device::cpu, DType::f64, false}, ctx);
  randomize_params(m, ctx, 8);
  const std::vector<std::vector<int32_t>> prompts = {rand_ints(7, 0, 41, 1), rand_ints(2, 0, 41, 2),
                                                     rand_ints(5, 0, 41, 3)};
  GenerationConfig g;
  g.max_new_tokens = 9;
  g.repetition_penalty = 1.3f;
  const GenerationResult first = generate(m, ctx, prompts, g);
  g.stop_tokens = {first.tokens[1][2]};  // row 1 stops at its third token; the others may go on
  const GenerationResult cached = generate(m, ctx, prompts, g);
  const GenerationResult full = generate_by_recompute(m, ctx, prompts, g);
  ASSERT_EQ(full.tokens.size(), 3u);
  for (size_t b = 0; b < 3; ++b) {
    EXPECT_EQ(full.tokens[b], cached.tokens[b]) << "row " << b;
    EXPECT_EQ(full.stopped[b], cached.stopped[b]) << "row " << b;
  }
  EXPECT_TRUE(full.stopped[1]);
  EXPECT_LE(full.tokens[1].size(), 3u);
  EXPECT_EQ(full.stats.new_tokens, cached.stats.new_tokens);
}

TEST(GenerateAny, ScratchDecoderBatchEqualsAloneAndStopsAtItsPositions) {
  Ctx& ctx = cpu_ctx();
  ScratchDecoderConfig c;
  c.vocab_size = 53;
  c.pad_id = 52;
  c.hidden = 8;
  c.layers = 2;
  c.heads = 2;
  c.head_dim = 4;
  c.ffn = 16;
  c.context = 24;
  ScratchDecoder m(c, {Device::cpu, DType::f64}, ctx);
  init_scratch_decoder(m, ctx, 4);
  const std::vector<std::vector<int32_t>> prompts = {rand_ints(5, 0, 52, 11), rand_ints(9, 0, 52, 12)};
  GenerationConfig g;
  g.max_new_tokens = 7;
  const GenerationResult batched = generate_any(m, ctx, prompts, g);
  for (size_t b = 0; b < 2; ++b) {
    const GenerationResult alone = generate_any(m, ctx, {prompts[b]}, g);
    EXPECT_EQ(batched.tokens[b], alone.tokens[0]) << "prompt " << b;
    // Greedy by an unpadded full forward of exactly the sequence so far.
    std::vector<int32_t> seq = prompts[b];
    for (int32_t got : alone.tokens[0]) {
      const int64_t T = int64_t(seq.size());
      m.plan(ctx, 1, T);
      Buffer ids = make_ids(Device::cpu, {1, T}, seq);
      m.forward(ctx, ids.t(), Tensor(), 0);
      const std::vector<double> all = m.logits_f64(ctx);
      const auto row = all.end() - c.vocab_size;
      EXPECT_EQ(got, int32_t(std::max_element(row, all.end()) - row));
      seq.push_back(got);
    }
  }
  EXPECT_NE(batched.tokens[0], batched.tokens[1]);
  // 20 prompt tokens + 7 new would pass the 24 learned positions: 5 new tokens, with a note.
  const GenerationResult cut = generate_any(m, ctx, {rand_ints(20, 0, 52, 13)}, g);
  EXPECT_EQ(cut.tokens[0].size(), 5u);
  EXPECT_NE(cut.length_note.find("24 learned positions"), std::string::npos) << cut.length_note;
}

two_pass::Gsm8kModelResult hand_made_result(const std::vector<data::Gsm8kRecord>& records,
                                            const std::vector<std::string>& responses, const std::string& name) {
  two_pass::Gsm8kModelResult r;
  r.name = name;
  r.path = "/models/" + name;
  for (size_t i = 0; i < responses.size(); ++i) {
    two_pass::Gsm8kRow row;
    row.index = int64_t(i);
    row.response = responses[i];
    row.score = data::score_gsm8k(responses[i], records[i].answer);
    row.new_tokens = int64_t(10 + i);
    row.stopped = i % 2 == 0;
    r.correct += row.score.correct;
    r.strict_correct += row.score.strict_correct;
    r.rows.push_back(row);
  }
  return r;
}

TEST(Gsm8kEval, CsvColumnsQuotingAndSummary) {
  ScratchDir dir;
  const std::vector<data::Gsm8kRecord> records = {
      {"Tom has 3, \"big\" boxes\nand 1 more. How many?", "3+1=4\n#### 4", 1},
      {"How much is 1,000 + 234?", "#### 1,234", 2},
      {"A question whose gold has no number", "none", 3},
  };
  const auto a = hand_made_result(records, {"So, 4.\n#### 4", "It is 1,234 dollars", "5"}, "original");
  const auto b = hand_made_result(records, {"I do not know", "#### 1,234", "#### 7"}, "two_pass");
  EXPECT_EQ(a.correct, 2);
  EXPECT_EQ(a.strict_correct, 1);
  EXPECT_EQ(b.correct, 1);
  EXPECT_EQ(b.strict_correct, 1);

  two_pass::write_gsm8k_model_csv(dir / "a.csv", records, a);
  const auto rows = parse_csv(read_text(dir / "a.csv"));
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0], (std::vector<std::string>{"index", "question", "true_answer", "original_answer", "original_correct",
                                               "original_strict_answer", "original_strict_correct", "new_tokens",
                                               "stopped", "response"}));
  EXPECT_EQ(rows[1], (std::vector<std::string>{"0", records[0].question, "4", "4", "1", "4", "1", "10", "1",
                                               "So, 4.\n#### 4"}));
  EXPECT_EQ(rows[2], (std::vector<std::string>{"1", records[1].question, "1234", "1234", "1", "", "0", "11", "0",
                                               "It is 1,234 dollars"}));
  EXPECT_EQ(rows[3][2], "");   // gold without a number: no true answer
  EXPECT_EQ(rows[3][4], "0");  // and never correct

  two_pass::write_gsm8k_results_csv(dir / "all.csv", records, {b, a});
  const auto all = parse_csv(read_text(dir / "all.csv"));
  ASSERT_EQ(all.size(), 4u);
  // METHODS §1.7's columns for the names two_pass and original.
  EXPECT_EQ(all[0], (std::vector<std::string>{"question", "true_answer", "two_pass_answer", "two_pass_correct",
                                              "original_answer", "original_correct"}));
  EXPECT_EQ(all[1], (std::vector<std::string>{records[0].question, "4", "", "0", "4", "1"}));
  EXPECT_EQ(all[3], (std::vector<std::string>{records[2].question, "", "7", "0", "5", "0"}));

  const auto j = two_pass::gsm8k_summary_json("g.jsonl", {a, b}, {{"seed", 1}});
  EXPECT_EQ(j["records"], 3);
  EXPECT_DOUBLE_EQ(j["models"][0]["accuracy"].get<double>(), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(j["models"][1]["strict_accuracy"].get<double>(), 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(j["difference"]["two_pass_minus_original"]["accuracy"].get<double>(), 1.0 / 3.0 - 2.0 / 3.0);
  EXPECT_EQ(j["models"][1]["csv"], "gsm8k_two_pass.csv");
}

TEST(Gsm8kEval, CsvFieldQuotesOnlyWhatNeedsIt) {
  EXPECT_EQ(two_pass::csv_field("plain text 42"), "plain text 42");
  EXPECT_EQ(two_pass::csv_field("a,b"), "\"a,b\"");
  EXPECT_EQ(two_pass::csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(two_pass::csv_field("two\nlines"), "\"two\nlines\"");
  EXPECT_EQ(two_pass::safe_name("Qwen2.5 1.5B/sft"), "Qwen2.5_1.5B_sft");
}

}  // namespace
}  // namespace attnlab::test
