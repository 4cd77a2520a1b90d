// `attnlab analyze needle` on every kind of checkpoint attnlab writes: tiny scratch-decoder
// checkpoints, HF folders (GPT-2, Qwen2, differential GPT-2; byte tokenizer) and an `attnlab init`
// folder with its own tokenizer: JSON per checkpoint, one CSV, numbers equal to the library's.
#include <cstdio>
#include <filesystem>

#include "studies/needle/needle_run.h"
#include "core/models/attention_rows.h"
#include "core/models/weights.h"
#include "data/tokenizer_files.h"
#include "models/model_test_util.h"
#include "core/memory.h"
#include "data/data_test_util.h"
#include "support/subprocess.h"
#include "support/testing.h"

namespace attnlab::test {
namespace {

std::string binary() { return std::string(ATTNLAB_BINARY_DIR) + "/attnlab"; }

TEST(NeedleCli, WritesJsonPerCheckpointAndOneCsv) {
  if (!std::filesystem::exists(binary())) GTEST_SKIP() << "the attnlab binary is not built (" << binary() << ")";
  Ctx& ctx = cpu_ctx();
  ScratchDir dir;
  data::Tokenizer tok = make_byte_tokenizer(dir / "tok");
  std::vector<analysis::NeedleReport> expected;
  for (bool differential : {false, true}) {
    ScratchDecoderConfig c;
    c.differential = differential;
    c.vocab_size = 258;
    c.pad_id = 256;
    c.hidden = 8;
    c.layers = 2;
    c.heads = 4;
    c.head_dim = 2;
    c.ffn = 16;
    c.context = 256;
    ScratchDecoder m(c, {Device::cpu, DType::f32}, ctx);
    init_scratch_decoder(m, ctx, differential ? 2 : 1);
    // Where the trainer keeps them: results are then filed under the run's name.
    const std::string ckpt = dir / (differential ? "runs/diff-run/checkpoints/best" : "runs/std-run/checkpoints/best");
    std::filesystem::create_directories(ckpt);
    save_scratch_decoder(m, ctx, ckpt + "/model.safetensors");
    analysis::NeedleRunOptions opt;
    opt.contexts.context_length = 32;
    opt.contexts.samples = 2;
    opt.contexts.depths = {0.0, 0.5};
    expected.push_back(analysis::run_needle_analysis(m, ctx, tok, opt));
  }
  std::string out;
  const std::string std_ckpt = dir / "runs/std-run/checkpoints/best/model.safetensors";
  const std::string diff_ckpt = dir / "runs/diff-run/checkpoints/best/model.safetensors";
  const std::string cmd = binary() + " analyze needle --ckpt " + std_ckpt + " --ckpt " + diff_ckpt +
                          " --ckpt " + diff_ckpt + " --tokenizer " + (dir / "tok") +
                          " --depths 0,0.5 --samples 2 --context-length 32 --out " + (dir / "out");
  ASSERT_EQ(run_command(cmd, out), 0) << out;
  // Files named by run (not needle_0_model.json); the same checkpoint twice gets a second name.
  const auto j0 = nlohmann::json::parse(read_text(dir / "out/needle_std-run.json"));
  const auto j1 = nlohmann::json::parse(read_text(dir / "out/needle_diff-run.json"));
  EXPECT_TRUE(std::filesystem::exists(dir / "out/needle_diff-run_2.json")) << out;
  EXPECT_EQ(j0["attention"], "standard");
  EXPECT_EQ(j1["attention"], "differential");
  EXPECT_NEAR(j0["avg_answer_attention_per_depth"]["0.5"].get<double>(), expected[0].depths[1].mean_answer, 1e-6);
  EXPECT_NEAR(j1["anr_per_depth"]["0"].get<double>(), expected[1].depths[0].mean_anr, 1e-5 * std::fabs(expected[1].depths[0].mean_anr));
  const std::string csv = read_text(dir / "out/needle_anr.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + 3 * 2) << csv;
  // A bad depth list is a bad argument (exit 2) that names the option.
  EXPECT_EQ(run_command(binary() + " analyze needle --ckpt " + std_ckpt + " --tokenizer " + (dir / "tok") +
                    " --depths 0,x --out " + (dir / "out2"),
                out),
            2)
      << out;
  EXPECT_NE(out.find("--depths"), std::string::npos) << out;
}

// An HF folder of `arch` (random weights, vocabulary over the byte tokenizer's ids), optionally
// with the differential variant; returns the model as saved.
std::unique_ptr<Model> save_tiny_hf(Ctx& ctx, ModelArch arch, bool differential, const std::string& folder, uint64_t seed) {
  TinyShape s;
  s.V = 263;  // > the byte tokenizer's 258 ids, prime
  s.P = 512;
  ModelConfig c = tiny_config(arch, arch == ModelArch::gpt2, s);
  if (differential) c.attnlab = {{"attention", {{"variant", "differential"}}}};
  auto m = std::make_unique<Model>(c, ModelOptions{Device::cpu, DType::f32, false}, ctx);
  randomize_params(*m, ctx, seed);
  std::filesystem::create_directories(folder);
  save_model(*m, ctx, folder);
  return m;
}

// The rows the probes give for an HF model are probability rows of a causal map: each sums to 1 and
// has no mass after its own position.
TEST(NeedleCli, AttentionRowsOfAnHfModelAreCausalDistributions) {
  Ctx& ctx = cpu_ctx();
  ScratchDir dir;
  for (ModelArch arch : {ModelArch::gpt2, ModelArch::qwen2})
    for (bool differential : {false, true}) {
      if (arch == ModelArch::qwen2 && differential) continue;  // differential needs learned positions (GPT-2)
      auto m = save_tiny_hf(ctx, arch, differential, dir / "m", 7);
      const std::vector<int32_t> ids = rand_ints(23, 0, 263, 11);
      const std::vector<int32_t> rows{22, 3, 17};
      m->plan(ctx, 1, 23);
      const auto a = planned_attention_rows(*m, ctx, ids, rows, 1);
      ASSERT_EQ(a.size(), 3u);
      for (size_t r = 0; r < rows.size(); ++r) {
        double sum = 0, after = 0, spread = 0;
        for (int32_t j = 0; j < 23; ++j) {
          sum += a[r][size_t(j)];
          if (j > rows[r]) after += std::fabs(a[r][size_t(j)]);
          if (j <= rows[r]) spread += std::fabs(a[r][size_t(j)] - 1.0 / double(rows[r] + 1));
        }
        // Differential rows are A1 − λA2 (sum 1 − λ), not distributions.
        if (!differential) EXPECT_NEAR(sum, 1.0, 1e-5) << model_type_name(arch) << " row " << rows[r];
        EXPECT_EQ(after, 0.0) << model_type_name(arch) << " row " << rows[r];
        EXPECT_GT(spread, 1e-4) << "row " << rows[r] << " is uniform: the weights did not reach the map";
      }
    }
}

// HF folders (as a folder and as its model.safetensors) and an `attnlab init` folder: before, the
// command refused every HF checkpoint ("is not a scratch-decoder checkpoint ... save_scratch_decoder").
TEST(NeedleCli, OpensHfFoldersAndInitFolders) {
  if (!std::filesystem::exists(binary())) GTEST_SKIP() << "the attnlab binary is not built (" << binary() << ")";
  Ctx& ctx = cpu_ctx();
  ScratchDir dir;
  data::Tokenizer tok = make_byte_tokenizer(dir / "tok");
  analysis::NeedleRunOptions opt;
  opt.contexts.context_length = 32;
  opt.contexts.samples = 2;
  opt.contexts.depths = {0.0, 0.5};
  const auto gpt2 = save_tiny_hf(ctx, ModelArch::gpt2, false, dir / "runs/g/checkpoints/step_4", 3);
  const auto diff = save_tiny_hf(ctx, ModelArch::gpt2, true, dir / "gpt2-diff", 5);
  const auto qwen = save_tiny_hf(ctx, ModelArch::qwen2, false, dir / "qwen2-tiny", 9);
  const analysis::NeedleReport e_gpt2 = analysis::run_needle_analysis(*gpt2, ctx, tok, opt);
  const analysis::NeedleReport e_diff = analysis::run_needle_analysis(*diff, ctx, tok, opt);
  const analysis::NeedleReport e_qwen = analysis::run_needle_analysis(*qwen, ctx, tok, opt);
  EXPECT_FALSE(e_gpt2.differential);
  EXPECT_TRUE(e_diff.differential);
  std::string out;
  const std::string cmd = binary() + " analyze needle --ckpt " + (dir / "runs/g/checkpoints/step_4") + " --ckpt " +
                          (dir / "gpt2-diff/model.safetensors") + " --ckpt " + (dir / "qwen2-tiny/") + " --tokenizer " +
                          (dir / "tok") + " --depths 0,0.5 --samples 2 --context-length 32 --out " + (dir / "out");
  ASSERT_EQ(run_command(cmd, out), 0) << out;
  for (const char* f : {"needle_g_step_4.json", "needle_gpt2-diff.json", "needle_qwen2-tiny.json"})
    ASSERT_TRUE(std::filesystem::exists(dir / (std::string("out/") + f))) << f << " not written:\n" << out;
  const auto j0 = nlohmann::json::parse(read_text(dir / "out/needle_g_step_4.json"));
  const auto j1 = nlohmann::json::parse(read_text(dir / "out/needle_gpt2-diff.json"));
  const auto j2 = nlohmann::json::parse(read_text(dir / "out/needle_qwen2-tiny.json"));
  EXPECT_EQ(j0["attention"], "standard");
  EXPECT_EQ(j1["attention"], "differential");
  EXPECT_EQ(j2["attention"], "standard");
  for (size_t k = 0; k < 2; ++k) {
    const std::string depth = k == 0 ? "0" : "0.5";
    EXPECT_NEAR(j0["avg_answer_attention_per_depth"][depth].get<double>(), e_gpt2.depths[k].mean_answer, 1e-6);
    EXPECT_NEAR(j1["avg_noise_attention_per_depth"][depth].get<double>(), e_diff.depths[k].mean_noise, 1e-6);
    EXPECT_NEAR(j2["anr_per_depth"][depth].get<double>(), e_qwen.depths[k].mean_anr,
                1e-5 * std::fabs(e_qwen.depths[k].mean_anr));
  }
  EXPECT_GT(e_gpt2.depths[0].mean_answer, 0.0);

  // A folder `attnlab init` made, with the tokenizer it carries (no --tokenizer).
  ASSERT_EQ(run_command(binary() + " init --arch gpt2 --tiny --out " + (dir / "gpt2-init"), out), 0) << out;
  if (!data::folder_has_tokenizer(dir / "gpt2-init"))
    GTEST_SKIP() << "the GPT-2 tokenizer is not in the asset cache (attnlab assets fetch): the init folder part "
                    "did not run";
  ASSERT_EQ(run_command(binary() + " analyze needle --ckpt " + (dir / "gpt2-init") +
                            " --samples 2 --context-length 32 --out " + (dir / "out-init"),
                        out),
            0)
      << out;
  ASSERT_TRUE(std::filesystem::exists(dir / "out-init/needle_gpt2-init.json")) << out;
  const auto ji = nlohmann::json::parse(read_text(dir / "out-init/needle_gpt2-init.json"));
  EXPECT_EQ(ji["attention"], "standard");
  EXPECT_GT(ji["avg_answer_attention_per_depth"]["0"].get<double>(), 0.0);
  // A path that is no checkpoint names itself and the fix (no source location, no internal names).
  EXPECT_NE(run_command(binary() + " analyze needle --ckpt " + (dir / "tok") + " --out " + (dir / "out-bad"), out), 0);
  EXPECT_NE(out.find(dir / "tok"), std::string::npos) << out;
  EXPECT_NE(out.find("Fix:"), std::string::npos) << out;
  EXPECT_EQ(out.find("save_scratch_decoder"), std::string::npos) << out;
}

}  // namespace
}  // namespace attnlab::test
