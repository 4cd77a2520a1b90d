#include "core/ops/rope.h"
#include "support/testing.h"

namespace attnlab::test {
namespace {

struct Case {
  int64_t B, T, H, d, rot;
  RopeLayout layout;
  bool heads_first, explicit_positions;
  std::string name() const {
    return std::string(rope_layout_name(layout)) + " B" + std::to_string(B) + " T" + std::to_string(T) + " H" +
           std::to_string(H) + " d" + std::to_string(d) + " rot" + std::to_string(rot) +
           (heads_first ? " heads_first" : "") + (explicit_positions ? " positions" : " offset17");
  }
};

struct Out {
  std::vector<double> y, dx;
};

// Forward of x and backward of g (in forward's output layout) on `dev` with dtype dt.
Out run(Device dev, DType dt, const Case& c, const std::vector<double>& x, const std::vector<double>& g,
        const std::vector<int32_t>& positions) {
  Ctx& ctx = dev == Device::cuda ? gpu_ctx() : cpu_ctx();
  RopeSpec spec;
  spec.layout = c.layout;
  spec.theta = c.d == 128 ? 1e6 : 1e4;
  spec.rotary_dim = c.rot;
  spec.pos_offset = 17;
  spec.heads_first = c.heads_first;
  Buffer pos;
  if (c.explicit_positions) {
    pos = make_ids(dev, {c.B, c.T}, positions);
    spec.positions = pos.t();
  }
  Buffer tx = make_tensor(dev, dt, {c.B, c.T, c.H, c.d}, x), tdx = make_poisoned(dev, dt, {c.B, c.T, c.H, c.d});
  Buffer ty = c.heads_first ? make_poisoned(dev, dt, {c.B, c.H, c.T, c.d}) : make_poisoned(dev, dt, {c.B, c.T, c.H, c.d});
  Buffer tg = c.heads_first ? make_tensor(dev, dt, {c.B, c.H, c.T, c.d}, g) : make_tensor(dev, dt, {c.B, c.T, c.H, c.d}, g);
  rope_forward(ctx, {ty.t(), tx.t(), spec});
  rope_backward(ctx, {tdx.t(), tg.t(), spec});
  return {to_host_f64(ctx, ty.t()), to_host_f64(ctx, tdx.t())};
}

}  // namespace

class RopeGpu : public ::testing::TestWithParam<DType> {};

// Reference: the CPU f32 op on the same rounded inputs. It computes angles exactly as the GPU
// does (float32 pos·inv_freq from the same host-built inv_freq table); an f64 reference would
// differ by the float32 angle rounding HF also has (~pos·6e-8 rad), not by a kernel error.
// Partial rotary_dim 20 at d = 64 takes the scalar path (20 is not a multiple of 2 packs).
TEST_P(RopeGpu, MatchesCpu) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  int count = 0;
  for (int64_t T : {7, 129})
    for (int64_t H : {5, 12})
      for (int64_t d : {32, 64, 128})
        for (bool partial : {false, true})
          for (RopeLayout layout : {RopeLayout::rotate_half, RopeLayout::interleaved})
            for (bool hf : {false, true}) {
              const int64_t rot = !partial ? d : d == 64 ? 20 : d / 2;
              Case c{3, T, H, d, rot, layout, hf, (count++ % 3) == 0};
              const size_t n = size_t(c.B * T * H * d);
              auto x = round_as(dt, rand_uniform(n, -2, 2, uint64_t(count)));
              auto g = round_as(dt, rand_uniform(n, -1, 1, uint64_t(count) + 1000));
              auto positions = rand_ints(size_t(c.B * T), 0, 4096, uint64_t(count) + 2000);
              Out got = run(Device::cuda, dt, c, x, g, positions);
              Out ref = run(Device::cpu, DType::f32, c, x, g, positions);
              EXPECT_LT(rel_err(got.y, ref.y), gpu_tol(dt)) << "forward " << c.name();
              EXPECT_LT(rel_err(got.dx, ref.dx), gpu_tol(dt)) << "backward " << c.name();
            }
}

// Same-layout RoPE in place (out == x, dx == dout), vector and scalar paths, partial rotary so
// the pass-through dims must survive untouched.
TEST_P(RopeGpu, InPlace) {
  ATTNLAB_REQUIRE_GPU();
  const DType dt = GetParam();
  for (int64_t rot : {64, 48, 24, 20})
    for (RopeLayout layout : {RopeLayout::rotate_half, RopeLayout::interleaved}) {
      const int64_t B = 3, T = 7, H = 5, d = 64;
      const size_t n = size_t(B * T * H * d);
      auto x = round_as(dt, rand_uniform(n, -2, 2, uint64_t(rot)));
      RopeSpec spec;
      spec.layout = layout;
      spec.rotary_dim = rot;
      spec.pos_offset = 17;
      Buffer ref_in = make_tensor(Device::cpu, DType::f32, {B, T, H, d}, x), ref_out = make_poisoned(Device::cpu, DType::f32, {B, T, H, d});
      rope_forward(cpu_ctx(), {ref_out.t(), ref_in.t(), spec});
      auto ref = to_host_f64(cpu_ctx(), ref_out.t());
      Buffer t = make_tensor(Device::cuda, dt, {B, T, H, d}, x);
      rope_forward(gpu_ctx(), {t.t(), t.t(), spec});
      EXPECT_LT(rel_err(to_host_f64(gpu_ctx(), t.t()), ref), gpu_tol(dt)) << "forward rot=" << rot;
      rope_backward(gpu_ctx(), {t.t(), t.t(), spec});  // undoes the rotation
      EXPECT_LT(rel_err(to_host_f64(gpu_ctx(), t.t()), x), dt == DType::bf16 ? 2e-2 : 1e-5) << "inverse rot=" << rot;
    }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, RopeGpu, ::testing::Values(DType::f32, DType::bf16),
                         [](const auto& i) { return std::string(dtype_name(i.param)); });

}  // namespace attnlab::test
