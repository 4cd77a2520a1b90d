#include "core/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <tuple>

namespace attnlab {
namespace {

struct StDTypeRow {
  StDType type;
  const char* name;
  size_t size;
};
constexpr StDTypeRow kStDTypes[] = {
    {StDType::BOOL, "BOOL", 1}, {StDType::U8, "U8", 1},           {StDType::I8, "I8", 1},
    {StDType::F8_E5M2, "F8_E5M2", 1}, {StDType::F8_E4M3, "F8_E4M3", 1}, {StDType::F8_E8M0, "F8_E8M0", 1},
    {StDType::I16, "I16", 2},   {StDType::U16, "U16", 2},         {StDType::F16, "F16", 2},
    {StDType::BF16, "BF16", 2}, {StDType::I32, "I32", 4},         {StDType::U32, "U32", 4},
    {StDType::F32, "F32", 4},   {StDType::F64, "F64", 8},         {StDType::I64, "I64", 8},
    {StDType::U64, "U64", 8},
};

// The reference implementation's limit: a larger header is a corrupt length field, not a header.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// Names and JSON fragments come from the file: keep messages one printable line.
// Parser messages quote raw header bytes, which need not be UTF-8: escape_high escapes those too.
std::string printable(const std::string& s, size_t max_len = 200, bool escape_high = false) {
  std::string out;
  for (unsigned char c : s) {
    if (out.size() >= max_len) {
      out += "...";
      break;
    }
    if (c < 0x20 || c == 0x7f || (escape_high && c >= 0x80)) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += char(c);
    }
  }
  return out;
}

[[noreturn]] void refuse(const std::string& file, const std::string& where, const std::string& problem,
                         const std::string& fix) {
  throw Error(detail::cat("safetensors file '", file, "': ", where, ": ", problem, ". Fix: ", fix));
}

const char* kFixReexport = "the file is corrupt or was not written by a safetensors writer; re-download or re-export it";

std::string json_type(const nlohmann::json& v) {
  if (v.is_number_unsigned()) return "a non-negative integer";
  if (v.is_number_integer()) return "a negative integer";
  if (v.is_number_float()) return "a non-integer number";
  return v.type_name();
}

// Duplicate keys are legal JSON but ambiguous here (which tensor wins?): record the first one seen.
struct DuplicateKeyWatch {
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  bool operator()(int, nlohmann::json::parse_event_t ev, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (ev == E::object_start) open_objects.emplace_back();
    else if (ev == E::object_end && !open_objects.empty()) open_objects.pop_back();
    else if (ev == E::key && !open_objects.empty() && parsed.is_string()) {
      const auto& k = parsed.get_ref<const std::string&>();
      if (!open_objects.back().insert(k).second && duplicate.empty()) duplicate = k;
    }
    return true;
  }
};

bool is_float_st(StDType t) {
  return t == StDType::F16 || t == StDType::BF16 || t == StDType::F32 || t == StDType::F64;
}

double load_as_f64(const uint8_t* p, StDType t) {
  switch (t) {
    case StDType::F16: { f16 v; std::memcpy(&v, p, 2); return f16_to_float(v); }
    case StDType::BF16: { bf16 v; std::memcpy(&v, p, 2); return bf16_to_float(v); }
    case StDType::F32: { float v; std::memcpy(&v, p, 4); return v; }
    case StDType::F64: { double v; std::memcpy(&v, p, 8); return v; }
    default: return 0;  // unreachable: callers check is_float_st
  }
}

// double -> float rounding to odd: float has 24 significant bits, more than bf16's 8 + 2 and
// f16's 11 + 2, so rounding that result to nearest-even gives the same 16-bit value as rounding
// the double directly (no double-rounding error).
float round_to_odd_float(double d) {
  float r = float(d);
  if (std::isnan(d) || double(r) == d) return r;
  if (std::fabs(double(r)) > std::fabs(d)) r = std::nextafter(r, 0.0f);
  uint32_t u;
  std::memcpy(&u, &r, 4);
  u |= 1u;
  std::memcpy(&r, &u, 4);
  return r;
}

void store_from_f64(uint8_t* p, DType t, double d) {
  switch (t) {
    case DType::f64: std::memcpy(p, &d, 8); break;
    case DType::f32: { float v = float(d); std::memcpy(p, &v, 4); break; }
    case DType::bf16: { bf16 v = float_to_bf16(round_to_odd_float(d)); std::memcpy(p, &v, 2); break; }
    case DType::f16: { f16 v = float_to_f16(round_to_odd_float(d)); std::memcpy(p, &v, 2); break; }
    default: break;  // unreachable: callers check the destination dtype
  }
}

void convert_elements(const uint8_t* src, StDType st, uint8_t* dst, DType dt, int64_t n) {
  const size_t ss = st_dtype_size(st), ds = dtype_size(dt);
  if (n == 0) return;  // empty tensors may come with null pointers
  if (to_attnlab_dtype(st) == dt) {
    std::memcpy(dst, src, size_t(n) * ss);
    return;
  }
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) store_from_f64(dst + size_t(i) * ds, dt, load_as_f64(src + size_t(i) * ss, st));
}

}  // namespace

// ---- dtypes ---------------------------------------------------------------------------------

const char* st_dtype_name(StDType t) {
  for (const auto& r : kStDTypes)
    if (r.type == t) return r.name;
  return "?";
}
size_t st_dtype_size(StDType t) {
  for (const auto& r : kStDTypes)
    if (r.type == t) return r.size;
  return 0;
}
std::optional<StDType> st_dtype_from_name(const std::string& s) {
  for (const auto& r : kStDTypes)
    if (s == r.name) return r.type;
  return std::nullopt;
}
std::string st_dtype_list() {
  std::string out;
  for (const auto& r : kStDTypes) out += (out.empty() ? "" : ", ") + std::string(r.name);
  return out;
}
std::optional<DType> to_attnlab_dtype(StDType t) {
  switch (t) {
    case StDType::F32: return DType::f32;
    case StDType::BF16: return DType::bf16;
    case StDType::F16: return DType::f16;
    case StDType::F64: return DType::f64;
    case StDType::I32: return DType::i32;
    case StDType::U32: return DType::u32;
    default: return std::nullopt;
  }
}
StDType to_st_dtype(DType t) {
  switch (t) {
    case DType::f32: return StDType::F32;
    case DType::bf16: return StDType::BF16;
    case DType::f16: return StDType::F16;
    case DType::f64: return StDType::F64;
    case DType::i32: return StDType::I32;
    case DType::u32: return StDType::U32;
  }
  FAIL_WITH("dtype ", int(t), " has no safetensors name");
}

int64_t SafetensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // validated at load: the product fits (it equals bytes / size)
  return n;
}
std::string SafetensorInfo::shape_str() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

// ---- reader ---------------------------------------------------------------------------------

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    refuse(path, "open", std::strerror(errno), "check the path and its permissions");
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    refuse(path, "open", "not a regular file", "pass the path of a .safetensors file");
  }
  f.size_ = uint64_t(st.st_size);
  if (f.size_ >= 8) {  // mmap of an empty range fails; tiny files are refused by parse()
    void* m = ::mmap(nullptr, size_t(f.size_), PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      refuse(path, "mmap", std::strerror(e), "check that the file is readable and the address space suffices");
    }
    f.map_ = m;
    f.base_ = static_cast<const uint8_t*>(m);
  }
  ::close(fd);  // the mapping keeps the file open
  f.parse();
  return f;
}

SafetensorsFile SafetensorsFile::from_bytes(std::vector<uint8_t> bytes, const std::string& label) {
  SafetensorsFile f;
  f.path_ = label;
  f.owned_ = std::move(bytes);
  f.base_ = f.owned_.data();
  f.size_ = f.owned_.size();
  f.parse();
  return f;
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept { *this = std::move(o); }

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& o) noexcept {
  if (this != &o) {
    release();
    path_ = std::move(o.path_);
    base_ = o.base_;
    size_ = o.size_;
    map_ = o.map_;
    owned_ = std::move(o.owned_);  // moving a vector keeps its buffer, so base_ stays valid
    header_size_ = o.header_size_;
    tensors_ = std::move(o.tensors_);
    names_ = std::move(o.names_);
    index_ = std::move(o.index_);
    metadata_ = std::move(o.metadata_);
    o.base_ = nullptr;
    o.map_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

SafetensorsFile::~SafetensorsFile() { release(); }

void SafetensorsFile::release() {
  if (map_) ::munmap(map_, size_t(size_));
  map_ = nullptr;
  base_ = nullptr;
}

void SafetensorsFile::parse() {
  const std::string& file = path_;
  if (size_ < 8)
    refuse(file, "bytes 0-7", detail::cat("the file has ", size_, " bytes, fewer than the 8-byte header length"),
           "the file is empty or truncated; re-download or re-export it");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | base_[i];  // little-endian, whatever the host
  if (n > kMaxHeaderBytes)
    refuse(file, "bytes 0-7 (header length)",
           detail::cat("header length ", n, " is absurd (the limit is ", kMaxHeaderBytes, " bytes)"),
           "this is not a safetensors file or its first 8 bytes are corrupt; re-download or re-export it");
  if (n > size_ - 8)
    refuse(file, "bytes 0-7 (header length)",
           detail::cat("header length ", n, " runs past the end of the file (", size_, " bytes in all)"),
           "the file is truncated; re-download or re-export it");
  if (n == 0 || base_[8] != '{')
    refuse(file, "byte 8 (header start)", "the JSON header does not start with '{'", kFixReexport);
  header_size_ = n;
  const uint64_t data_size = size_ - 8 - n;

  DuplicateKeyWatch dup;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(base_ + 8, base_ + 8 + n, std::ref(dup), /*allow_exceptions=*/true);
  } catch (const nlohmann::json::parse_error& e) {
    // nlohmann counts from 1 within the header; report absolute file offsets.
    refuse(file, detail::cat("header byte ", 8 + (e.byte ? e.byte - 1 : 0)),
           "the header is not valid JSON (" + printable(e.what(), 200, true) + ")", kFixReexport);
  } catch (const nlohmann::json::exception& e) {
    refuse(file, "header", "the header is not valid JSON (" + printable(e.what(), 200, true) + ")", kFixReexport);
  }
  if (!dup.duplicate.empty())
    refuse(file, "header", "key '" + printable(dup.duplicate) + "' appears twice in one JSON object", kFixReexport);
  if (!j.is_object())
    refuse(file, "header", std::string("the header is a JSON ") + j.type_name() + ", not an object", kFixReexport);

  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    const nlohmann::json& val = it.value();
    if (key == "__metadata__") {
      if (!val.is_object())
        refuse(file, "__metadata__", std::string("is a JSON ") + val.type_name() + ", expected an object of strings",
               kFixReexport);
      for (auto m = val.begin(); m != val.end(); ++m) {
        if (!m.value().is_string())
          refuse(file, "__metadata__['" + printable(m.key()) + "']",
                 std::string("value is a JSON ") + m.value().type_name() + "; metadata values must be strings",
                 kFixReexport);
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + printable(key) + "'";
    if (!val.is_object())
      refuse(file, where, std::string("entry is a JSON ") + val.type_name() + ", expected {dtype, shape, data_offsets}",
             kFixReexport);
    std::string missing;
    for (const char* field : {"dtype", "shape", "data_offsets"})
      if (!val.contains(field)) missing += (missing.empty() ? "" : ", ") + std::string(field);
    if (!missing.empty()) refuse(file, where, "entry lacks " + missing, kFixReexport);

    SafetensorInfo ti;
    ti.name = key;
    const auto& jd = val["dtype"];
    if (!jd.is_string())
      refuse(file, where, std::string("dtype is a JSON ") + jd.type_name() + ", expected a string", kFixReexport);
    auto dt = st_dtype_from_name(jd.get<std::string>());
    if (!dt)
      refuse(file, where, "unknown dtype '" + printable(jd.get<std::string>()) + "' (known: " + st_dtype_list() + ")",
             "convert the tensor to a supported dtype when exporting");
    ti.dtype = *dt;

    const auto& js = val["shape"];
    if (!js.is_array())
      refuse(file, where, std::string("shape is a JSON ") + js.type_name() + ", expected an array of integers",
             kFixReexport);
    uint64_t numel = 1;
    for (size_t k = 0; k < js.size(); ++k) {
      const auto& d = js[k];
      if (!d.is_number_unsigned())
        refuse(file, where, detail::cat("shape[", k, "] is ", json_type(d), ", expected a non-negative integer"),
               kFixReexport);
      uint64_t dim = d.get<uint64_t>();
      if (dim > uint64_t(std::numeric_limits<int64_t>::max()) || __builtin_mul_overflow(numel, dim, &numel))
        refuse(file, where, "shape " + printable(js.dump()) + " has more elements than 64 bits can count", kFixReexport);
      ti.shape.push_back(int64_t(dim));
    }
    uint64_t want_bytes = 0;
    if (__builtin_mul_overflow(numel, uint64_t(st_dtype_size(ti.dtype)), &want_bytes))
      refuse(file, where, "shape " + printable(js.dump()) + " needs more bytes than 64 bits can count", kFixReexport);

    const auto& jo = val["data_offsets"];
    if (!jo.is_array() || jo.size() != 2 || !jo[0].is_number_unsigned() || !jo[1].is_number_unsigned())
      refuse(file, where, "data_offsets is " + printable(jo.dump(), 80) + ", expected [begin, end] with non-negative integers",
             kFixReexport);
    ti.begin = jo[0].get<uint64_t>();
    ti.end = jo[1].get<uint64_t>();
    if (ti.begin > ti.end)
      refuse(file, where, detail::cat("data_offsets [", ti.begin, ", ", ti.end, "] has begin > end"), kFixReexport);
    if (ti.end > data_size)
      refuse(file, where,
             detail::cat("data_offsets end ", ti.end, " is beyond the data section (", data_size,
                         " bytes, starting at file byte ", 8 + n, ")"),
             "the file is truncated; re-download or re-export it");
    if (ti.end - ti.begin != want_bytes)
      refuse(file, where,
             detail::cat("holds ", ti.end - ti.begin, " bytes but shape ", ti.shape_str(), " of ", st_dtype_name(ti.dtype),
                         " needs ", want_bytes),
             kFixReexport);
    ti.file_offset = 8 + n + ti.begin;
    tensors_.push_back(std::move(ti));
  }

  std::sort(tensors_.begin(), tensors_.end(), [](const SafetensorInfo& a, const SafetensorInfo& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  // Empty tensors occupy no bytes and cannot overlap anything.
  const SafetensorInfo* reach = nullptr;  // the non-empty tensor reaching furthest so far
  for (const auto& ti : tensors_) {
    if (ti.bytes() == 0) continue;
    if (reach && ti.begin < reach->end)
      refuse(file, "tensor '" + printable(ti.name) + "'",
             detail::cat("bytes [", ti.begin, ", ", ti.end, ") overlap tensor '", printable(reach->name), "' at [",
                         reach->begin, ", ", reach->end, ")"),
             kFixReexport);
    if (!reach || ti.end > reach->end) reach = &ti;
  }
  for (size_t i = 0; i < tensors_.size(); ++i) {
    names_.push_back(tensors_[i].name);
    index_[tensors_[i].name] = i;
  }
}

const SafetensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end())
    FAIL_WITH("safetensors file '", path_, "': no tensor named '", printable(name), "' (it holds ", tensors_.size(),
              " tensors; `attnlab inspect ", path_, "` lists them)");
  return tensors_[it->second];
}

const uint8_t* SafetensorsFile::raw(const std::string& name) const { return base_ + info(name).file_offset; }

Tensor SafetensorsFile::view(const std::string& name) const {
  const SafetensorInfo& ti = info(name);
  auto dt = to_attnlab_dtype(ti.dtype);
  if (!dt)
    FAIL_WITH("safetensors file '", path_, "': tensor '", printable(name), "' is ", st_dtype_name(ti.dtype),
              ", which has no attnlab dtype; read its bytes with raw()");
  if (ti.shape.size() > size_t(Tensor::kMaxDims))
    FAIL_WITH("safetensors file '", path_, "': tensor '", printable(name), "' has ", ti.shape.size(),
              " dims; attnlab tensors hold at most ", Tensor::kMaxDims, "; use read_tensor_into with a reshaped destination");
  if (ti.file_offset % dtype_size(*dt) != 0)
    FAIL_WITH("safetensors file '", path_, "': tensor '", printable(name), "' starts at file byte ", ti.file_offset,
              ", not a multiple of its element size ", dtype_size(*dt), "; use read_tensor_into to copy it");
  Tensor t;
  t.data = const_cast<uint8_t*>(base_ + ti.file_offset);
  t.dtype = *dt;
  t.device = Device::cpu;
  t.ndim = int(ti.shape.size());
  for (int i = 0; i < t.ndim; ++i) t.shape[i] = ti.shape[i];
  t.name = ti.name.c_str();
  return t;
}

// ---- checks and conversion ------------------------------------------------------------------

void expect_tensors(const SafetensorsFile& f, const std::vector<ExpectedTensor>& required, bool allow_extra) {
  auto shape_str = [](const std::vector<int64_t>& s) {
    std::string o = "[";
    for (size_t i = 0; i < s.size(); ++i) o += (i ? "," : "") + std::to_string(s[i]);
    return o + "]";
  };
  std::vector<std::string> missing, wrong, extra;
  std::set<std::string> wanted;
  size_t found = 0;
  for (const auto& e : required) {
    wanted.insert(e.name);
    if (!f.has(e.name)) {
      missing.push_back(e.name + " " + shape_str(e.shape));
      continue;
    }
    ++found;
    const auto& ti = f.info(e.name);
    if (ti.shape != e.shape) wrong.push_back(e.name + " is " + ti.shape_str() + ", expected " + shape_str(e.shape));
  }
  if (!allow_extra)
    for (const auto& n : f.names())
      if (!wanted.count(n)) extra.push_back(n + " " + f.info(n).shape_str());
  if (missing.empty() && wrong.empty() && extra.empty()) return;
  std::ostringstream os;
  os << "safetensors file '" << f.path() << "' does not hold the expected tensors:";
  auto list = [&](const char* what, const std::vector<std::string>& v) {
    if (v.empty()) return;
    os << " " << v.size() << " " << what << " (";
    for (size_t i = 0; i < v.size(); ++i) os << (i ? "; " : "") << printable(v[i]);
    os << ").";
  };
  list("missing", missing);
  list("with the wrong shape", wrong);
  list("unexpected", extra);
  if (found == 0 && !required.empty())
    os << " None of the expected names is present: is this a checkpoint of the architecture the config names?";
  os << " Fix: use the checkpoint that matches the model config";
  throw Error(os.str());
}

void read_tensor_into(const SafetensorsFile& f, const std::string& name, const Tensor& dst) {
  const SafetensorInfo& ti = f.info(name);
  CHECK(dst.on_cpu(), "read_tensor_into: destination for '", name, "' is on ", device_name(dst.device),
        "; read into a CPU tensor, then copy it to the device");
  CHECK(is_float_st(ti.dtype), "read_tensor_into: tensor '", name, "' in '", f.path(), "' is ",
        st_dtype_name(ti.dtype), "; only F16, BF16, F32 and F64 convert");
  CHECK(dst.dtype == DType::f32 || dst.dtype == DType::bf16 || dst.dtype == DType::f16 || dst.dtype == DType::f64,
        "read_tensor_into: destination for '", name, "' is ", dtype_name(dst.dtype), "; use f32, bf16, f16 or f64");
  const int64_t n = ti.numel();
  int64_t dst_n = 1;
  for (int i = 0; i < dst.ndim; ++i) dst_n *= dst.shape[i];
  CHECK(dst_n == n, "read_tensor_into: tensor '", name, "' in '", f.path(), "' has shape ", ti.shape_str(), " (", n,
        " elements); destination '", dst.name, "' has ", dst.shape_str());
  if (ti.shape.size() <= size_t(Tensor::kMaxDims)) {
    bool same = dst.ndim == int(ti.shape.size());
    for (int i = 0; same && i < dst.ndim; ++i) same = dst.shape[i] == ti.shape[i];
    CHECK(same, "read_tensor_into: tensor '", name, "' in '", f.path(), "' has shape ", ti.shape_str(),
          "; destination '", dst.name, "' has ", dst.shape_str());
  }
  if (n == 0) return;
  CHECK(dst.data != nullptr, "read_tensor_into: destination for '", name, "' has no storage");
  convert_elements(f.raw(name), ti.dtype, static_cast<uint8_t*>(dst.data), dst.dtype, n);
}

std::vector<double> read_tensor_f64(const SafetensorsFile& f, const std::string& name) {
  const SafetensorInfo& ti = f.info(name);
  CHECK(is_float_st(ti.dtype), "read_tensor_f64: tensor '", name, "' in '", f.path(), "' is ",
        st_dtype_name(ti.dtype), "; only F16, BF16, F32 and F64 convert");
  std::vector<double> out(size_t(ti.numel()));
  convert_elements(f.raw(name), ti.dtype, reinterpret_cast<uint8_t*>(out.data()), DType::f64, ti.numel());
  return out;
}

// ---- writer ---------------------------------------------------------------------------------

namespace {

void write_all(int fd, const void* p, size_t n, const std::string& tmp) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = ::write(fd, c, std::min(n, size_t(1) << 30));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) FAIL_WITH("writing '", tmp, "': ", std::strerror(errno), " (check free disk space and permissions)");
    c += w;
    n -= size_t(w);
  }
}

std::string parent_dir(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();  // std::map inside: keys come out sorted
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& nt : tensors) {
    const Tensor& t = nt.tensor;
    CHECK(!nt.name.empty() && nt.name != "__metadata__", "write_safetensors '", path, "': tensor name '", nt.name,
          "' is reserved or empty");
    CHECK(seen.insert(nt.name).second, "write_safetensors '", path, "': tensor '", nt.name, "' is listed twice");
    CHECK(t.on_cpu(), "write_safetensors '", path, "': tensor '", nt.name, "' is on ", device_name(t.device),
          "; copy it to the host first");
    CHECK(t.data != nullptr || t.bytes() == 0, "write_safetensors '", path, "': tensor '", nt.name, "' has no storage");
    nlohmann::json shape = nlohmann::json::array();
    for (int i = 0; i < t.ndim; ++i) shape.push_back(t.shape[i]);
    const uint64_t bytes = t.bytes();
    header[nt.name] = {{"dtype", st_dtype_name(to_st_dtype(t.dtype))}, {"shape", shape},
                       {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    FAIL_WITH("write_safetensors '", path, "': a tensor name or metadata string is not valid UTF-8 (", e.what(), ")");
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // the data section starts 8-byte aligned
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(text.size()) >> (8 * i));

  static std::atomic<uint64_t> counter{0};
  const std::string tmp = detail::cat(path, ".tmp-", ::getpid(), "-", counter++);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) FAIL_WITH("write_safetensors: cannot create '", tmp, "': ", std::strerror(errno));
  try {
    write_all(fd, len, 8, tmp);
    write_all(fd, text.data(), text.size(), tmp);
    for (const auto& nt : tensors)
      if (nt.tensor.bytes()) write_all(fd, nt.tensor.data, nt.tensor.bytes(), tmp);
    if (::fsync(fd) != 0) FAIL_WITH("write_safetensors: fsync '", tmp, "': ", std::strerror(errno));
    if (::close(fd) != 0) {
      fd = -1;
      FAIL_WITH("write_safetensors: close '", tmp, "': ", std::strerror(errno));
    }
    fd = -1;
    if (::rename(tmp.c_str(), path.c_str()) != 0)
      FAIL_WITH("write_safetensors: cannot rename '", tmp, "' to '", path, "': ", std::strerror(errno));
  } catch (...) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  // Make the rename itself durable; failure here leaves a complete file, so it is not an error.
  int dfd = ::open(parent_dir(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace attnlab
