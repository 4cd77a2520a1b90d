#include "core/models/model_loader.h"

#include <filesystem>

#include "core/io/safetensors.h"
#include "core/models/scratch_decoder.h"
#include "core/models/weights.h"

namespace attnlab {

namespace fs = std::filesystem;

ModelFolderKind model_folder_kind(const std::string& folder) {
  const fs::path dir(folder);
  INPUT_CHECK(fs::is_directory(dir), "'", folder, "' is not a folder. Fix: point at a model folder (config.json + ",
              "model.safetensors: an HF checkpoint, `attnlab init` output or a run checkpoint, runs/<name>/checkpoints/",
              "step_N)");
  if (fs::exists(dir / "config.json")) return ModelFolderKind::hf;
  const fs::path weights = dir / "model.safetensors";
  if (fs::exists(weights)) {
    const SafetensorsFile f = SafetensorsFile::open(weights.string());
    auto it = f.metadata().find("attnlab.model");
    if (it != f.metadata().end() && it->second == "scratch_decoder") return ModelFolderKind::scratch_decoder;
  }
  FAIL_WITH("'", folder, "' holds no config.json (an HF model folder) and no from-scratch decoder checkpoint ",
            "(model.safetensors written by attnlab train). Fix: point at a model folder, e.g. ",
            "runs/<name>/checkpoints/best");
}

std::unique_ptr<TrainableModel> load_any_model(const std::string& folder, const ModelOptions& options, Ctx& ctx,
                                               const std::vector<std::string>& attention) {
  if (model_folder_kind(folder) == ModelFolderKind::hf) return load_model(folder, options, ctx, attention);
  INPUT_CHECK(attention.empty(), "'", folder, "' is a from-scratch decoder checkpoint; its attention options are ",
              "part of it (--attention applies to HF folders)");
  const std::string path = scratch_decoder_file(folder);
  auto m = std::make_unique<ScratchDecoder>(read_scratch_decoder_config(path), options, ctx);
  load_scratch_decoder(*m, ctx, path);
  return m;
}

}  // namespace attnlab
