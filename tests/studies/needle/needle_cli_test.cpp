// `attnlab analyze needle` on two tiny scratch-decoder checkpoints (byte tokenizer): JSON per
// checkpoint, one CSV, numbers equal to the library's.
#include <cstdio>
#include <filesystem>

#include "studies/needle/needle_run.h"
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

}  // namespace
}  // namespace attnlab::test
