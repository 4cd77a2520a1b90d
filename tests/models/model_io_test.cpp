// Checkpoints: save/load round trips (bitwise for f32), the HF file layout (tied embeddings once,
// GPT-2 Conv1D [in, out]), sharded folders, dtype conversion, GPT-2's unprefixed original names,
// refusal of incomplete or mismatched files, and the HF-style random initialisation.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/io/safetensors.h"
#include "core/models/weights.h"
#include "io/io_test_util.h"
#include "models/model_test_util.h"

namespace attnlab::test {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool same_bytes(Ctx& ctx, const Tensor& a, const Tensor& b) {
  if (a.bytes() != b.bytes()) return false;
  std::vector<char> ha(a.bytes()), hb(b.bytes());
  Tensor ta = a, tb = b;
  ta.device = tb.device = Device::cpu;
  ta.data = ha.data();
  tb.data = hb.data();
  copy_tensor(ctx, ta, a);
  copy_tensor(ctx, tb, b);
  return std::memcmp(ha.data(), hb.data(), ha.size()) == 0;
}

// Rewrites `src` into `dst` through `edit`, which may drop, rename or replace tensors.
struct FileTensor {
  std::string name;
  std::vector<double> values;
  std::vector<int64_t> shape;
};
std::vector<FileTensor> read_all(const std::string& path) {
  SafetensorsFile f = SafetensorsFile::open(path);
  std::vector<FileTensor> out;
  for (const auto& n : f.names()) out.push_back({n, read_tensor_f64(f, n), f.info(n).shape});
  return out;
}
void write_all(const std::string& path, const std::vector<FileTensor>& ts, DType dt = DType::f32) {
  std::vector<Buffer> keep;
  std::vector<NamedTensor> named;
  for (const auto& t : ts) {
    Buffer b(Device::cpu, dt, {int64_t(t.values.size())}, t.name.c_str());
    from_host_f64(cpu_ctx(), b.t(), t.values);
    Tensor view = make_tensor_view(b.t().data, dt, Device::cpu, t.shape, t.name.c_str());
    keep.push_back(std::move(b));
    named.push_back({t.name, view});
  }
  write_safetensors(path, named, {{"format", "pt"}});
}

TEST(ModelIo, F32RoundTripIsBitwiseAndGivesTheSameLogits) {
  Ctx& ctx = cpu_ctx();
  for (ModelArch arch : {ModelArch::gpt2, ModelArch::qwen2, ModelArch::qwen3}) {
    for (bool tied : {true, false}) {
      ScratchDir dir;
      Model m(tiny_config(arch, tied), {Device::cpu, DType::f32}, ctx);
      randomize_params(m, ctx, 3);
      save_model(m, ctx, dir.path());
      auto loaded = load_model(dir.path(), {Device::cpu, DType::f32}, ctx);
      ASSERT_EQ(loaded->params().size(), m.params().size());
      for (const Param& p : m.params()) EXPECT_TRUE(same_bytes(ctx, p.value, loaded->params().at(p.name).value)) << p.name;
      EXPECT_EQ(loaded->config().tie_word_embeddings, tied);
      EXPECT_EQ(loaded->config().torch_dtype, "float32");

      const int64_t B = 2, T = 6;
      TokenBatch tb = random_batch(B, T, m.config().vocab_size, 4);
      Buffer ids = make_ids(Device::cpu, {B, T}, tb.ids);
      m.plan(ctx, B, T);
      loaded->plan(ctx, B, T);
      m.forward(ctx, ids, Tensor(), 0);
      loaded->forward(ctx, ids, Tensor(), 0);
      EXPECT_TRUE(same_bytes(ctx, m.padded_logits(), loaded->padded_logits())) << model_type_name(arch);
    }
  }
}

TEST(ModelIo, FileLayoutIsHfTiedOnceAndGpt2Conv1DTransposed) {
  Ctx& ctx = cpu_ctx();
  ScratchDir dir;
  const ModelConfig cfg = tiny_config(ModelArch::gpt2, true);
  Model m(cfg, {Device::cpu, DType::f32}, ctx);
  randomize_params(m, ctx, 9);
  save_model(m, ctx, dir.path());
  SafetensorsFile f = SafetensorsFile::open(dir.file("model.safetensors"));
  EXPECT_FALSE(f.has("lm_head.weight"));
  EXPECT_EQ(f.metadata().at("format"), "pt");
  const int64_t D = cfg.hidden_size, I = cfg.intermediate_size;
  EXPECT_EQ(f.info("transformer.h.0.attn.c_attn.weight").shape, (std::vector<int64_t>{D, 3 * D}));
  EXPECT_EQ(f.info("transformer.h.1.mlp.c_fc.weight").shape, (std::vector<int64_t>{D, I}));
  EXPECT_EQ(f.info("transformer.h.1.mlp.c_proj.weight").shape, (std::vector<int64_t>{I, D}));
  // file[i, o] = runtime[o, i]: column block [D, 2D) of c_attn is the key projection.
  const auto file = read_tensor_f64(f, "transformer.h.0.attn.c_attn.weight");
  const auto rt = to_host_f64(ctx, m.params().at("transformer.h.0.attn.c_attn.weight").value);
  for (int64_t i = 0; i < D; ++i)
    for (int64_t o = 0; o < 3 * D; ++o) ASSERT_EQ(file[size_t(i * 3 * D + o)], rt[size_t(o * D + i)]);

  ModelConfig qcfg = tiny_config(ModelArch::qwen2, true);
  Model q(qcfg, {Device::cpu, DType::f32}, ctx);
  ScratchDir qdir;
  save_model(q, ctx, qdir.path());
  SafetensorsFile qf = SafetensorsFile::open(qdir.file("model.safetensors"));
  EXPECT_FALSE(qf.has("lm_head.weight"));
  EXPECT_TRUE(qf.has("model.layers.1.self_attn.k_proj.bias"));
  EXPECT_FALSE(qf.has("model.layers.1.self_attn.o_proj.bias"));
  ModelConfig back = load_hf_config(qdir.file("config.json"));
  EXPECT_EQ(back.tie_word_embeddings, true);
  EXPECT_EQ(back.num_kv_heads, qcfg.num_kv_heads);
}

TEST(ModelIo, ShardedFolderLoadsLikeTheSingleFile) {
  Ctx& ctx = cpu_ctx();
  ScratchDir one, sharded;
  Model m(tiny_config(ModelArch::qwen3, false), {Device::cpu, DType::f32}, ctx);
  randomize_params(m, ctx, 12);
  save_model(m, ctx, one.path());
  auto all = read_all(one.file("model.safetensors"));
  std::vector<FileTensor> a(all.begin(), all.begin() + long(all.size() / 2)), b(all.begin() + long(all.size() / 2), all.end());
  write_all(sharded.file("model-00001-of-00002.safetensors"), a);
  write_all(sharded.file("model-00002-of-00002.safetensors"), b);
  nlohmann::ordered_json index;
  index["metadata"] = {{"total_size", 0}};
  for (const auto& t : a) index["weight_map"][t.name] = "model-00001-of-00002.safetensors";
  for (const auto& t : b) index["weight_map"][t.name] = "model-00002-of-00002.safetensors";
  std::ofstream(sharded.file("model.safetensors.index.json")) << index.dump(2);
  std::filesystem::copy_file(one.file("config.json"), sharded.file("config.json"));
  auto loaded = load_model(sharded.path(), {Device::cpu, DType::f32}, ctx);
  for (const Param& p : m.params()) EXPECT_TRUE(same_bytes(ctx, p.value, loaded->params().at(p.name).value)) << p.name;

  // An index naming a tensor the model does not have is refused, naming the index.
  index["weight_map"]["model.layers.0.self_attn.extra.weight"] = "model-00001-of-00002.safetensors";
  std::ofstream(sharded.file("model.safetensors.index.json")) << index.dump(2);
  const std::string msg = error_of([&] { load_weights(*loaded, ctx, sharded.path()); });
  EXPECT_NE(msg.find("model.safetensors.index.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("model.layers.0.self_attn.extra.weight"), std::string::npos) << msg;
}

TEST(ModelIo, RefusesMissingWrongShapeAndUnexpectedTensorsInOneMessage) {
  Ctx& ctx = cpu_ctx();
  ScratchDir good, bad;
  Model m(tiny_config(ModelArch::qwen2, false), {Device::cpu, DType::f32}, ctx);
  randomize_params(m, ctx, 5);
  save_model(m, ctx, good.path());
  std::filesystem::copy_file(good.file("config.json"), bad.file("config.json"));
  auto all = read_all(good.file("model.safetensors"));
  std::vector<FileTensor> edited;
  for (auto t : all) {
    if (t.name == "model.layers.1.mlp.up_proj.weight") continue;  // missing
    if (t.name == "model.layers.0.self_attn.k_proj.weight") t.shape = {t.shape[0] / 2, t.shape[1] * 2};  // wrong shape
    edited.push_back(t);
  }
  edited.push_back({"model.layers.0.self_attn.rotary.inv_freq", {1.0, 2.0}, {2}});  // unexpected
  write_all(bad.file("model.safetensors"), edited);
  const std::string msg = error_of([&] { load_weights(m, ctx, bad.path()); });
  EXPECT_NE(msg.find(bad.file("model.safetensors")), std::string::npos) << msg;
  EXPECT_NE(msg.find("model.layers.1.mlp.up_proj.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing"), std::string::npos) << msg;
  EXPECT_NE(msg.find("model.layers.0.self_attn.k_proj.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("wrong shape"), std::string::npos) << msg;
  EXPECT_NE(msg.find("rotary.inv_freq"), std::string::npos) << msg;

  // A folder with no weights names the folder and both accepted layouts.
  ScratchDir empty;
  const std::string msg2 = error_of([&] { load_weights(m, ctx, empty.path()); });
  EXPECT_NE(msg2.find(empty.path()), std::string::npos) << msg2;
  EXPECT_NE(msg2.find("model.safetensors.index.json"), std::string::npos) << msg2;
}

TEST(ModelIo, Bf16AndF16FilesConvertToTheModelDtype) {
  Ctx& ctx = cpu_ctx();
  ScratchDir dir, half;
  Model m(tiny_config(ModelArch::qwen3, true), {Device::cpu, DType::f32}, ctx);
  randomize_params(m, ctx, 21);
  save_model(m, ctx, dir.path(), DType::bf16);
  EXPECT_EQ(load_hf_config(dir.file("config.json")).torch_dtype, "bfloat16");
  auto loaded = load_model(dir.path(), {Device::cpu, DType::f64}, ctx);
  for (const Param& p : m.params()) {
    auto want = round_as(DType::bf16, to_host_f64(ctx, p.value));
    EXPECT_EQ(to_host_f64(ctx, loaded->params().at(p.name).value), want) << p.name;
  }
  // F16 (not a dtype attnlab saves) also reads.
  std::filesystem::copy_file(dir.file("config.json"), half.file("config.json"));
  write_all(half.file("model.safetensors"), read_all(dir.file("model.safetensors")), DType::f16);
  auto from_half = load_model(half.path(), {Device::cpu, DType::f32}, ctx);
  const Param& k = from_half->params().at("model.layers.0.self_attn.k_proj.weight");
  auto want = to_host_f64(ctx, m.params().at(k.name).value);
  EXPECT_LT(rel_err(to_host_f64(ctx, k.value), want), 1e-2);
}

TEST(ModelIo, Gpt2OriginalUnprefixedNamesAndMaskBuffersLoad) {
  Ctx& ctx = cpu_ctx();
  ScratchDir dir, orig;
  Model m(tiny_config(ModelArch::gpt2, true), {Device::cpu, DType::f32}, ctx);
  randomize_params(m, ctx, 8);
  save_model(m, ctx, dir.path());
  std::vector<FileTensor> ts;
  for (auto t : read_all(dir.file("model.safetensors"))) {
    t.name = t.name.substr(std::string("transformer.").size());
    ts.push_back(t);
  }
  ts.push_back({"h.0.attn.bias", std::vector<double>(16, 1.0), {1, 1, 4, 4}});
  ts.push_back({"h.1.attn.masked_bias", {-1e4}, {1}});
  write_all(orig.file("model.safetensors"), ts);
  std::filesystem::copy_file(dir.file("config.json"), orig.file("config.json"));
  auto loaded = load_model(orig.path(), {Device::cpu, DType::f32}, ctx);
  for (const Param& p : m.params()) EXPECT_TRUE(same_bytes(ctx, p.value, loaded->params().at(p.name).value)) << p.name;
}

TEST(ModelIo, InitFollowsHfAndIsSeeded) {
  Ctx& ctx = cpu_ctx();
  TinyShape s;
  s.D = 64;
  s.I = 256;
  s.Hq = 4;
  s.L = 3;
  s.V = 257;
  Model a(tiny_config(ModelArch::gpt2, true, s), {Device::cpu, DType::f32}, ctx);
  Model b(a.config(), {Device::cpu, DType::f32}, ctx);
  Model c(a.config(), {Device::cpu, DType::f32}, ctx);
  init_weights(a, ctx, 42);
  init_weights(b, ctx, 42);
  init_weights(c, ctx, 43);
  auto stddev = [](const std::vector<double>& v) {
    double s2 = 0, m = 0;
    for (double x : v) m += x;
    m /= double(v.size());
    for (double x : v) s2 += (x - m) * (x - m);
    return std::sqrt(s2 / double(v.size()));
  };
  for (const Param& p : a.params()) {
    EXPECT_EQ(to_host_f64(ctx, p.value), to_host_f64(ctx, b.params().at(p.name).value)) << p.name;
    if (p.pad_rows > 0) {  // the padded vocabulary's rows: zero, outside the statistics below
      const Tensor pad = p.value.slice0(p.shape[0] - p.pad_rows, p.shape[0]);
      for (double x : to_host_f64(ctx, pad)) ASSERT_EQ(x, 0.0) << p.name;
    }
    auto va = to_host_f64(ctx, p.unpadded(p.value));
    if (p.shape.size() == 1) {
      const double want = p.name.find(".bias") != std::string::npos ? 0.0 : 1.0;
      for (double x : va) ASSERT_EQ(x, want) << p.name;
      continue;
    }
    EXPECT_NE(va, to_host_f64(ctx, c.params().at(p.name).value)) << p.name;
    const bool c_proj = p.name.find("c_proj.weight") != std::string::npos;
    const double want = c_proj ? 0.02 / std::sqrt(2.0 * 3) : 0.02;
    // Smallest tensor: wpe 16×64 = 1024 draws, so the sample std is within ~2.2% (1σ) of σ.
    EXPECT_NEAR(stddev(va), want, 0.1 * want) << p.name;
  }
}

TEST(ModelIo, SaveRefusesAShardedFolderAndBadDtypes) {
  Ctx& ctx = cpu_ctx();
  ScratchDir dir;
  Model m(tiny_config(ModelArch::qwen2, true), {Device::cpu, DType::f32}, ctx);
  std::ofstream(dir.file("model.safetensors.index.json")) << "{}";
  EXPECT_NE(error_of([&] { save_model(m, ctx, dir.path()); }).find("sharded"), std::string::npos);
  ScratchDir dir2;
  EXPECT_NE(error_of([&] { save_model(m, ctx, dir2.path(), DType::i32); }).find("f32, bf16 or f64"), std::string::npos);
}

}  // namespace
}  // namespace attnlab::test
