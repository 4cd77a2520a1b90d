#pragma once
// The model an experiment trains: `model.from` (an HF folder, init:<arch> for random weights
// of a reference shape, or init:decoder_paper|decoder_seed for the from-scratch decoders), `model.arch` (config.json keys to override) and `model.attention` (the
// attention variant, written into config.json's "attnlab" block, which is how the layers pick it).
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "core/config/experiment.h"
#include "core/models/model.h"
#include "core/models/trainable_model.h"

namespace attnlab::train {

// The HF config the experiment describes: the folder's config.json or the reference one, with
// model.arch overrides (values parsed as JSON when they parse: "4" is a number, "true" a bool)
// and the model.attention fields the YAML sets.
ModelConfig experiment_model_config(const config::ExperimentConfig& cfg);

struct BuiltModel {
  std::unique_ptr<TrainableModel> model;
  // bf16 models only: a CPU f32 copy holding the full-precision values the bf16 working copy was
  // rounded from (what the optimizer's master weights start from); null otherwise or when
  // `need_master_source` was false (a resumed run reads its master weights from the checkpoint).
  std::unique_ptr<TrainableModel> master_source;
};

// Builds the model on ctx's device in `dtype` (f32, or bf16 on CUDA) with its initial weights:
// an HF model (`mc`: the folder's weights, or HF's initialisation seeded by run.seed), or, when
// model.from is init:decoder_paper / init:decoder_seed, a from-scratch decoder of METHODS §3
// (PyTorch-default initialisation seeded by run.seed; `mc` is not read).
BuiltModel build_model(const config::ExperimentConfig& cfg, const ModelConfig& mc, DType dtype, Ctx& ctx,
                       bool need_master_source);

}  // namespace attnlab::train
