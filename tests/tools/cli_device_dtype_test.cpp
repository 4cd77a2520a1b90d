// The --device / --dtype options of forward, generate and analyze needle (and init's --dtype) go
// through one parser (tools/attnlab/cli_options.cpp): every command refuses the same bad values
// with the same message, before it reads any file, and accepts the same spellings.
#include <filesystem>

#include "support/subprocess.h"
#include "support/testing.h"

namespace attnlab::test {
namespace {

std::string binary() { return std::string(ATTNLAB_BINARY_DIR) + "/attnlab"; }

// Each command with its required options pointing at files that do not exist: the device/dtype
// check comes first, so the message is about the flag, not the missing file.
const std::vector<std::pair<std::string, std::string>> kCommands = {
    {"forward", "forward --model /nonexistent/model --tokens /nonexistent/ids.txt --dump /nonexistent/out.safetensors"},
    {"generate", "generate --model /nonexistent/model --prompt hi"},
    // (analyze needle's options come from its study's field table, studies/study_command.h, whose
    // enumeration messages differ; its bad values exit 2 too: tests/studies/needle/needle_cli_test.cpp.)
};

std::string run(const std::string& args, int& code) {
  const ProcessResult r = run_process(binary() + " " + args, 60);
  code = r.exit_code;
  return r.output;
}

TEST(CliDeviceDtype, EveryCommandRefusesTheSameBadValuesTheSameWay) {
  if (!std::filesystem::exists(binary())) GTEST_SKIP() << "the attnlab binary is not built (" << binary() << ")";
  for (const auto& [name, args] : kCommands) {
    int code = 0;
    std::string out = run(args + " --device gpu", code);
    EXPECT_EQ(code, 2) << out;  // a bad argument (exit_codes.h)
    EXPECT_NE(out.find(name + ": --device is cpu or cuda, got 'gpu'"), std::string::npos) << out;
    out = run(args + " --dtype f16", code);
    EXPECT_EQ(code, 2) << out;  // a bad argument (exit_codes.h)
    EXPECT_NE(out.find(name + ": --dtype is f32, f64 (CPU) or bf16 (CUDA)"), std::string::npos) << out;
    EXPECT_NE(out.find("got 'f16'"), std::string::npos) << out;
    out = run(args + " --device cpu --dtype bf16", code);
    EXPECT_EQ(code, 2) << out;  // a bad argument (exit_codes.h)
    EXPECT_NE(out.find(name + ": --dtype bf16 runs on CUDA"), std::string::npos) << out;
    out = run(args + " --device cuda --dtype float64", code);  // dtype_from_name's spellings
    EXPECT_EQ(code, 2) << out;  // a bad argument (exit_codes.h)
    EXPECT_NE(out.find(name + ": --dtype f64 runs on the CPU"), std::string::npos) << out;
    // A good pair gets past the parser: the error is now about the missing file.
    out = run(args + " --device cpu --dtype fp64", code);
    EXPECT_NE(code, 0) << out;
    EXPECT_EQ(out.find("--dtype"), std::string::npos) << out;
    EXPECT_EQ(out.find("--device"), std::string::npos) << out;
    EXPECT_NE(out.find("/nonexistent/"), std::string::npos) << out;
  }
  // generate alone takes auto (its default).
  int code = 0;
  std::string out = run(std::get<1>(kCommands[1]) + " --dtype auto", code);
  EXPECT_EQ(out.find("--dtype"), std::string::npos) << out;
  out = run(std::get<1>(kCommands[0]) + " --dtype auto", code);
  EXPECT_NE(out.find("forward: --dtype is f32, f64 (CPU) or bf16 (CUDA), got 'auto'"), std::string::npos) << out;
}

TEST(CliDeviceDtype, InitTakesTheFileDtypes) {
  if (!std::filesystem::exists(binary())) GTEST_SKIP() << "the attnlab binary is not built (" << binary() << ")";
  int code = 0;
  std::string out = run("init --arch gpt2 --out /nonexistent/x --dtype f64", code);
  EXPECT_EQ(code, 2) << out;  // a bad argument (exit_codes.h)
  EXPECT_NE(out.find("init: --dtype is f32 or bf16, got 'f64'"), std::string::npos) << out;
}

}  // namespace
}  // namespace attnlab::test
