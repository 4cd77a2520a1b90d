// `attnlab eval gsm8k` and `attnlab chat` end to end on tiny stand-ins: random tiny Qwen2 folders
// (attnlab init without tokenizer files, which take tens of seconds to write; --tokenizer qwen2.5
// instead) and synthetic GSM8K records.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "data/asset_cache.h"
#include "data/data_test_util.h"
#include "support/subprocess.h"

namespace attnlab::test {
namespace {

std::string binary() { return std::string(ATTNLAB_BINARY_DIR) + "/attnlab"; }

size_t count_records(const std::string& csv) {
  // Responses may hold newlines inside quotes: count line ends outside quotes.
  size_t n = 0;
  bool quoted = false;
  for (char c : csv) {
    if (c == '"') quoted = !quoted;
    else if (c == '\n' && !quoted) ++n;
  }
  return n;
}

class EvalChatCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(binary())) GTEST_SKIP() << "the attnlab binary is not built (" << binary() << ")";
    ATTNLAB_REQUIRE_ASSET("qwen3/tokenizer.json");  // the qwen2.5 tokenizer is read from these files
  }
  std::string run_ok(const std::string& args) {
    std::string out;
    EXPECT_EQ(run_command(binary() + " " + args, out, 120), 0) << args << "\n" << out;
    return out;
  }
  ScratchDir dir;
};

TEST_F(EvalChatCli, EvalGsm8kTwoModelsCsvSummaryAndBatchEquality) {
  run_ok("init --arch qwen2 --tiny --tokenizer none --out " + (dir / "m1") + " --seed 1");
  run_ok("data synth gsm8k --n 5 --seed 4 --out " + (dir / "g.jsonl"));
  const std::string common = " --data " + (dir / "g.jsonl") + " --max-new-tokens 6 --greedy --tokenizer qwen2.5";
  const std::string out = run_ok("eval gsm8k" + common + " --model " + (dir / "m1") + " --model " + (dir / "m1") +
                                 " --name original --name two_pass --batch-size 2 --out " + (dir / "ev"));
  EXPECT_NE(out.find("[5/5] accuracy"), std::string::npos) << out;
  EXPECT_NE(out.find("two_pass − original"), std::string::npos) << out;

  const std::string all = read_text(dir / "ev/gsm8k_results.csv");
  EXPECT_EQ(all.substr(0, all.find('\n')),
            "question,true_answer,original_answer,original_correct,two_pass_answer,two_pass_correct");
  EXPECT_EQ(count_records(all), 6u);
  const std::string per = read_text(dir / "ev/gsm8k_two_pass.csv");
  EXPECT_EQ(per.substr(0, per.find('\n')),
            "index,question,true_answer,two_pass_answer,two_pass_correct,two_pass_strict_answer,two_pass_strict_correct,"
            "new_tokens,stopped,response");
  EXPECT_EQ(count_records(per), 6u);
  const auto summary = nlohmann::json::parse(read_text(dir / "ev/summary.json"));
  EXPECT_EQ(summary["records"], 5);
  ASSERT_EQ(summary["models"].size(), 2u);
  EXPECT_EQ(summary["models"][0]["name"], "original");
  EXPECT_EQ(summary["models"][1]["records"], 5);
  EXPECT_TRUE(summary.contains("difference"));
  EXPECT_EQ(summary["settings"]["models"][0]["do_sample"], false);

  // One record at a time writes the same responses (batched left-over batches and ragged prompts
  // change nothing under greedy decoding).
  run_ok("eval gsm8k" + common + " --model " + (dir / "m1") + " --name two_pass --batch-size 1 --out " + (dir / "ev1"));
  EXPECT_EQ(read_text(dir / "ev1/gsm8k_two_pass.csv"), per);

  // A malformed record: the file, the line and the fix; exit status non-zero.
  write_text(dir / "bad.jsonl", "{\"question\": \"q\", \"answer\": \"#### 1\"}\n{\"question\": \"q\"}\n");
  std::string bad;
  EXPECT_NE(run_command(binary() + " eval gsm8k --data " + (dir / "bad.jsonl") + " --model " + (dir / "m1") +
                            " --tokenizer qwen2.5 --out " + (dir / "evbad"),
                        bad, 60),
            0);
  EXPECT_NE(bad.find("bad.jsonl' line 2: no \"answer\" field. Fix:"), std::string::npos) << bad;
}

TEST_F(EvalChatCli, ChatPromptStdinAndAnalyzeGatesError) {
  run_ok("init --arch qwen2 --tiny --tokenizer none --out " + (dir / "m") + " --seed 3");
  const std::string one = run_ok("chat --tokenizer qwen2.5 --model " + (dir / "m") + " --prompt 'What is 7 * 8?' --max-new-tokens 5 --greedy --out " +
                                 (dir / "c.json"));
  const auto j = nlohmann::json::parse(read_text(dir / "c.json"));
  EXPECT_EQ(j["turns"].size(), 1u);
  EXPECT_EQ(j["user"], "What is 7 * 8?");
  EXPECT_GE(j["tokens"].size(), 1u);
  EXPECT_LE(j["tokens"].size(), 5u);
  EXPECT_NE(j["prompt_format"].get<std::string>().find("chat template qwen2.5"), std::string::npos) << j.dump();

  // Two lines on stdin: two turns of one conversation; the second prompt holds the first exchange.
  std::string out;
  ASSERT_EQ(run_command("printf 'Hi\\n/reset\\nAgain\\nAnd again\\n' | " + binary() + " chat --tokenizer qwen2.5 --model " + (dir / "m") +
                            " --max-new-tokens 4 --seed 2 --out " + (dir / "c2.json"),
                        out, 120),
            0)
      << out;
  const auto k = nlohmann::json::parse(read_text(dir / "c2.json"));
  ASSERT_EQ(k["turns"].size(), 3u) << out;
  EXPECT_EQ(k["turns"][2]["user"], "And again");
  EXPECT_NE(out.find("(conversation reset)"), std::string::npos) << out;

  // --analyze-gates on a model without two-pass gates: one clear error naming the fix.
  std::string err;
  EXPECT_NE(run_command(binary() + " chat --tokenizer qwen2.5 --model " + (dir / "m") + " --prompt Hi --max-new-tokens 2 --analyze-gates",
                        err, 60),
            0);
  EXPECT_NE(err.find("has no two-pass gates"), std::string::npos) << err;
  EXPECT_NE(err.find("Fix:"), std::string::npos) << err;
}

}  // namespace
}  // namespace attnlab::test
