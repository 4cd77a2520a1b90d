#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "core/hd.h"

namespace attnlab {

enum class DType : uint8_t { f32, bf16, f16, f64, i32, u32 };

// Host-side storage types for the 16-bit floats. The CUDA side reinterprets these as
// __nv_bfloat16 / __half (same size and bit layout).
struct bf16 { uint16_t bits; };
struct f16 { uint16_t bits; };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: case DType::i32: case DType::u32: return 4;
    case DType::bf16: case DType::f16: return 2;
    case DType::f64: return 8;
  }
  return 0;
}

const char* dtype_name(DType t);
// Parses "f32", "bf16", "f16", "f64", "i32", "u32" (and "float32", "bfloat16", ...).
// Throws attnlab::Error naming the accepted values otherwise.
DType dtype_from_name(const std::string& s);

template <class T> struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::f32; };
template <> struct DTypeOf<double> { static constexpr DType value = DType::f64; };
template <> struct DTypeOf<bf16> { static constexpr DType value = DType::bf16; };
template <> struct DTypeOf<f16> { static constexpr DType value = DType::f16; };
template <> struct DTypeOf<int32_t> { static constexpr DType value = DType::i32; };
template <> struct DTypeOf<uint32_t> { static constexpr DType value = DType::u32; };
template <class T> inline constexpr DType dtype_of = DTypeOf<T>::value;

// Accumulation / statistics type: fp32 for every GPU dtype, fp64 for the double CPU path.
// Saved statistics (mean, rstd, lse, ...) and parameter gradients use acc_t.
template <class T> struct AccOf { using type = float; };
template <> struct AccOf<double> { using type = double; };
template <class T> using acc_t = typename AccOf<T>::type;
inline DType acc_dtype(DType t) { return t == DType::f64 ? DType::f64 : DType::f32; }

// bf16 <-> float on the host, round to nearest even (NaN stays NaN).
inline float bf16_to_float(bf16 v) {
  uint32_t u = uint32_t(v.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline bf16 float_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) return bf16{uint16_t((u >> 16) | 0x40)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return bf16{uint16_t(u >> 16)};
}
float f16_to_float(f16 v);
f16 float_to_f16(float f);

// Rounds a float through bf16 and back: what a bf16 tensor would hold.
inline float round_bf16(float f) { return bf16_to_float(float_to_bf16(f)); }

}  // namespace attnlab
