#include <cmath>
#include <limits>

#include "core/arena.h"
#include "core/ctx.h"
#include "core/log.h"
#include "core/rng.h"
#include "support/testing.h"

namespace attnlab::test {

// Random123's published known-answer vector for Philox4x32-10 (counter 0, key 0).
TEST(Philox, KnownAnswer) {
  Philox4 r = philox4x32(0, 0);
  EXPECT_EQ(r.v[0], 0x6627e8d5u);
  EXPECT_EQ(r.v[1], 0xe169c58du);
  EXPECT_EQ(r.v[2], 0xbc57ac4cu);
  EXPECT_EQ(r.v[3], 0x9b00dbd8u);
}

TEST(Philox, UniformIsInRangeAndRoughlyUniform) {
  const int n = 200000;
  double sum = 0;
  int below_tenth = 0;
  for (int i = 0; i < n; ++i) {
    float u = philox_uniform(42, 1000, i);
    ASSERT_GE(u, 0.f);
    ASSERT_LT(u, 1.f);
    sum += u;
    below_tenth += u < 0.1f;
  }
  EXPECT_NEAR(sum / n, 0.5, 0.005);
  EXPECT_NEAR(double(below_tenth) / n, 0.1, 0.005);
  // Different offsets give different streams; the same offset gives the same stream.
  EXPECT_NE(philox_u32(42, 0, 5), philox_u32(42, 1, 5));
  EXPECT_EQ(philox_u32(42, 3, 5), philox_u32(42, 4, 4));
}

TEST(DType, Bf16RoundsToNearestEven) {
  // 1 + 2^-8 lies halfway between bf16 1.0 and 1+2^-7: ties go to the even mantissa (1.0).
  EXPECT_EQ(round_bf16(1.0f + std::ldexp(1.0f, -8)), 1.0f);
  // 1 + 3·2^-8 lies halfway between 1+2^-7 and 1+2^-6: even is 1+2^-6.
  EXPECT_EQ(round_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 1.0f + std::ldexp(1.0f, -6));
  EXPECT_TRUE(std::isnan(round_bf16(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_EQ(round_bf16(-3.5f), -3.5f);
}

TEST(DType, F16RoundTrip) {
  for (float v : {0.f, 1.f, -2.5f, 65504.f, 6.103515625e-05f, 5.960464477539063e-08f, 0.1f}) {
    float back = f16_to_float(float_to_f16(v));
    EXPECT_NEAR(back, v, std::fabs(v) * 1e-3 + 1e-12) << v;
  }
  EXPECT_TRUE(std::isinf(f16_to_float(float_to_f16(1e6f))));
  EXPECT_EQ(dtype_from_name("bfloat16"), DType::bf16);
  EXPECT_THROW(dtype_from_name("f8"), Error);
}

TEST(Tensor, ViewsAndChecks) {
  float buf[24];
  Tensor t(buf, DType::f32, Device::cpu, {2, 3, 4}, "t");
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.view({6, 4}).dim(0), 6);
  EXPECT_THROW(t.view({5, 5}), Error);
  EXPECT_EQ(t.slice0(1, 2).data, static_cast<void*>(buf + 12));
  EXPECT_THROW(t.ptr<double>(), Error);
  EXPECT_NO_THROW(check_shape(t, {2, -1, 4}));
  try {
    check_shape(t, {2, 4, 4});
    FAIL() << "expected a shape error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[2,3,4]"), std::string::npos) << e.what();
  }
}

TEST(Arena, AlignsAndRefusesOverflowWithTheTensorName) {
  Arena a(Device::cpu, 1024);
  Tensor x = a.alloc(DType::f32, {3}, "x");
  Tensor y = a.alloc(DType::f32, {5}, "y");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(y.data) % Arena::kAlign, 0u);
  EXPECT_EQ(static_cast<char*>(y.data) - static_cast<char*>(x.data), 256);
  try {
    a.alloc(DType::f32, {1000}, "too_big");
    FAIL() << "expected an arena error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("too_big"), std::string::npos);
  }
  a.reset();
  EXPECT_EQ(a.used(), 0u);
}

TEST(Error, CarriesFileLineAndExpression) {
  try {
    int two = 2;
    CHECK(two == 3, "two is ", two);
    FAIL();
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("tests/core/core_test.cpp:"), std::string::npos) << m;
    EXPECT_NE(m.find("two == 3"), std::string::npos) << m;
    EXPECT_NE(m.find("two is 2"), std::string::npos) << m;
  }
}

TEST(Ctx, CudaStatusExplainsItself) {
  CudaStatus s = cuda_status();
  if (!s.usable) {
    EXPECT_FALSE(s.reason.empty());
    EXPECT_THROW(Ctx::make_cuda(0), Error);
  } else {
    EXPECT_GT(s.device_count, 0);
  }
}

TEST(Memory, HostRoundTripThroughEveryDtype) {
  Ctx& c = cpu_ctx();
  std::vector<double> v = {1.5, -2.25, 3.0, 7.0};
  for (DType dt : {DType::f32, DType::bf16, DType::f16, DType::f64}) {
    Buffer b = make_tensor(Device::cpu, dt, {4}, v);
    EXPECT_EQ(to_host_f64(c, b.t()), v) << dtype_name(dt);
  }
  std::vector<double> ids = {0, 50256, 7, 151935};
  Buffer b = make_tensor(Device::cpu, DType::i32, {4}, ids);
  EXPECT_EQ(to_host_f64(c, b.t()), ids);
}

}  // namespace attnlab::test
