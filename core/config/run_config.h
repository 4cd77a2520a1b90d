#pragma once
// The top-level task and the `run:` section: what the run is called, where it writes, its
// seed, device and dtype. Members are filled by the loader; defaults live in the field
// declarations (run_config.cpp), the one place they are written.
#include <cstdint>
#include <string>

#include "core/config/field.h"
#include "core/dtype.h"

namespace attnlab::config {

enum class Task : uint8_t {
  pretrain,  // next-token loss on every token of a corpus
  sft,       // supervised fine-tuning on prompt/response records
  kv_only,   // fine-tuning with only the k_proj/v_proj weights trainable
};

enum class DeviceChoice : uint8_t { auto_select, cpu, cuda };

struct RunConfig {
  std::string name;
  std::string out_dir;
  int64_t seed = 0;
  DeviceChoice device = DeviceChoice::auto_select;
  DType dtype = DType::f32;  // f32 or bf16
};

struct ExperimentConfig;
void declare_task_field(FieldBinder<ExperimentConfig>& f);
void declare_fields(FieldBinder<RunConfig>& f);

}  // namespace attnlab::config
