#pragma once
// Safetensors checkpoints (https://huggingface.co/docs/safetensors): reader and writer.
//
// Layout: 8 bytes little-endian u64 N, then N bytes of JSON header, then the data section.
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}, offsets
// relative to the data section; an optional "__metadata__" object maps strings to strings.
//
// The reader memory-maps the file read-only and validates the whole header before anything else
// sees it: any malformed input is refused with one attnlab::Error that names the file, the place
// (tensor name or byte offset) and what to do about it. No input can make it read out of bounds.
// Unlike the reference reader it accepts unused bytes between or after tensors (nothing is read
// from them); our writer never leaves any. A file truncated by another process while mapped
// raises SIGBUS on access, as with any mmap: don't rewrite checkpoints that are being read.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace attnlab {

// Every dtype the safetensors format defines with a whole number of bytes per element.
// Only the ones with an attnlab DType (F32, BF16, F16, F64, I32, U32) can be viewed as Tensors;
// the others are still validated, listed and reported by name.
enum class StDType : uint8_t { BOOL, U8, I8, F8_E5M2, F8_E4M3, F8_E8M0, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64 };

const char* st_dtype_name(StDType t);
size_t st_dtype_size(StDType t);
std::optional<StDType> st_dtype_from_name(const std::string& s);
// The attnlab dtype with the same bit layout, if there is one.
std::optional<DType> to_attnlab_dtype(StDType t);
StDType to_st_dtype(DType t);
// "BOOL, U8, ..., U64": for error messages.
std::string st_dtype_list();

struct SafetensorInfo {
  std::string name;
  StDType dtype = StDType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte range within the data section
  uint64_t file_offset = 0;     // absolute offset of `begin` in the file

  uint64_t bytes() const { return end - begin; }
  int64_t numel() const;
  std::string shape_str() const;  // "[896,4864]"
};

class SafetensorsFile {
 public:
  // Maps and validates `path`. Throws attnlab::Error on any problem.
  static SafetensorsFile open(const std::string& path);
  // Validates an in-memory copy of a file (tests, fuzzing); `label` stands for the path in errors.
  static SafetensorsFile from_bytes(std::vector<uint8_t> bytes, const std::string& label);

  SafetensorsFile(SafetensorsFile&& o) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& o) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  uint64_t file_size() const { return size_; }
  uint64_t header_size() const { return header_size_; }  // N, padding included
  uint64_t data_offset() const { return 8 + header_size_; }

  // Tensor names in file order (ascending data offset; ties by name).
  const std::vector<std::string>& names() const { return names_; }
  bool has(const std::string& name) const { return index_.count(name) != 0; }
  // Throws naming the file and the missing tensor.
  const SafetensorInfo& info(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // The raw bytes of a tensor (bytes() of them), valid while this object lives.
  const uint8_t* raw(const std::string& name) const;
  // A non-owning CPU view of the tensor, valid while this object lives. Throws when the dtype has
  // no attnlab equivalent, the tensor has more than Tensor::kMaxDims dims, or its data is not
  // aligned to its element size (read_tensor_into copies such tensors instead). The view is
  // read-only in spirit: the mapping is PROT_READ, so writing through it faults.
  Tensor view(const std::string& name) const;

 private:
  SafetensorsFile() = default;
  void parse();
  void release();

  std::string path_;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  void* map_ = nullptr;           // set when the file is memory-mapped
  std::vector<uint8_t> owned_;    // set when built from bytes
  uint64_t header_size_ = 0;
  std::vector<SafetensorInfo> tensors_;  // file order
  std::vector<std::string> names_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// A tensor a caller requires, with its shape.
struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> shape;
};
// Throws one error listing every missing tensor, every tensor with the wrong shape, and (unless
// allow_extra) every tensor the file holds that was not asked for.
void expect_tensors(const SafetensorsFile& f, const std::vector<ExpectedTensor>& required, bool allow_extra);

// Copies tensor `name` (F16, BF16, F32 or F64) into the CPU tensor `dst` (f32, bf16, f16 or f64),
// converting with round-to-nearest-even. dst must hold the same number of elements, and the same
// shape when the file's tensor has at most Tensor::kMaxDims dims. Works on unaligned data.
void read_tensor_into(const SafetensorsFile& f, const std::string& name, const Tensor& dst);
// The tensor's values as doubles (exact for every float dtype).
std::vector<double> read_tensor_f64(const SafetensorsFile& f, const std::string& name);

struct NamedTensor {
  std::string name;
  Tensor tensor;  // CPU, contiguous
};
// Writes a safetensors file: header with sorted keys, padded with spaces to a multiple of 8 bytes
// (as the reference implementation does), data in the given order without gaps. Writes to a
// temporary file in the same folder, fsyncs it and renames it over `path`, so `path` never holds a
// half-written file. Tensors are aligned to their element size only if the caller orders them so
// (e.g. wider dtypes first); a single-dtype file is always aligned.
void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace attnlab
