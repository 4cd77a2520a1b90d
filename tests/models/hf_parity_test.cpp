// Parity with Hugging Face transformers: tiny random HF models (tools/make_hf_goldens.py) saved
// with their inputs and PyTorch's fp32 logits, loss and every parameter gradient. attnlab loads
// each folder as a checkpoint, runs forward and backward in double on the CPU and must agree
// within 1e-4 relative (the goldens carry fp32 rounding). Skips, naming the script, when the
// goldens have not been generated (they need transformers and torch).
#include <cstring>
#include <filesystem>

#include "core/io/safetensors.h"
#include "core/models/weights.h"
#include "models/model_test_util.h"

namespace attnlab::test {
namespace {

namespace fs = std::filesystem;

const char* kGoldenNames[] = {"gpt2",        "gpt2_untied",       "qwen2_gqa_bias_untied",
                              "qwen2_tied",  "qwen3_gqa_untied",  "qwen3_tied"};

fs::path golden_dir(const std::string& name) { return fs::path(ATTNLAB_SOURCE_DIR) / "tests/goldens/hf" / name; }

class HfParity : public ::testing::TestWithParam<const char*> {};

TEST_P(HfParity, LogitsLossAndGradientsMatchTransformers) {
  const fs::path dir = golden_dir(GetParam());
  if (!fs::exists(dir / "reference.safetensors"))
    GTEST_SKIP() << "no HF golden in " << dir.string()
                 << "; generate them with `python3 tools/make_hf_goldens.py` where transformers and torch are installed";
  Ctx& ctx = cpu_ctx();
  auto model = load_model(dir.string(), {Device::cpu, DType::f64}, ctx);
  SafetensorsFile inputs = SafetensorsFile::open((dir / "inputs.safetensors").string());
  SafetensorsFile ref = SafetensorsFile::open((dir / "reference.safetensors").string());
  const auto& shape = inputs.info("input_ids").shape;
  ASSERT_EQ(shape.size(), 2u);
  const int64_t B = shape[0], T = shape[1];
  // torch writes int64 ids unless told otherwise; accept I32 and I64.
  const SafetensorInfo& ii = inputs.info("input_ids");
  ASSERT_TRUE(ii.dtype == StDType::I32 || ii.dtype == StDType::I64) << st_dtype_name(ii.dtype);
  std::vector<int32_t> ids(size_t(B * T));
  for (int64_t i = 0; i < B * T; ++i) {
    int64_t v = 0;
    if (ii.dtype == StDType::I64) std::memcpy(&v, inputs.raw("input_ids") + 8 * i, 8);
    else {
      int32_t w = 0;
      std::memcpy(&w, inputs.raw("input_ids") + 4 * i, 4);
      v = w;
    }
    ids[size_t(i)] = int32_t(v);
  }
  std::vector<int32_t> targets;
  const int64_t valid = causal_lm_targets(ids, B, T, targets);

  Buffer ids_buf = make_ids(Device::cpu, {B, T}, ids), targets_buf = make_ids(Device::cpu, {B, T}, targets);
  model->plan(ctx, B, T);
  model->params().zero_grads(ctx);
  const double loss = to_host_f64(ctx, model->forward(ctx, ids_buf, targets_buf, double(valid)))[0];
  EXPECT_LT(rel_err(model->logits_f64(ctx), read_tensor_f64(ref, "logits")), 1e-4);
  const double want_loss = read_tensor_f64(ref, "loss")[0];
  EXPECT_NEAR(loss, want_loss, 1e-4 * std::fabs(want_loss));
  model->backward(ctx);

  size_t compared = 0;
  for (const Param& p : model->params()) {
    const std::string name = "grad." + p.name;
    ASSERT_TRUE(ref.has(name)) << dir.string() << " has no " << name;
    std::vector<double> got = to_host_f64(ctx, p.unpadded(p.grad));  // HF's [V, C]: no padding rows
    if (p.stored_transposed) {  // HF's Conv1D gradient is [in, out]
      std::vector<double> turned(got.size());
      const int64_t rows = p.shape[0], cols = p.shape[1];
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) turned[size_t(c * rows + r)] = got[size_t(r * cols + c)];
      got.swap(turned);
    }
    EXPECT_LT(rel_err(got, read_tensor_f64(ref, name)), 1e-4) << p.name;
    ++compared;
  }
  size_t golden_grads = 0;
  for (const auto& n : ref.names()) golden_grads += n.rfind("grad.", 0) == 0;
  EXPECT_EQ(compared, golden_grads) << "every HF parameter gradient has an attnlab parameter";
}

INSTANTIATE_TEST_SUITE_P(Goldens, HfParity, ::testing::ValuesIn(kGoldenNames),
                         [](const auto& i) { return std::string(i.param); });

}  // namespace
}  // namespace attnlab::test
