// tools/attnlab/cli_options.cpp, the one parser of --device / --dtype (compiled into the tests).
#include "support/testing.h"
#include "tools/attnlab/cli_options.h"

namespace attnlab::test {
namespace {

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(CliOptions, DeviceAndDtypeSpellings) {
  using cli::parse_device_dtype;
  auto dd = parse_device_dtype("forward", "cpu", "f32");
  EXPECT_EQ(dd.device, Device::cpu);
  EXPECT_EQ(dd.dtype, DType::f32);
  dd = parse_device_dtype("forward", "cpu", "float64");
  EXPECT_EQ(dd.dtype, DType::f64);
  dd = parse_device_dtype("forward", "cuda", "bfloat16");
  EXPECT_EQ(dd.device, Device::cuda);
  EXPECT_EQ(dd.dtype, DType::bf16);
  EXPECT_EQ(parse_device_dtype("generate", "cuda", "auto", true).dtype, DType::bf16);
  EXPECT_EQ(parse_device_dtype("generate", "cpu", "auto", true).dtype, DType::f32);
}

TEST(CliOptions, RefusalsNameTheCommandAndTheFlag) {
  using cli::parse_device_dtype;
  EXPECT_EQ(message_of([] { parse_device_dtype("forward", "gpu", "f32"); }),
            "forward: --device is cpu or cuda, got 'gpu'");
  EXPECT_EQ(message_of([] { parse_device_dtype("analyze needle", "cpu", "f16"); }),
            "analyze needle: --dtype is f32, f64 (CPU) or bf16 (CUDA), got 'f16'");
  EXPECT_EQ(message_of([] { parse_device_dtype("forward", "cpu", "auto"); }),
            "forward: --dtype is f32, f64 (CPU) or bf16 (CUDA), got 'auto'");
  EXPECT_NE(message_of([] { parse_device_dtype("generate", "cpu", "bf16", true); }).find("generate: --dtype bf16 runs on CUDA"),
            std::string::npos);
  EXPECT_NE(message_of([] { parse_device_dtype("forward", "cuda", "f64"); }).find("forward: --dtype f64 runs on the CPU"),
            std::string::npos);
  EXPECT_EQ(cli::parse_dtype_option("init", "bf16", {DType::f32, DType::bf16}), DType::bf16);
  EXPECT_EQ(message_of([] { cli::parse_dtype_option("init", "f64", {DType::f32, DType::bf16}); }),
            "init: --dtype is f32 or bf16, got 'f64'");
}

}  // namespace
}  // namespace attnlab::test
