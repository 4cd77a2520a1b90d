#include "core/dtype.h"

#include <cmath>

#include "core/error.h"

namespace attnlab {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::bf16: return "bf16";
    case DType::f16: return "f16";
    case DType::f64: return "f64";
    case DType::i32: return "i32";
    case DType::u32: return "u32";
  }
  return "?";
}

DType dtype_from_name(const std::string& s) {
  if (s == "f32" || s == "float32" || s == "fp32" || s == "F32") return DType::f32;
  if (s == "bf16" || s == "bfloat16" || s == "BF16") return DType::bf16;
  if (s == "f16" || s == "float16" || s == "fp16" || s == "F16") return DType::f16;
  if (s == "f64" || s == "float64" || s == "fp64" || s == "F64") return DType::f64;
  if (s == "i32" || s == "int32" || s == "I32") return DType::i32;
  if (s == "u32" || s == "uint32" || s == "U32") return DType::u32;
  FAIL_WITH("unknown dtype '", s, "'; use one of f32, bf16, f16, f64, i32, u32");
}

float f16_to_float(f16 v) {
  uint32_t sign = (v.bits >> 15) & 1, exp = (v.bits >> 10) & 0x1f, man = v.bits & 0x3ff;
  float f;
  if (exp == 0) f = std::ldexp(float(man), -24);
  else if (exp == 31) f = man ? NAN : INFINITY;
  else f = std::ldexp(float(man | 0x400), int(exp) - 25);
  return sign ? -f : f;
}

f16 float_to_f16(float f) {
  // Round to nearest even via the exact double path; f16 is only used for loading checkpoints.
  if (std::isnan(f)) return f16{0x7e00};
  uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  double a = std::fabs(double(f));
  if (a >= 65520.0) return f16{uint16_t(sign | 0x7c00)};
  if (a < std::ldexp(1.0, -14)) {  // subnormal
    double m = std::nearbyint(a / std::ldexp(1.0, -24));
    return f16{uint16_t(sign | uint16_t(m))};
  }
  int e;
  double fr = std::frexp(a, &e);  // a = fr * 2^e, fr in [0.5,1)
  double m = std::nearbyint((fr * 2.0 - 1.0) * 1024.0);
  int exp = e - 1 + 15;
  if (m >= 1024.0) { m = 0; ++exp; }
  if (exp >= 31) return f16{uint16_t(sign | 0x7c00)};
  return f16{uint16_t(sign | (exp << 10) | uint16_t(m))};
}

}  // namespace attnlab
