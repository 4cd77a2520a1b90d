// tools/plot.py (the study's figures) on hand-made inputs: a needle report as `attnlab analyze
// needle` writes it (needle_report_json) and two metrics.jsonl files. Skips without python3 +
// matplotlib.
#include <cstdio>
#include <filesystem>

#include "studies/needle/needle_run.h"
#include "studies/needle/needle_study.h"
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

analysis::NeedleReport report(const std::string& label, bool differential, double noise_at_half) {
  analysis::NeedleReport r;
  r.label = label;
  r.differential = differential;
  for (double depth : {0.0, 0.5}) {
    analysis::DepthStats d;
    d.depth = depth;
    d.n = 2;
    d.mean_answer = 0.1 + depth;
    d.mean_noise = depth == 0.5 ? noise_at_half : 0.7;
    d.answers = {d.mean_answer, d.mean_answer};
    d.noises = {d.mean_noise, d.mean_noise};
    r.depths.push_back(d);
  }
  return r;
}

TEST(PlotTool, DrawsTheNeedleAndLossFiguresAndLeavesNonPositiveValuesOffTheLogScale) {
  std::string out;
  if (run_command(std::string(kPython) + " -c 'import matplotlib'", out) != 0)
    GTEST_SKIP() << kPython << " with matplotlib is not available (tools/setup.sh installs python3-matplotlib)";
  ScratchDir d;
  std::filesystem::create_directories(d / "needle");
  write_text(d / "needle/needle_0_model.json",
             analysis::needle_report_json(report("runs/std/checkpoints/best/model.safetensors", false, 0.6)));
  // A differential map can put negative mass on the context: the log scale cannot show it.
  write_text(d / "needle/needle_1_model.json",
             analysis::needle_report_json(report("runs/diff/checkpoints/best/model.safetensors", true, -0.01)));
  for (const char* run_name : {"std", "diff"})
    write_text(d / (std::string(run_name) + "-metrics.jsonl"),
               "{\"kind\":\"train\",\"step\":1,\"loss\":10.9}\n{\"kind\":\"train\",\"step\":10,\"loss\":8.5}\n"
               "{\"kind\":\"eval\",\"step\":10,\"val_loss\":8.7,\"best\":true}\n");
  const std::string tool = std::string(ATTNLAB_SOURCE_DIR) + "/tools/plot.py";
  const int rc = run_command(std::string(kPython) + " " + tool + " --needle " + (d / "needle") + " --metrics " +
                         (d / "std-metrics.jsonl") + " --metrics " + (d / "diff-metrics.jsonl") + " --out " + (d / "png"),
                     out);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_TRUE(is_png(d / "png/needle_attention.png")) << out;
  EXPECT_TRUE(is_png(d / "png/loss_curves.png")) << out;
  EXPECT_NE(out.find("1 non-positive value(s) left out"), std::string::npos) << out;
  // A folder without analysis files is an error that says what it expected.
  std::filesystem::create_directories(d / "empty");
  EXPECT_NE(run_command(std::string(kPython) + " " + tool + " --needle " + (d / "empty") + " --out " + (d / "png2"), out), 0);
  EXPECT_NE(out.find("holds no needle_*.json"), std::string::npos) << out;
}

// The needle.jsonl a run's analysis section writes while training (needle_record per analysis):
// drawn as answer-to-noise over the optimizer steps, one figure for every run given.
TEST(PlotTool, DrawsTheInTrainingNeedleLogOverSteps) {
  std::string out;
  if (run_command(std::string(kPython) + " -c 'import matplotlib'", out) != 0)
    GTEST_SKIP() << kPython << " with matplotlib is not available (tools/setup.sh installs python3-matplotlib)";
  ScratchDir d;
  for (const char* run_name : {"diff-vs-standard-standard", "diff-vs-standard-differential"}) {
    std::string log;
    for (int64_t step : {5, 10, 15}) {
      analysis::NeedleReport r = report("", std::string(run_name).find("diff") != std::string::npos, 0.3);
      for (analysis::DepthStats& ds : r.depths) ds.mean_anr = 0.4 + 0.05 * double(step) + ds.depth;
      r.depths[0].mean_anr = step == 10 ? -0.2 : r.depths[0].mean_anr;  // left off the log scale, said so
      log += analysis::needle_record(r, step, double(step) / 5).dump() + "\n";
    }
    write_text(d / (std::string("runs/") + run_name + "/needle.jsonl"), log);
  }
  const std::string tool = std::string(ATTNLAB_SOURCE_DIR) + "/tools/plot.py";
  // A needle.jsonl file and a run folder holding one.
  const int rc = run_command(std::string(kPython) + " " + tool + " --needle " +
                                 (d / "runs/diff-vs-standard-standard/needle.jsonl") + " --needle " +
                                 (d / "runs/diff-vs-standard-differential") + " --out " + (d / "png"),
                             out);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_TRUE(is_png(d / "png/needle_over_training.png")) << out;
  EXPECT_FALSE(std::filesystem::exists(d / "png/needle_attention.png")) << out;
  EXPECT_NE(out.find("1 non-positive value(s) left out"), std::string::npos) << out;
  // A line that is not a record names the file and the line.
  write_text(d / "bad/needle.jsonl", "{\"step\": 1}\n");
  EXPECT_NE(run_command(std::string(kPython) + " " + tool + " --needle " + (d / "bad/needle.jsonl") + " --out " +
                            (d / "png3"),
                        out),
            0);
  EXPECT_NE(out.find("needle.jsonl:1:"), std::string::npos) << out;
}

// Log-scale axes are labelled at 1-2-5 steps with plain numbers, at least two labels even when
// the data spans less than a decade (matplotlib's default then labels none).
TEST(PlotTool, LogAxesGetAtLeastTwoReadableTicks) {
  std::string out;
  if (run_command(std::string(kPython) + " -c 'import matplotlib'", out) != 0)
    GTEST_SKIP() << kPython << " with matplotlib is not available";
  const std::string script =
      "import sys; sys.path.insert(0, '" + std::string(ATTNLAB_SOURCE_DIR) + "/tools'); import plot\n"
      "for lo, hi in [(0.21, 0.58), (0.011, 0.019), (1.5, 1.6), (3e-4, 2.0)]:\n"
      "    t = plot.log_ticks(lo, hi)\n"
      "    print(lo, hi, t)\n"
      "    assert len(t) >= 2, t\n"
      "    assert len(t) <= 8, t\n"
      "    assert min(t) <= hi and max(t) >= lo, t\n"
      "    for v in t: assert round(v / 10 ** __import__('math').floor(__import__('math').log10(v) + 1e-9), 6) in (1, 2, 5), v\n"
      "print('ok')\n";
  ScratchDir d;
  write_text(d / "ticks.py", script);
  ASSERT_EQ(run_command(std::string(kPython) + " " + (d / "ticks.py"), out), 0) << out;
  EXPECT_NE(out.find("ok"), std::string::npos) << out;
}

}  // namespace
}  // namespace attnlab::test
