#include "core/ops/embedding.h"
#include "support/testing.h"

namespace attnlab::test {

namespace {

constexpr int64_t kV = 50257, kB = 7, kT = 131, kN = kB * kT;

// Random ids plus hot ids repeated far past one 32-token sub-segment, one exactly at 32 and one
// at 33 (bucket edges), and the padding id: the scatter-add sees every kind of collision.
std::vector<int32_t> gpt2_like_ids(uint64_t seed, int32_t padding) {
  auto ids = rand_ints(kN, 0, int32_t(kV), seed);
  auto where = rand_ints(kN, 0, int32_t(kN), seed + 1);
  size_t k = 0;
  auto plant = [&](int32_t id, int count) {
    for (int i = 0; i < count; ++i) ids[where[k++]] = id;
  };
  plant(50256, 140);  // collisions in `where` only lower the counts a little
  plant(13, 100);
  plant(262, 32);
  plant(11, 33);
  plant(padding, 25);
  return ids;
}

struct EmbRef {
  std::vector<double> out, dtable, dpos;
};

EmbRef cpu_reference(int64_t C, const std::vector<int32_t>& ids, const std::vector<double>& table,
                     const std::vector<double>& pos, const std::vector<double>& dout, const std::vector<double>& dt0,
                     const std::vector<double>& dp0, int64_t P, int64_t pos_offset, int64_t padding) {
  Ctx& c = cpu_ctx();
  Buffer ti = make_ids(Device::cpu, {kB, kT}, ids);
  Buffer tt = make_tensor(Device::cpu, DType::f64, {kV, C}, table),
         tp = make_tensor(Device::cpu, DType::f64, {P, C}, pos);
  Buffer to(Device::cpu, DType::f64, {kB, kT, C}), tdo = make_tensor(Device::cpu, DType::f64, {kB, kT, C}, dout);
  Buffer tdt = make_tensor(Device::cpu, DType::f64, {kV, C}, dt0),
         tdp = make_tensor(Device::cpu, DType::f64, {P, C}, dp0);
  embedding_forward(c, {to.t(), ti.t(), tt.t(), tp.t(), pos_offset});
  EmbeddingBackwardArgs a;
  a.dtable = tdt.t();
  a.dpos = tdp.t();
  a.dout = tdo.t();
  a.ids = ti.t();
  a.pos_offset = pos_offset;
  a.padding_idx = padding;
  embedding_backward(c, a);
  return {to_host_f64(c, to.t()), to_host_f64(c, tdt.t()), to_host_f64(c, tdp.t())};
}

struct GpuScratch {
  Buffer index, partial;
  GpuScratch(int64_t N, int64_t V, int64_t C)
      : index(make_poisoned(Device::cuda, DType::i32, {int64_t(embedding_backward_index_scratch(N, V))})),
        partial(make_poisoned(Device::cuda, DType::f32, {int64_t(embedding_backward_partial_scratch(N, C))})) {}
};

}  // namespace

class EmbeddingGpu : public ::testing::TestWithParam<DType> {};

TEST_P(EmbeddingGpu, MatchesCpuWithCollisionsAndPadding) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  Ctx& g = gpu_ctx();
  for (int64_t C : {37, 768}) {
    const int64_t P = 200, pos_offset = 5, padding = 220;
    const std::string where = std::string(dtype_name(dt)) + " C=" + std::to_string(C);
    auto ids = gpt2_like_ids(uint64_t(C), int32_t(padding));
    auto table = round_as(dt, rand_uniform(kV * C, -1, 1, C + 1)),
         pos = round_as(dt, rand_uniform(P * C, -1, 1, C + 2));
    auto dout = round_as(dt, rand_uniform(kN * C, -1, 1, C + 3));
    // f32-representable starting gradients, so an untouched row compares exactly.
    auto dt0 = round_as(DType::f32, rand_uniform(kV * C, -1, 1, C + 4));
    auto dp0 = round_as(DType::f32, rand_uniform(P * C, -1, 1, C + 5));
    EmbRef ref = cpu_reference(C, ids, table, pos, dout, dt0, dp0, P, pos_offset, padding);

    Buffer ti = make_ids(Device::cuda, {kB, kT}, ids);
    Buffer tt = make_tensor(Device::cuda, dt, {kV, C}, table), tp = make_tensor(Device::cuda, dt, {P, C}, pos);
    Buffer to = make_poisoned(Device::cuda, dt, {kB, kT, C}), tdo = make_tensor(Device::cuda, dt, {kB, kT, C}, dout);
    Buffer tdt = make_tensor(Device::cuda, DType::f32, {kV, C}, dt0),
           tdp = make_tensor(Device::cuda, DType::f32, {P, C}, dp0);
    embedding_forward(g, {to.t(), ti.t(), tt.t(), tp.t(), pos_offset});
    EXPECT_LT(rel_err(to_host_f64(g, to.t()), ref.out), gpu_tol(dt)) << where;

    GpuScratch s(kN, kV, C);
    EmbeddingBackwardArgs a;
    a.dtable = tdt.t();
    a.dpos = tdp.t();
    a.dout = tdo.t();
    a.ids = ti.t();
    a.pos_offset = pos_offset;
    a.padding_idx = padding;
    a.index_scratch = s.index.t();
    a.partial_scratch = s.partial.t();
    embedding_backward(g, a);
    auto got = to_host_f64(g, tdt.t());
    // Sums of ≤ ~140 f32 terms of inputs both sides hold exactly.
    EXPECT_LT(max_abs_diff(got, ref.dtable), 3e-5) << where;
    for (int64_t k = 0; k < C; ++k) ASSERT_EQ(got[padding * C + k], dt0[padding * C + k]) << where;
    EXPECT_LT(max_abs_diff(to_host_f64(g, tdp.t()), ref.dpos), 3e-5) << where;

    // Bitwise reproducible: a second backward from the same start gives the same bits.
    Buffer tdt2 = make_tensor(Device::cuda, DType::f32, {kV, C}, dt0);
    a.dtable = tdt2.t();
    a.dpos = Tensor{};
    embedding_backward(g, a);
    EXPECT_EQ(to_host_f64(g, tdt2.t()), got) << where;
  }
}

TEST_P(EmbeddingGpu, OneIdEverywhereAndNoPositions) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  Ctx& g = gpu_ctx();
  const int64_t C = 64, V = 1000;
  std::vector<int32_t> ids(kN, 777);  // one bucket of 917 tokens: 29 sub-segments
  ids[400] = 3;
  auto dout = round_as(dt, rand_uniform(kN * C, -1, 1, 31)), dt0 = round_as(DType::f32, rand_uniform(V * C, -1, 1, 32));
  Buffer ti = make_ids(Device::cuda, {kN}, ids), tdo = make_tensor(Device::cuda, dt, {kN, C}, dout);
  Buffer tdt = make_tensor(Device::cuda, DType::f32, {V, C}, dt0);
  GpuScratch s(kN, V, C);
  EmbeddingBackwardArgs a;
  a.dtable = tdt.t();
  a.dout = tdo.t();
  a.ids = ti.t();
  a.index_scratch = s.index.t();
  a.partial_scratch = s.partial.t();
  embedding_backward(g, a);
  std::vector<double> ref = dt0;
  for (int64_t i = 0; i < kN; ++i)
    for (int64_t k = 0; k < C; ++k) ref[ids[i] * C + k] += dout[i * C + k];
  EXPECT_LT(max_abs_diff(to_host_f64(g, tdt.t()), ref), 1e-4);
}

TEST_P(EmbeddingGpu, OutOfRangeIdsAreClamped) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  Ctx& g = gpu_ctx();
  const int64_t V = 17, C = 8, N = 6;
  std::vector<int32_t> ids = {3, int32_t(V) + 5, -2, 16, 0, 1 << 30};
  std::vector<int32_t> clamped = {3, int32_t(V) - 1, 0, 16, 0, int32_t(V) - 1};
  auto table = round_as(dt, rand_uniform(V * C, -1, 1, 41)), dout = round_as(dt, rand_uniform(N * C, -1, 1, 42));
  auto dt0 = round_as(DType::f32, rand_uniform(V * C, -1, 1, 43));
  Buffer ti = make_ids(Device::cuda, {N}, ids), tt = make_tensor(Device::cuda, dt, {V, C}, table);
  Buffer to = make_poisoned(Device::cuda, dt, {N, C});
  embedding_forward(g, {to.t(), ti.t(), tt.t(), Tensor{}});
  auto out = to_host_f64(g, to.t());
  for (int64_t i = 0; i < N; ++i)
    for (int64_t k = 0; k < C; ++k) ASSERT_EQ(out[i * C + k], table[clamped[i] * C + k]) << i;
  Buffer tdo = make_tensor(Device::cuda, dt, {N, C}, dout), tdt = make_tensor(Device::cuda, DType::f32, {V, C}, dt0);
  GpuScratch s(N, V, C);
  EmbeddingBackwardArgs a;
  a.dtable = tdt.t();
  a.dout = tdo.t();
  a.ids = ti.t();
  a.index_scratch = s.index.t();
  a.partial_scratch = s.partial.t();
  embedding_backward(g, a);
  std::vector<double> ref = dt0;
  for (int64_t i = 0; i < N; ++i)
    for (int64_t k = 0; k < C; ++k) ref[clamped[i] * C + k] += dout[i * C + k];
  EXPECT_LT(max_abs_diff(to_host_f64(g, tdt.t()), ref), 1e-6);
}

TEST(EmbeddingGpuErrors, RejectsSmallScratch) {
  ATTNLAB_REQUIRE_GPU();
  Ctx& g = gpu_ctx();
  const int64_t V = 50, C = 8, N = 10;
  Buffer ti = make_ids(Device::cuda, {N}, rand_ints(N, 0, int32_t(V), 51));
  Buffer tdo = make_tensor(Device::cuda, DType::f32, {N, C}, rand_uniform(N * C, -1, 1, 52));
  Buffer tdt = make_tensor(Device::cuda, DType::f32, {V, C}, rand_uniform(V * C, -1, 1, 53));
  Buffer small(Device::cuda, DType::i32, {int64_t(embedding_backward_index_scratch(N, V)) - 1});
  Buffer part(Device::cuda, DType::f32, {int64_t(embedding_backward_partial_scratch(N, C))});
  EmbeddingBackwardArgs a;
  a.dtable = tdt.t();
  a.dout = tdo.t();
  a.ids = ti.t();
  a.index_scratch = small.t();
  a.partial_scratch = part.t();
  EXPECT_THROW(embedding_backward(g, a), Error);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, EmbeddingGpu, ::testing::Values(DType::f32, DType::bf16),
                         [](const auto& i) { return std::string(dtype_name(i.param)); });

}  // namespace attnlab::test
