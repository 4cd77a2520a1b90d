#pragma once
// Opens any model folder attnlab writes or reads: an HF folder (config.json + safetensors: GPT-2,
// Qwen2/2.5, Qwen3, with the attnlab block's variant/controller/head) or a from-scratch decoder's
// checkpoint (model.safetensors whose metadata says attnlab.model = scratch_decoder, no config.json).
#include <memory>
#include <string>
#include <vector>

#include "core/models/model.h"

namespace attnlab {

enum class ModelFolderKind { hf, scratch_decoder };
// Throws naming the folder and what a model folder holds when it is neither.
ModelFolderKind model_folder_kind(const std::string& folder);

// The model with its weights. `attention`: key=value attention options over the folder's (HF
// folders; see load_model). Scratch-decoder checkpoints take none.
std::unique_ptr<TrainableModel> load_any_model(const std::string& folder, const ModelOptions& options, Ctx& ctx,
                                               const std::vector<std::string>& attention = {});

}  // namespace attnlab
