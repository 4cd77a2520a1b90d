// Every `attnlab icl` command on the tiny Qwen3 stand-in: exit status 0, and the run JSON holds
// exactly the metrics the command computes (the others null); options from the study's fields
// override the file; dual-form-check reports the identity holding.
#include <gtest/gtest.h>

#include <filesystem>

#include "data/asset_cache.h"
#include "studies/icl/icl_test_util.h"
#include "support/subprocess.h"
#include "support/testing.h"

namespace attnlab::test {
namespace {

std::string binary() { return std::string(ATTNLAB_BINARY_DIR) + "/attnlab"; }

TEST(IclCli, EveryCommandOnATinyStandIn) {
  if (!std::filesystem::exists(binary())) GTEST_SKIP() << "the attnlab binary is not built (" << binary() << ")";
  ATTNLAB_REQUIRE_ASSET("qwen3/tokenizer.json");
  ScratchDir dir;
  const IclStandIn s = make_icl_standin(dir.path, 4, 4);
  const std::string json = dir / "out/icl_sst2_seed1.json";
  struct Case {
    std::string command;
    std::vector<std::string> computed, null;
  };
  const std::vector<Case> cases = {
      {"finetune-eval", {"ZSL_accuracy", "ICL_accuracy", "FT_accuracy", "Rec2FT_seed", "rec2ft_counts"}, {"SimAOU", "SimAM", "kendall"}},
      {"simaou --simaou-source attn_out --simaou-paper", {"SimAOU", "RandomSimAOU"}, {"SimAM", "kendall", "FT_accuracy"}},
      {"simam --simam-align paper", {"SimAM", "ZSL_SimAM"}, {"SimAOU", "kendall"}},
      {"kendall --kendall-paper --kendall-demo-pass icl", {"kendall", "random_kendall", "kendall_paper"}, {"SimAOU", "SimAM"}},
      {"run --label-scoring --ft-paper --ft-paper-lr 0.05",
       {"ZSL_accuracy", "FT_accuracy", "Rec2FT_seed", "SimAOU", "SimAM", "kendall"}, {}},
  };
  for (const Case& c : cases) {
    std::string out;
    // --k and --seed override the file's k: 4 and seed: 0.
    const std::string cmd = binary() + " icl " + c.command + " " + s.yaml + " --k 3 --seed 1";
    ASSERT_EQ(run_command(cmd, out), 0) << cmd << "\n" << out;
    const auto j = nlohmann::json::parse(read_text(json));
    EXPECT_EQ(j["k"].get<int64_t>(), 3) << c.command;
    EXPECT_EQ(j["seed"].get<int64_t>(), 1) << c.command;
    for (const std::string& key : c.computed) EXPECT_FALSE(j[key].is_null()) << c.command << ": " << key;
    for (const std::string& key : c.null) EXPECT_TRUE(j[key].is_null()) << c.command << ": " << key;
  }
  {
    const auto j = nlohmann::json::parse(read_text(json));
    EXPECT_EQ(j["settings"]["prediction"], "label_scoring (PAPER)");
    EXPECT_EQ(j["settings"]["finetune"], "sgd, label-token loss (PAPER)");
  }
  std::string out;
  ASSERT_EQ(run_command(binary() + " icl select " + s.yaml + " --seed-max 2", out), 0) << out;
  EXPECT_NE(out.find("Best seed: "), std::string::npos) << out;
  EXPECT_TRUE(std::filesystem::exists(dir / "out/select_sst2.json"));
  ASSERT_EQ(run_command(binary() + " icl dual-form-check " + s.yaml + " --layer 1", out), 0) << out;
  EXPECT_NE(out.find("holds"), std::string::npos) << out;
  // A wrong value is a usage error naming the option's field.
  EXPECT_EQ(run_command(binary() + " icl run " + s.yaml + " --simaou-source nope", out), 2) << out;
  EXPECT_NE(out.find("simaou_source"), std::string::npos) << out;
}

}  // namespace
}  // namespace attnlab::test
