#include "tools/attnlab/cli_options.h"

#include <algorithm>

#include "core/error.h"

namespace attnlab::cli {

namespace {

std::string names_of(std::initializer_list<DType> ds) {
  std::string s;
  for (size_t i = 0; i < ds.size(); ++i) {
    s += i == 0 ? "" : i + 1 == ds.size() ? " or " : ", ";
    s += dtype_name(ds.begin()[i]);
  }
  return s;
}

// dtype_from_name's spellings, without its message (the flag's own message replaces it).
bool known_dtype(const std::string& text, DType& out) {
  try {
    out = dtype_from_name(text);
    return true;
  } catch (const Error&) {
    return false;
  }
}

}  // namespace

DType parse_dtype_option(const std::string& command, const std::string& dtype, std::initializer_list<DType> allowed) {
  DType dt{};
  if (!known_dtype(dtype, dt) || std::find(allowed.begin(), allowed.end(), dt) == allowed.end())
    throw UsageError(detail::cat(command, ": --dtype is ", names_of(allowed), ", got '", dtype, "'"));
  return dt;
}

DeviceDtype parse_device_dtype(const std::string& command, const std::string& device, const std::string& dtype,
                               bool allow_auto) {
  DeviceDtype r;
  if (device == "cuda") r.device = Device::cuda;
  else if (device != "cpu") throw UsageError(detail::cat(command, ": --device is cpu or cuda, got '", device, "'"));
  if (allow_auto && dtype == "auto") {
    r.dtype = r.device == Device::cuda ? DType::bf16 : DType::f32;
    return r;
  }
  DType dt{};
  if (!known_dtype(dtype, dt) || (dt != DType::f32 && dt != DType::f64 && dt != DType::bf16))
    throw UsageError(detail::cat(command, ": --dtype is f32, f64 (CPU) or bf16 (CUDA)", allow_auto ? " or auto" : "", ", got '", dtype,
              "'"));
  if (r.device == Device::cpu && dt == DType::bf16)
    throw UsageError(detail::cat(command, ": --dtype bf16 runs on CUDA; on the CPU use f32 or f64 (or --device cuda)"));
  if (r.device == Device::cuda && dt == DType::f64)
    throw UsageError(detail::cat(command, ": --dtype f64 runs on the CPU; on CUDA use f32 or bf16 (or --device cpu)"));
  r.dtype = dt;
  return r;
}

}  // namespace attnlab::cli
