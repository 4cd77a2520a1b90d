#include "core/ops/embedding.h"

#include "support/testing.h"

namespace attnlab::test {

TEST(Embedding, ForwardGathersRowsAndAddsPositions) {
  Ctx& c = cpu_ctx();
  const int64_t V = 11, C = 5, B = 3, T = 4, P = 9, offset = 2;
  auto table = rand_uniform(V * C, -1, 1, 81), pos = rand_uniform(P * C, -1, 1, 82);
  auto ids = rand_ints(B * T, 0, int32_t(V), 83);
  Buffer tt = make_tensor(Device::cpu, DType::f64, {V, C}, table),
         tp = make_tensor(Device::cpu, DType::f64, {P, C}, pos);
  Buffer ti = make_ids(Device::cpu, {B, T}, ids);
  Buffer to = make_poisoned(Device::cpu, DType::f64, {B, T, C});
  embedding_forward(c, {to.t(), ti.t(), tt.t(), Tensor{}});
  auto out = to_host_f64(c, to.t());
  for (int64_t i = 0; i < B * T; ++i)
    for (int64_t k = 0; k < C; ++k) ASSERT_EQ(out[i * C + k], table[ids[i] * C + k]) << i << "," << k;
  Buffer tq = make_poisoned(Device::cpu, DType::f64, {B, T, C});
  embedding_forward(c, {tq.t(), ti.t(), tt.t(), tp.t(), offset});
  out = to_host_f64(c, tq.t());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t k = 0; k < C; ++k) {
        const int64_t i = b * T + t;
        ASSERT_EQ(out[i * C + k], table[ids[i] * C + k] + pos[(offset + t) * C + k]) << i << "," << k;
      }
}

TEST(Embedding, FiniteDifference) {
  Ctx& c = cpu_ctx();
  const int64_t V = 7, C = 3, B = 2, T = 5, P = 6, offset = 1;
  auto table = rand_uniform(V * C, -1, 1, 84), pos = rand_uniform(P * C, -1, 1, 85);
  auto ids = rand_ints(B * T, 0, int32_t(V), 86);
  ids[3] = ids[7] = ids[8] = 4;  // repeated ids: the scatter-add has collisions
  auto R = rand_uniform(B * T * C, -1, 1, 87);
  Buffer tt(Device::cpu, DType::f64, {V, C}), tp(Device::cpu, DType::f64, {P, C}),
      to(Device::cpu, DType::f64, {B, T, C});
  Buffer ti = make_ids(Device::cpu, {B, T}, ids);
  auto loss = [&] {
    from_host_f64(c, tt.t(), table);
    from_host_f64(c, tp.t(), pos);
    embedding_forward(c, {to.t(), ti.t(), tt.t(), tp.t(), offset});
    auto o = to_host_f64(c, to.t());
    double l = 0;
    for (size_t i = 0; i < o.size(); ++i) l += R[i] * o[i];
    return l;
  };
  Buffer tdo = make_tensor(Device::cpu, DType::f64, {B, T, C}, R);
  Buffer dt = make_tensor(Device::cpu, DType::f64, {V, C}, std::vector<double>(V * C, 0.0));
  Buffer dp = make_tensor(Device::cpu, DType::f64, {P, C}, std::vector<double>(P * C, 0.0));
  EmbeddingBackwardArgs a;
  a.dtable = dt.t();
  a.dpos = dp.t();
  a.dout = tdo.t();
  a.ids = ti.t();
  a.pos_offset = offset;
  embedding_backward(c, a);
  auto gt = to_host_f64(c, dt.t()), gp = to_host_f64(c, dp.t());
  std::string report;
  double err = fd_check(loss, {{"table", table.data(), table.size(), &gt}, {"pos", pos.data(), pos.size(), &gp}}, 1e-6,
                        64, &report);
  record_fd_error("embedding", err);
  EXPECT_LT(err, 1e-8) << report;
}

TEST(Embedding, BackwardAccumulatesAndPaddingRowGetsNothing) {
  Ctx& c = cpu_ctx();
  const int64_t V = 13, C = 4, N = 40, pad = 3;
  auto ids = rand_ints(N, 0, int32_t(V), 88);
  ids[0] = ids[9] = ids[21] = int32_t(pad);
  auto dout = rand_uniform(N * C, -1, 1, 89), dt0 = rand_uniform(V * C, -1, 1, 90);
  Buffer ti = make_ids(Device::cpu, {N}, ids), tdo = make_tensor(Device::cpu, DType::f64, {N, C}, dout);
  Buffer dt = make_tensor(Device::cpu, DType::f64, {V, C}, dt0);
  EmbeddingBackwardArgs a;
  a.dtable = dt.t();
  a.dout = tdo.t();
  a.ids = ti.t();
  a.padding_idx = pad;
  embedding_backward(c, a);
  auto got = to_host_f64(c, dt.t());
  std::vector<double> ref = dt0;
  for (int64_t i = 0; i < N; ++i)
    if (ids[i] != pad)
      for (int64_t k = 0; k < C; ++k) ref[ids[i] * C + k] += dout[i * C + k];
  EXPECT_LT(max_abs_diff(got, ref), 1e-14);
  for (int64_t k = 0; k < C; ++k) EXPECT_EQ(got[pad * C + k], dt0[pad * C + k]);
}

TEST(Embedding, RejectsBadInputs) {
  Ctx& c = cpu_ctx();
  const int64_t V = 11, C = 4;
  Buffer table = make_tensor(Device::cpu, DType::f32, {V, C}, rand_uniform(V * C, -1, 1, 91));
  Buffer out(Device::cpu, DType::f32, {2, 3, C});
  Buffer ok_ids = make_ids(Device::cpu, {2, 3}, {0, 1, 2, 3, 4, 10});
  Buffer big = make_ids(Device::cpu, {2, 3}, {0, 1, 2, 11, 4, 5});
  Buffer neg = make_ids(Device::cpu, {2, 3}, {0, -1, 2, 3, 4, 5});
  auto fwd = [&](const Tensor& ids) { embedding_forward(c, {out.t(), ids, table.t(), Tensor{}}); };
  EXPECT_NO_THROW(fwd(ok_ids.t()));
  try {
    fwd(big.t());
    ADD_FAILURE() << "id 11 with V = 11 was accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("token id 11"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[0, 11)"), std::string::npos) << msg;
  }
  EXPECT_THROW(fwd(neg.t()), Error);
  // Shape and dtype mismatches.
  Buffer out_bad(Device::cpu, DType::f32, {2, 3, C + 1}), f_ids(Device::cpu, DType::f32, {2, 3});
  EXPECT_THROW(embedding_forward(c, {out_bad.t(), ok_ids.t(), table.t(), Tensor{}}), Error);
  EXPECT_THROW(embedding_forward(c, {out.t(), f_ids.t(), table.t(), Tensor{}}), Error);
  Buffer pos(Device::cpu, DType::f32, {4, C});
  EXPECT_THROW(embedding_forward(c, {out.t(), ok_ids.t(), table.t(), pos.t(), 2}), Error);  // rows 2..4 of 4
  // Backward: bad id, wrong gradient dtype, padding_idx outside the table.
  Buffer dout = make_tensor(Device::cpu, DType::f32, {2, 3, C}, rand_uniform(6 * C, -1, 1, 92));
  Buffer dtab = make_tensor(Device::cpu, DType::f32, {V, C}, rand_uniform(V * C, -1, 1, 93));
  Buffer dtab64(Device::cpu, DType::f64, {V, C});
  EmbeddingBackwardArgs a;
  a.dtable = dtab.t();
  a.dout = dout.t();
  a.ids = big.t();
  EXPECT_THROW(embedding_backward(c, a), Error);
  a.ids = ok_ids.t();
  a.dtable = dtab64.t();
  EXPECT_THROW(embedding_backward(c, a), Error);
  a.dtable = dtab.t();
  a.padding_idx = V;
  EXPECT_THROW(embedding_backward(c, a), Error);
}

}  // namespace attnlab::test
