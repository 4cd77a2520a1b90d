// `attnlab bench` on the CPU backend: attention runs there too (verified in f32 against f64, then
// timed), --list says which entries need a GPU, and the rows give this CPU's GFLOP/s and GB/s
// rather than fractions of an H100's ceilings.
#include <filesystem>

#include "support/subprocess.h"
#include "support/testing.h"

namespace attnlab::test {
namespace {

std::string binary() { return std::string(ATTNLAB_BINARY_DIR) + "/attnlab"; }

TEST(BenchCpu, AttentionRunsOnTheCpuWithCpuFigures) {
  if (!std::filesystem::exists(binary())) GTEST_SKIP() << "the attnlab binary is not built (" << binary() << ")";
  std::string out;
  // d = 16, T = 48, variants, B = 1, H = 2: every variant verified and timed in well under a second.
  ASSERT_EQ(run_command(binary() + " bench --cpu --repeats 3 attention 16 48 1 1 2", out, 300), 0) << out;
  EXPECT_NE(out.find("GFLOP/s"), std::string::npos) << out;
  EXPECT_EQ(out.find("%peak"), std::string::npos) << "a CPU row as a fraction of an H100: " << out;
  EXPECT_EQ(out.find("%HBM"), std::string::npos) << out;
  for (const char* row : {"attention_fwd ", "attention_fwd_bwd", "f32 softmax d=16 T=48 B=1 H=2",
                          "f32 linear", "f32 ramp", "f32 diff-softmax d=16 T=48 B=1 H=1"})
    EXPECT_NE(out.find(row), std::string::npos) << row << "\n" << out;
  // Without B and H the CPU takes B = 1, H = 4.
  ASSERT_EQ(run_command(binary() + " bench --cpu --repeats 3 attention 8 32", out, 300), 0) << out;
  EXPECT_NE(out.find("f32 softmax d=8 T=32 B=1 H=4"), std::string::npos) << out;
  // Sizes that make no sense are a bad argument list, named.
  EXPECT_NE(run_command(binary() + " bench --cpu attention 16", out), 0) << out;
  EXPECT_NE(out.find("d T [variants [B H]]"), std::string::npos) << out;
}

// --impl both: every variant (and, with variants = 3, softmax with per-row controllers and softmax
// with every statistics capture) on the materialized backend and on the fused one (on the CPU the
// tiled reference), each verified against the f64 materialized op (captures included); the fused rows
// give their speed ratio to materialized, the capture rows their ratio to the plain forward.
TEST(BenchCpu, AttentionImplBothTimesFusedAndMaterialized) {
  if (!std::filesystem::exists(binary())) GTEST_SKIP() << "the attnlab binary is not built (" << binary() << ")";
  std::string out;
  ASSERT_EQ(run_command(binary() + " bench --cpu --repeats 1 attention 16 40 3 1 2 --impl both", out, 300), 0) << out;
  for (const char* row : {"materialized f32 softmax d=16 T=40", "fused f32 softmax d=16 T=40", "fused f32 linear",
                          "fused f32 ramp", "fused f32 diff-softmax d=16 T=40 B=1 H=1", "fused f32 ctrl-softmax",
                          "materialized f32 ctrl-softmax", "x the speed of materialized",
                          "fused f32 stats-softmax d=16 T=40", "materialized f32 stats-softmax",
                          "x the forward without captures"})
    EXPECT_NE(out.find(row), std::string::npos) << row << "\n" << out;
  ASSERT_EQ(run_command(binary() + " bench --cpu --repeats 1 attention 8 16 0 1 2 --impl fused", out, 300), 0) << out;
  EXPECT_NE(out.find("fused f32 softmax d=8 T=16"), std::string::npos) << out;
  // Fused rows name the kernels that ran: on the CPU the tiled reference.
  EXPECT_NE(out.find("fused f32 softmax d=8 T=16 B=1 H=2 path=cpu"), std::string::npos) << out;
  EXPECT_EQ(out.find("materialized f32"), std::string::npos) << out;
  EXPECT_NE(run_command(binary() + " bench --cpu attention 16 40 --impl flash", out), 0) << out;
}

// The decode step with the ARDS diagnostics attached, verified like the plain one and with its time
// ratio to it (a ratio, computed by the bench: the test only checks it is a sane number).
TEST(BenchCpu, GenerateTimesTheDecodeStepWithDiagnostics) {
  if (!std::filesystem::exists(binary())) GTEST_SKIP() << "the attnlab binary is not built (" << binary() << ")";
  std::string out;
  ASSERT_EQ(run_command(binary() + " bench --cpu --repeats 3 generate 1 8 8", out, 300), 0) << out;
  const size_t row = out.find("generate_decode_step_diagnostics");
  ASSERT_NE(row, std::string::npos) << out;
  const size_t at = out.find("time ", row);
  ASSERT_NE(at, std::string::npos) << out;
  const double ratio = std::stod(out.substr(at + 5));
  EXPECT_GT(ratio, 0.2) << out;
  EXPECT_LT(ratio, 5.0) << out;
}

TEST(BenchCpu, ListSaysWhereEachEntryRuns) {
  if (!std::filesystem::exists(binary())) GTEST_SKIP() << "the attnlab binary is not built (" << binary() << ")";
  std::string out;
  ASSERT_EQ(run_command(binary() + " bench --list", out), 0) << out;
  size_t entries = 0;
  for (size_t at = out.find("sizes:"); at != std::string::npos; at = out.find("sizes:", at + 1)) ++entries;
  EXPECT_GE(entries, 10u) << out;
  size_t marked = 0;
  for (const char* tag : {"[CPU, GPU]", "[needs GPU]"})
    for (size_t at = out.find(tag); at != std::string::npos; at = out.find(tag, at + 1)) ++marked;
  EXPECT_EQ(marked, entries) << "every entry says where it runs:\n" << out;
  const size_t attention = out.find("\nattention ");
  ASSERT_NE(attention, std::string::npos) << out;
  EXPECT_EQ(out.compare(out.find('[', attention), 10, "[CPU, GPU]"), 0) << out;
  if (!cuda_status().usable) EXPECT_NE(out.find("no usable GPU"), std::string::npos) << out;
}

}  // namespace
}  // namespace attnlab::test
