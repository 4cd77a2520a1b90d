#pragma once
// HF checkpoints in and out of a Model, and random initialisation.
//
// Folder layout (what transformers' save_pretrained writes and from_pretrained reads):
//   config.json + model.safetensors, or config.json + model.safetensors.index.json + the shards it
//   names (model-00001-of-00002.safetensors, ...).
// Names are the HF names of the model's parameters, with two tolerances on load: a GPT-2 file
// whose names lack the "transformer." prefix (the original gpt2 upload), and tensors HF itself
// ignores (GPT-2's attn.bias / attn.masked_bias mask buffers; lm_head.weight of a tied model).
// Every float dtype (F16, BF16, F32, F64) converts to the model dtype (round to nearest even).
// GPT-2's Conv1D weights are [in, out] in the file and transposed on the way in and out.
// A padded vocabulary (Model's embedding / LM head rows rounded up to 64) is not in the files:
// they hold [V, C] as HF does; loading fills the first V rows and zeroes the padding rows.
// Validation happens before any value is read: one error lists every missing tensor, every
// tensor with the wrong shape and every unexpected one, naming the file.
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/models/model.h"

namespace attnlab {

// Reads folder/config.json, builds the model and loads its weights. `attention`: attention options
// as key=value ("norm=linear", "controller=temperature", "variant=differential"; the table of
// core/config/attention_options.h) set over the folder's attnlab block, so a pretrained folder runs
// another normalisation, variant or controller; parameters they add are initialised by their rule.
std::unique_ptr<Model> load_model(const std::string& folder, const ModelOptions& options, Ctx& ctx,
                                  const std::vector<std::string>& attention = {});
// The folder's config.json with `attention` key=value options applied (what load_model builds).
ModelConfig model_config_with_attention(const std::string& folder, const std::vector<std::string>& attention);
// Loads the weights of `folder` into an existing model (its config must match the files).
// Parameters a variant, controller or head added (ParamInit::added) that the files lack are
// initialised by their rule and listed in the log; any other missing tensor is an error.
void load_weights(Model& model, Ctx& ctx, const std::string& folder);

// Writes folder/config.json (torch_dtype set to the file dtype) and folder/model.safetensors
// (tied embeddings stored once, GPT-2 Conv1D weights [in, out]). file_dtype: f32, bf16 or f64;
// the model's dtype when left undefined. Creates the folder; refuses one holding a sharded index.
void save_model(const Model& model, Ctx& ctx, const std::string& folder, DType file_dtype);
void save_model(const Model& model, Ctx& ctx, const std::string& folder);

// HF initialisation, seeded (Philox normal draws, the same on every device and dtype):
// matrices and embeddings ~ N(0, initializer_range²) (config.json, default 0.02); GPT-2's c_proj
// weights (attention and MLP) N(0, (initializer_range / sqrt(2·L))²); norm weights 1; biases 0.
// A parameter with its own rule (ParamInit: zeros, ones, N(0, σ²)) follows it instead, e.g.
// differential attention's λ vectors N(0, 0.1²) (METHODS §3.2) and controllers' zero projections.
void init_weights(Model& model, Ctx& ctx, uint64_t seed);
// One parameter by its rule, drawing Philox stream positions [base, base + 2·numel).
void init_param(Param& p, const ModelConfig& config, Ctx& ctx, uint64_t seed, uint64_t base);
// The parameters declared ParamInit::Kind::copy (init_param leaves them) take their source's value;
// `only`: just those names (load_weights: the ones the checkpoint lacked), nullptr: all.
void copy_param_inits(ParamStore& params, Ctx& ctx, const std::set<std::string>* only);

// The HF torch_dtype name of a dtype ("float32", "bfloat16", "float64").
const char* torch_dtype_name(DType dt);

}  // namespace attnlab
