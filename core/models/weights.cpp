#include "core/models/weights.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/config/attention_options.h"
#include "core/io/safetensors.h"
#include "core/log.h"
#include "core/memory.h"
#include "core/rng.h"

namespace attnlab {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

const char* torch_dtype_name(DType dt) {
  switch (dt) {
    case DType::f32: return "float32";
    case DType::bf16: return "bfloat16";
    case DType::f16: return "float16";
    case DType::f64: return "float64";
    default: FAIL_WITH("checkpoints hold float tensors, not ", dtype_name(dt));
  }
}

namespace {

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";

// How the checkpoint names the model's parameters.
struct NameMap {
  bool strip_transformer = false;  // GPT-2 original upload: "h.0.attn..." for "transformer.h.0.attn..."
  std::string file_name(const std::string& param) const {
    const std::string prefix = "transformer.";
    if (strip_transformer && param.rfind(prefix, 0) == 0) return param.substr(prefix.size());
    return param;
  }
};

// Tensors HF loads without complaint and attnlab ignores.
bool ignorable(const Model& m, const std::string& name) {
  const auto ends_with = [&](const char* s) {
    const size_t n = std::strlen(s);
    return name.size() >= n && name.compare(name.size() - n, n, s) == 0;
  };
  if (m.config().arch == ModelArch::gpt2 && (ends_with(".attn.bias") || ends_with(".attn.masked_bias"))) return true;
  // A tied model's lm_head.weight (HF writes it in some files), unless a head of this model owns one
  // (lm_head_untied: a separate copy that trained).
  return m.config().tie_word_embeddings && name == "lm_head.weight" && !m.params().find(name);
}

struct CheckpointFiles {
  std::vector<std::string> paths;              // one, or the shards in index order
  std::map<std::string, std::string> owner;    // tensor name → path (sharded only)
  std::string index_path;                      // empty for a single file
};

CheckpointFiles find_files(const std::string& folder) {
  CheckpointFiles cf;
  const fs::path dir(folder);
  if (fs::exists(dir / kSingleFile)) {
    cf.paths.push_back((dir / kSingleFile).string());
    return cf;
  }
  const fs::path index = dir / kIndexFile;
  CHECK(fs::exists(index), "checkpoint folder '", folder, "' holds neither ", kSingleFile, " nor ", kIndexFile,
        ". Fix: point at a folder saved by transformers' save_pretrained or `attnlab init`");
  cf.index_path = index.string();
  std::ifstream in(index);
  ojson j = ojson::parse(in, nullptr, false);
  CHECK(!j.is_discarded() && j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(),
        "checkpoint index '", cf.index_path, "' is not a JSON object with a \"weight_map\" object");
  std::set<std::string> seen;
  for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
    CHECK(it->is_string(), "checkpoint index '", cf.index_path, "': weight_map[\"", it.key(), "\"] is not a file name");
    const std::string file = it->get<std::string>();
    CHECK(file.find('/') == std::string::npos && file != ".." && !file.empty(), "checkpoint index '",
          cf.index_path, "': shard name '", file, "' must be a file in the same folder");
    const std::string path = (dir / file).string();
    cf.owner[it.key()] = path;
    if (seen.insert(path).second) cf.paths.push_back(path);
  }
  return cf;
}

// Copies a row-major [rows, cols] matrix of `elem` bytes per element to [cols, rows].
void transpose_bytes(const void* src, void* dst, int64_t rows, int64_t cols, size_t elem) {
  const char* s = static_cast<const char*>(src);
  char* d = static_cast<char*>(dst);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      std::memcpy(d + size_t(c * rows + r) * elem, s + size_t(r * cols + c) * elem, elem);
}

std::string list_names(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& n : v) s += (s.empty() ? "" : "; ") + n;
  return s;
}

}  // namespace

void load_weights(Model& model, Ctx& ctx, const std::string& folder) {
  CheckpointFiles cf = find_files(folder);
  std::vector<SafetensorsFile> files;
  for (const auto& p : cf.paths) files.push_back(SafetensorsFile::open(p));

  auto file_has = [&](const std::string& name) {
    if (!cf.index_path.empty()) return cf.owner.count(name) != 0;
    return files[0].has(name);
  };
  NameMap names;
  if (model.config().arch == ModelArch::gpt2 && !file_has("transformer.wte.weight") && file_has("wte.weight"))
    names.strip_transformer = true;

  // Sharded: the index must name every parameter and nothing unknown (one error for all).
  if (!cf.index_path.empty()) {
    std::vector<std::string> missing, unexpected;
    std::set<std::string> expected;
    for (const Param& p : model.params()) {
      expected.insert(names.file_name(p.name));
      if (!cf.owner.count(names.file_name(p.name)) && !p.init.added) missing.push_back(names.file_name(p.name));
    }
    for (const auto& [name, path] : cf.owner)
      if (!expected.count(name) && !ignorable(model, name)) unexpected.push_back(name);
    if (!missing.empty() || !unexpected.empty()) {
      std::ostringstream os;
      os << "checkpoint index '" << cf.index_path << "' does not match the model of '" << model.config().source << "':";
      if (!missing.empty()) os << " " << missing.size() << " missing (" << list_names(missing) << ").";
      if (!unexpected.empty()) os << " " << unexpected.size() << " unexpected (" << list_names(unexpected) << ").";
      os << " Fix: use the config.json that came with these weights";
      throw Error(os.str());
    }
  }

  // Parameters a variant, controller or head added (ParamInit::added) that the checkpoint lacks:
  // initialised by their declared rule below instead of read.
  std::set<std::string> absent;
  for (const Param& p : model.params())
    if (p.init.added && !file_has(names.file_name(p.name))) absent.insert(p.name);

  // Per file: the parameters it must hold (checkpoint shapes) plus the ignorable tensors it holds.
  for (SafetensorsFile& f : files) {
    std::vector<ExpectedTensor> required;
    for (const Param& p : model.params()) {
      if (absent.count(p.name)) continue;
      const std::string n = names.file_name(p.name);
      if (cf.index_path.empty() || cf.owner.at(n) == f.path()) required.push_back({n, p.stored_shape()});
    }
    for (const std::string& n : f.names())
      if (ignorable(model, n)) required.push_back({n, f.info(n).shape});
    expect_tensors(f, required, false);
  }

  // Values: read (converting dtype) into a CPU staging tensor, transpose Conv1D weights, copy over.
  const DType dt = model.dtype();
  std::vector<std::string> initialised;
  for (Param& p : model.params()) {
    if (absent.count(p.name)) {
      // Each added parameter draws from its own stretch of the stream, keyed by its name (FNV-1a),
      // so the gates of different layers (and q, k, v) do not all start from the same values.
      uint64_t stream = 1469598103934665603ull;
      for (unsigned char ch : p.name) stream = (stream ^ ch) * 1099511628211ull;
      init_param(p, model.config(), ctx, 0, stream >> 16);
      initialised.push_back(p.name + " (" + param_init_name(p.init) +
                            (p.init.kind == ParamInit::Kind::copy ? " of " + p.init.source : std::string()) + ")");
      continue;
    }
    const std::string n = names.file_name(p.name);
    const SafetensorsFile* src = &files[0];
    if (!cf.index_path.empty())
      for (const SafetensorsFile& f : files)
        if (f.path() == cf.owner.at(n)) src = &f;
    const std::vector<int64_t> stored = p.stored_shape();
    const Tensor dst = p.unpadded(p.value);  // the file holds the real rows; padding rows stay zero
    if (dst.on_cpu() && !p.stored_transposed) {
      read_tensor_into(*src, n, dst);
      continue;
    }
    std::vector<char> staging(size_t(p.stored_numel()) * dtype_size(dt));
    read_tensor_into(*src, n, make_tensor_view(staging.data(), dt, Device::cpu, stored, p.name.c_str()));
    if (p.stored_transposed) {
      std::vector<char> turned(staging.size());
      transpose_bytes(staging.data(), turned.data(), stored[0], stored[1], dtype_size(dt));
      staging.swap(turned);
    }
    Tensor host = dst;  // the runtime layout of the real rows, on the host
    host.data = staging.data();
    host.device = Device::cpu;
    copy_tensor(ctx, dst, host);
  }
  copy_param_inits(model.params(), ctx, &absent);
  model.params().zero_padding(ctx);
  if (!initialised.empty())
    log_info("loaded '", folder, "'; ", initialised.size(), " parameter(s) the checkpoint lacks were initialised by ",
             "their module's rule: ", list_names(initialised));
}

ModelConfig model_config_with_attention(const std::string& folder, const std::vector<std::string>& attention) {
  const std::string path = (fs::path(folder) / "config.json").string();
  ModelConfig config = load_hf_config(path);
  if (attention.empty()) return config;
  ojson json = config.raw;
  ojson& block = json["attnlab"]["attention"];
  if (!block.is_object()) block = ojson::object();
  for (const std::string& kv : attention) {
    const size_t eq = kv.find('=');
    INPUT_CHECK(eq != std::string::npos && eq > 0, "attention option '", kv,
                "' is not key=value (e.g. norm=linear, controller=temperature, variant=differential)");
    const std::string key = kv.substr(0, eq), text = kv.substr(eq + 1);
    const ojson value = ojson::parse(text, nullptr, false);
    block[key] = value.is_discarded() || value.is_string() ? ojson(text) : value;
  }
  // Checked here with the table's words, before any layer is built.
  attention_options_from_json(block, path + " with the attention options given");
  return parse_hf_config(json.dump(), path + " with the attention options given");
}

std::unique_ptr<Model> load_model(const std::string& folder, const ModelOptions& options, Ctx& ctx,
                                  const std::vector<std::string>& attention) {
  ModelConfig config = model_config_with_attention(folder, attention);
  auto model = std::make_unique<Model>(config, options, ctx);
  load_weights(*model, ctx, folder);
  return model;
}

void save_model(const Model& model, Ctx& ctx, const std::string& folder) {
  save_model(model, ctx, folder, model.dtype());
}

void save_model(const Model& model, Ctx& ctx, const std::string& folder, DType file_dtype) {
  CHECK(file_dtype == DType::f32 || file_dtype == DType::bf16 || file_dtype == DType::f64,
        "save_model: checkpoints are written as f32, bf16 or f64, not ", dtype_name(file_dtype));
  const fs::path dir(folder);
  std::error_code ec;
  fs::create_directories(dir, ec);
  CHECK(!ec && fs::is_directory(dir), "save_model: cannot create folder '", folder, "': ", ec.message());
  CHECK(!fs::exists(dir / kIndexFile), "save_model: '", folder, "' holds a sharded checkpoint (", kIndexFile,
        "); transformers would read the shards instead of the new file. Fix: save into an empty folder");

  const DType dt = model.dtype();
  std::vector<std::vector<char>> storage;  // keeps every host copy alive until the write
  std::vector<NamedTensor> tensors;
  storage.reserve(model.params().size());
  for (const Param& p : model.params()) {
    const std::vector<int64_t> stored = p.stored_shape();
    const Tensor src = p.unpadded(p.value);  // padding rows are not written: the file is [V, C]
    std::vector<char> host(src.bytes());
    Tensor host_view = src;
    host_view.data = host.data();
    host_view.device = Device::cpu;
    copy_tensor(ctx, host_view, src);
    if (p.stored_transposed) {
      std::vector<char> turned(host.size());
      transpose_bytes(host.data(), turned.data(), p.shape[0], p.shape[1], dtype_size(dt));
      host.swap(turned);
    }
    if (file_dtype != dt) {
      Tensor from = make_tensor_view(host.data(), dt, Device::cpu, stored, p.name.c_str());
      std::vector<double> values = to_host_f64(ctx, from);
      std::vector<char> converted(size_t(p.stored_numel()) * dtype_size(file_dtype));
      from_host_f64(ctx, make_tensor_view(converted.data(), file_dtype, Device::cpu, stored, p.name.c_str()), values);
      host.swap(converted);
    }
    storage.push_back(std::move(host));
    tensors.push_back({p.name, make_tensor_view(storage.back().data(), file_dtype, Device::cpu, stored, p.name.c_str())});
  }
  // transformers refuses safetensors files whose metadata does not say format "pt".
  write_safetensors((dir / kSingleFile).string(), tensors, {{"format", "pt"}});

  ModelConfig c = model.config();
  c.torch_dtype = torch_dtype_name(file_dtype);
  save_hf_config((dir / "config.json").string(), c);
}

namespace {

double initializer_range(const ModelConfig& c) {
  if (c.raw.is_object() && c.raw.contains("initializer_range") && !c.raw["initializer_range"].is_null()) {
    CHECK(c.raw["initializer_range"].is_number(), "config '", c.source, "': initializer_range must be a number");
    return c.raw["initializer_range"].get<double>();
  }
  return 0.02;
}

}  // namespace

void init_param(Param& p, const ModelConfig& c, Ctx& ctx, uint64_t seed, uint64_t base) {
  const auto ends_with = [](const std::string& s, const char* suffix) {
    const size_t n = std::strlen(suffix);
    return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
  };
  // Draws for the real rows only, so a padded and an unpadded model get the same values.
  const Tensor dst = p.unpadded(p.value);
  std::vector<double> v(size_t(dst.numel()));
  double s = 0;
  switch (p.init.kind) {
    case ParamInit::Kind::zeros: break;
    case ParamInit::Kind::ones: std::fill(v.begin(), v.end(), 1.0); break;
    case ParamInit::Kind::normal: s = p.init.stddev; break;
    case ParamInit::Kind::uniform:
      for (size_t i = 0; i < v.size(); ++i)
        v[i] = p.init.stddev * (2.0 * (double(philox_u32(seed, base, i) >> 8) + 0.5) / 16777216.0 - 1.0);
      break;
    case ParamInit::Kind::identity: {
      CHECK(dst.ndim == 2, "parameter '", p.name, "': an identity initialisation needs a matrix, got ", dst.shape_str());
      const int64_t rows = dst.dim(0), cols = dst.dim(1), block = p.init.block > 0 ? p.init.block : cols;
      for (int64_t i = 0; i < rows; ++i)
        if (i % block < cols) v[size_t(i * cols + i % block)] = 1.0;
      break;
    }
    case ParamInit::Kind::copy: return;  // copy_param_inits, once every source holds its value
    case ParamInit::Kind::model_default:
      if (p.shape.size() == 1) {
        // Biases 0, norm weights 1 (every 1-D parameter these architectures declare without a
        // rule of its own is one or the other).
        std::fill(v.begin(), v.end(), ends_with(p.name, ".bias") ? 0.0 : 1.0);
      } else {
        s = initializer_range(c);
        if (c.arch == ModelArch::gpt2 && ends_with(p.name, "c_proj.weight")) s /= std::sqrt(2.0 * double(c.num_layers));
      }
  }
  if (s > 0)
    for (size_t i = 0; i < v.size(); ++i) {
      // Box–Muller over two 24-bit uniforms; u1 is shifted off zero so the log is finite.
      const double u1 = (double(philox_u32(seed, base, 2 * i) >> 8) + 0.5) / 16777216.0;
      const double u2 = double(philox_u32(seed, base, 2 * i + 1) >> 8) / 16777216.0;
      v[i] = s * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
    }
  from_host_f64(ctx, dst, v);
}

void copy_param_inits(ParamStore& params, Ctx& ctx, const std::set<std::string>* only) {
  for (Param& p : params) {
    if (p.init.kind != ParamInit::Kind::copy || (only && !only->count(p.name))) continue;
    const Param* src = params.find(p.init.source);
    CHECK(src && src->shape == p.shape, "parameter '", p.name, "' starts as a copy of '", p.init.source,
          "', which the model ", src ? "holds with another shape" : "does not hold");
    copy_tensor(ctx, p.value, src->value);
  }
}

void init_weights(Model& model, Ctx& ctx, uint64_t seed) {
  uint64_t offset = 0;  // Philox draws consumed so far: each tensor gets its own stretch of the stream
  for (Param& p : model.params()) {
    init_param(p, model.config(), ctx, seed, offset);
    offset += 2 * uint64_t(p.unpadded(p.value).numel());
  }
  copy_param_inits(model.params(), ctx, nullptr);
  model.params().zero_padding(ctx);
}

}  // namespace attnlab
