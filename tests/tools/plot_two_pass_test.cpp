// tools/plot_two_pass.py (the two-pass study's figures) on hand-made inputs: two metrics.jsonl files
// (the gated one with grads_norm/* gate records) and a chat JSON in the format `attnlab chat
// --analyze-gates --out` writes ({"tokens", "layers", "magnitude": [[per-layer] per token]}).
// Skips without python3 + matplotlib.
#include <filesystem>

#include "data/data_test_util.h"
#include "support/subprocess.h"
#include "support/testing.h"

namespace attnlab::test {
namespace {

const char* kPython = "/usr/bin/python3";

bool is_png(const std::string& path) {
  const std::string bytes = read_text(path);
  return bytes.size() > 1000 && bytes.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0;
}

TEST(PlotTwoPass, DrawsLossGateGradientsAndTheChatGateMagnitudes) {
  std::string out;
  if (run_command(std::string(kPython) + " -c 'import matplotlib'", out) != 0)
    GTEST_SKIP() << kPython << " with matplotlib is not available (tools/setup.sh installs python3-matplotlib)";
  ScratchDir d;
  write_text(d / "plain.jsonl", "{\"kind\":\"train\",\"step\":1,\"loss\":11.9}\n{\"kind\":\"train\",\"step\":2,\"loss\":11.5}\n");
  write_text(d / "gated.jsonl",
             "{\"kind\":\"train\",\"step\":1,\"loss\":11.9,"
             "\"grads_norm/model.layers.0.self_attn.gate_q.fc2.weight\":0.5,"
             "\"grads_norm/model.layers.1.self_attn.gate_v.fc2.bias\":0.25,"
             "\"grads_norm/model.layers.0.mlp.gate_proj.weight\":99}\n"
             "{\"kind\":\"train\",\"step\":2,\"loss\":11.4,"
             "\"grads_norm/model.layers.0.self_attn.gate_q.fc2.weight\":0.4,"
             "\"grads_norm/model.layers.1.self_attn.gate_v.fc2.bias\":0.2}\n");
  // Token 1 has the largest layer mean ((0.3 + 0.5) / 2 = 0.4); layer 1's mean is (0.2+0.5+0.1)/3.
  write_text(d / "chat.json",
             "{\"tokens\": [\"7\", \" *\", \" 8\"], \"layers\": 2, "
             "\"magnitude\": [[0.1, 0.2], [0.3, 0.5], [0.05, 0.1]]}");
  const std::string tool = std::string(ATTNLAB_SOURCE_DIR) + "/tools/plot_two_pass.py";
  const std::string cmd = std::string(kPython) + " " + tool + " --out " + (d / "png") + " --plain " +
                          (d / "plain.jsonl") + " --gated " + (d / "gated.jsonl");
  ASSERT_EQ(run_command(cmd + " --chat " + (d / "chat.json"), out), 0) << out;
  for (const char* f : {"loss.png", "gate_grad_norms.png", "gate_magnitude_layers.png", "gate_magnitude_tokens.png"})
    EXPECT_TRUE(is_png(d / (std::string("png/") + f))) << f << "\n" << out;
  EXPECT_NE(out.find("largest mean magnitude: token 1 ' *' (0.4)"), std::string::npos) << out;
  EXPECT_NE(out.find("1:0.2667"), std::string::npos) << out;
  // A chat JSON whose rows do not hold `layers` values is refused, naming the field.
  write_text(d / "bad.json", "{\"tokens\": [\"a\"], \"layers\": 3, \"magnitude\": [[0.1, 0.2]]}");
  EXPECT_NE(run_command(cmd + " --chat " + (d / "bad.json"), out), 0);
  EXPECT_NE(out.find("'magnitude'"), std::string::npos) << out;
}

}  // namespace
}  // namespace attnlab::test
