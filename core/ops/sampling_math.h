#pragma once
// Arithmetic shared by the CPU sampler and the CUDA kernels, written so that both produce the
// same bits: every decision of the sampler (top-k cut, top-p cut, the multinomial draw) is made on
// exact integers derived from the processed logits by the functions below, so the CPU and the GPU
// pick the same token whenever they see the same logits, with no floating-point boundary cases.
//
//  - The processed logit uses only IEEE multiplications (correctly rounded on both sides).
//  - Each token's unnormalised probability exp(x − max) is quantised to an integer "mass"
//    q = floor(exp(x − max) · 2^44). For float logits exp is evaluated by `sampling_exp_f32`, a
//    polynomial made of explicit fmaf calls only, so no compiler can contract or reorder it and
//    the host and the device round identically. q ≤ 2^44 and V ≤ 2^19 keep every sum below 2^63.
//    Tokens with exp(x − max) < 2^-44 get mass 0 and are never sampled (≈ 6e-14 of the top
//    token's probability: below anything a float softmax resolves).
//  - Sums of masses are integer sums: exact and independent of the reduction order.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/hd.h"

namespace attnlab {

inline constexpr int kSamplingMassBits = 44;
inline constexpr int64_t kSamplingMaxVocab = int64_t(1) << 19;  // V · 2^44 < 2^63
inline constexpr float kSamplingMassCutoff = -31.0f;              // exp(−31)·2^44 < 1

ATTNLAB_HD uint32_t sampling_float_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
#endif
}
ATTNLAB_HD float sampling_bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float x;
  std::memcpy(&x, &u, 4);
  return x;
#endif
}

// Order-preserving map from float to uint32 (a < b ⇔ key(a) < key(b) for non-NaN floats; −0 is
// never produced by `sampling_logit`, so equal floats always get equal keys).
ATTNLAB_HD uint32_t sampling_order_key(float x) {
  const uint32_t u = sampling_float_bits(x);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
ATTNLAB_HD float sampling_key_float(uint32_t k) {
  return sampling_bits_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

// The processed logit, in HF order: repetition penalty (for tokens already seen: x·rp when
// x < 0, else x/rp, the division done as a multiplication by the float reciprocal as PyTorch's
// CUDA division by a scalar does), then temperature (times 1/T, likewise). −0 becomes +0 so that
// the order keys of equal logits are equal.
template <class T>
ATTNLAB_HD T sampling_logit(T x, bool seen, T rp, T rp_inv, T temp_inv) {
  if (seen) x = x < T(0) ? x * rp : x * rp_inv;
  x = x * temp_inv;
  return x == T(0) ? T(0) : x;
}

// exp(d) for d in [−31, 0]: Cody–Waite reduction d = k·ln2 + r, |r| ≤ ln2/2, then the degree-7
// Taylor polynomial of e^r (truncation error < 6e-9 relative, below a float ulp), then 2^k.
// Only fmaf, one product feeding rintf, and exact power-of-two scaling: bit-identical on the host
// (glibc fmaf/rintf are correctly rounded) and on the device.
ATTNLAB_HD float sampling_exp_f32(float d) {
  const float k = rintf(d * 1.44269504088896341f);
  float r = fmaf(k, -0.693359375f, d);
  r = fmaf(k, 2.12194440e-4f, r);
  float p = 1.98412698e-4f;  // 1/5040
  p = fmaf(p, r, 1.38888889e-3f);
  p = fmaf(p, r, 8.33333333e-3f);
  p = fmaf(p, r, 4.16666667e-2f);
  p = fmaf(p, r, 1.66666667e-1f);
  p = fmaf(p, r, 0.5f);
  p = fmaf(p, r, 1.0f);
  p = fmaf(p, r, 1.0f);
  return p * sampling_bits_float(uint32_t(int(k) + 127) << 23);  // k ≥ −45: a normal power of 2
}

// The integer mass of a token whose processed logit is `max + d` (d ≤ 0).
ATTNLAB_HD uint64_t sampling_mass(float d) {
  if (!(d >= kSamplingMassCutoff)) return 0;  // also −inf and NaN
  return uint64_t(sampling_exp_f32(d) * 0x1p44f);  // exact scaling, then truncation
}
inline uint64_t sampling_mass(double d) {  // the CPU f64 path: libm exp in double
  if (!(d >= double(kSamplingMassCutoff))) return 0;
  return uint64_t(std::exp(d) * 0x1p44);
}

ATTNLAB_HD uint64_t sampling_mulhi(uint64_t a, uint64_t b) {
#if defined(__CUDA_ARCH__)
  return __umul64hi(a, b);
#else
  return uint64_t((unsigned __int128)a * b >> 64);
#endif
}

// floor(a·b / 2^s) for s in [1, 127], when the result fits in 64 bits.
ATTNLAB_HD uint64_t sampling_mul_shift(uint64_t a, uint64_t b, int s) {
  const uint64_t lo = a * b, hi = sampling_mulhi(a, b);
  if (s >= 128) return 0;
  if (s >= 64) return hi >> (s - 64);
  return (hi << (64 - s)) | (lo >> s);
}

// Top-p as an exact rule on masses. HF's TopPLogitsWarper sorts ascending and removes the tokens
// whose inclusive cumulative probability is ≤ 1 − top_p, where 1 − top_p is computed in double by
// Python and rounded to float32 by the tensor comparison: r = float(1 − top_p). In the descending
// order that is: keep t ⇔ Q − before(t) > r·Q ⇔ before(t) < Q − floor(r·Q) (Q, before integers),
// where before(t) is the mass strictly ahead of t. r = mantissa · 2^−shift exactly.
struct SamplingTopP {
  uint32_t mantissa = 0;  // < 2^24
  int shift = 24;
};
inline SamplingTopP sampling_top_p_fraction(double top_p) {
  const float r = float(1.0 - top_p);
  SamplingTopP f;
  if (!(r > 0.0f)) return f;  // top_p = 1: nothing is removed
  int ex = 0;
  const float fr = std::frexp(r, &ex);  // r = fr · 2^ex, fr in [0.5, 1)
  f.mantissa = uint32_t(fr * 16777216.0f);
  f.shift = 24 - ex;
  return f;
}
// The bound on `before`: tokens with before(t) < bound are kept; at least the first one is.
ATTNLAB_HD uint64_t sampling_top_p_bound(uint64_t total, SamplingTopP f) {
  const uint64_t bound = total - sampling_mul_shift(total, f.mantissa, f.shift);
  return bound > 0 ? bound : 1;
}

// The multinomial target for the uniform u = draw24 / 2^24 (philox_uniform's value): the chosen
// token is the one whose interval [before, before + q) contains floor(u · total).
ATTNLAB_HD uint64_t sampling_target(uint64_t total, uint32_t draw24) {
  return sampling_mul_shift(total, draw24, 24);
}

// log(total / 2^44): the log-normaliser of the final distribution (masses are exp(x − max)·2^44).
ATTNLAB_HD double sampling_log_norm(uint64_t total) {
  return log(double(total) * 0x1p-44);
}

}  // namespace attnlab
