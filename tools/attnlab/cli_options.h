#pragma once
// The --device and --dtype options of the commands that run a model (forward, generate, analyze
// needle) and the file --dtype of init: one parser, so every command accepts the same spellings
// and refuses the same combinations with the same message.
#include <initializer_list>
#include <string>

#include "core/dtype.h"
#include "core/tensor.h"

namespace attnlab::cli {

struct DeviceDtype {
  Device device = Device::cpu;
  DType dtype = DType::f32;
};

// `device`: cpu or cuda. `dtype`: f32, f64 (CPU only) or bf16 (CUDA only), in any spelling
// dtype_from_name knows (float32, fp32, ...), or "auto" when `allow_auto`: bf16 on cuda, f32 on
// cpu. Throws attnlab::Error naming `command` and the flag otherwise.
DeviceDtype parse_device_dtype(const std::string& command, const std::string& device, const std::string& dtype,
                               bool allow_auto = false);

// A --dtype that must be one of `allowed` (e.g. the dtype of saved tensors); same spellings.
DType parse_dtype_option(const std::string& command, const std::string& dtype, std::initializer_list<DType> allowed);

}  // namespace attnlab::cli
