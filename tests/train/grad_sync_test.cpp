// GradSync (train/grad_sync.h) with a recording communicator: the bucket plan, the shares of
// ZeRO-1, and the launch of buckets during the backward of a real model (overlap), without MPI.
#include <algorithm>

#include "dist/communicator.h"
#include "core/models/model.h"
#include "core/models/weights.h"
#include "train/grad_sync.h"
#include "train/train_test_util.h"

namespace attnlab::test {
namespace {

using train::ElementRange;
using train::GradSync;

// Completes every collective at once and records what it was asked, with a caller-set clock.
class RecordingCommunicator final : public dist::Communicator {
 public:
  struct Call {
    std::string op;
    const void* send;
    int64_t count;  // send elements
    int clock;      // the caller's clock when the collective was issued
  };
  RecordingCommunicator(int rank, int world) : Communicator(Device::cpu, rank, world, rank) {}
  dist::Backend backend() const override { return dist::Backend::single; }
  void barrier() override {}
  void synchronize() override {}
  std::vector<Call> calls;
  int clock = 0;

 protected:
  dist::CommHandle do_all_reduce(const Tensor& s, const Tensor&) override { return record("all_reduce", s); }
  dist::CommHandle do_reduce_scatter(const Tensor& s, const Tensor&) override { return record("reduce_scatter", s); }
  dist::CommHandle do_all_gather(const Tensor& s, const Tensor&) override { return record("all_gather", s); }
  dist::CommHandle do_broadcast(const Tensor& b, int) override { return record("broadcast", b); }
  void finish(int, bool) override {}
  bool poll(int) override { return true; }

 private:
  dist::CommHandle record(const char* op, const Tensor& s) {
    calls.push_back({op, s.data, s.numel(), clock});
    return {};
  }
};

ModelConfig tiny_gpt2_config() {
  ModelConfig c = model_config_defaults(ModelArch::gpt2);
  c.hidden_size = 32;
  c.num_layers = 4;
  c.num_heads = 2;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  c.intermediate_size = 128;
  c.vocab_size = 37;
  c.max_position_embeddings = 16;
  c.source = "grad_sync_test";
  return c;
}

TEST(GradSync, BucketsTileTheArenaFromTheTopAndSharesSplitThemEvenly) {
  Ctx& ctx = cpu_ctx();
  Model m(tiny_gpt2_config(), {Device::cpu, DType::f32, true}, ctx);
  for (int world : {1, 2, 3}) {
    for (int rank = 0; rank < world; ++rank) {
      RecordingCommunicator comm(rank, world);
      GradSync gs(m.params(), comm, ctx, /*bucket_mb=*/0.01, /*zero1=*/true);
      const int64_t N = gs.arena_numel();
      EXPECT_EQ(N % (64 * world), 0);
      EXPECT_GE(N, m.params().trainable_numel());
      // Buckets: descending, contiguous, covering [0, N), each a multiple of world·64.
      int64_t hi = N;
      for (const ElementRange& b : gs.buckets()) {
        EXPECT_EQ(b.end(), hi);
        EXPECT_GT(b.count, 0);
        EXPECT_EQ(b.count % (64 * world), 0);
        EXPECT_LE(b.count, std::max<int64_t>(64 * world, int64_t(0.01 * 1024 * 1024 / 4)));
        hi = b.begin;
      }
      EXPECT_EQ(hi, 0);
      EXPECT_GT(gs.buckets().size(), 2u) << "0.01 MiB buckets over a " << N << "-element arena";
      // Shares: one per bucket, 1/world of it, at this rank's place, ascending.
      ASSERT_EQ(gs.shard_ranges().size(), gs.buckets().size());
      int64_t total = 0;
      for (size_t i = 0; i < gs.shard_ranges().size(); ++i) {
        const ElementRange& s = gs.shard_ranges()[i];
        const ElementRange& b = gs.buckets()[gs.buckets().size() - 1 - i];
        EXPECT_EQ(s.count * world, b.count);
        EXPECT_EQ(s.begin, b.begin + rank * s.count);
        total += s.count;
      }
      EXPECT_EQ(total * world, N);
    }
  }
  // Without ZeRO-1 the share is the whole arena.
  RecordingCommunicator comm(0, 2);
  GradSync plain(m.params(), comm, ctx, 0.01, false);
  ASSERT_EQ(plain.shard_ranges().size(), 1u);
  EXPECT_EQ(plain.shard_ranges()[0].count, plain.arena_numel());
}

TEST(GradSync, BucketsLaunchDuringTheBackwardAndEachExactlyOnce) {
  Ctx& ctx = cpu_ctx();
  Model m(tiny_gpt2_config(), {Device::cpu, DType::f32, true}, ctx);
  init_weights(m, ctx, 3);
  m.set_training(true);
  const int64_t B = 2, T = 8;
  m.plan(ctx, B, T);
  RecordingCommunicator comm(0, 2);
  GradSync gs(m.params(), comm, ctx, /*bucket_mb=*/0.004, /*zero1=*/false);
  int blocks_done = 0;
  m.set_grad_ready_hook([&](const Param& first) {
    comm.clock = ++blocks_done;
    gs.ready_from(gs.watermark_of(first));
  });
  std::vector<int32_t> ids = rand_ints(size_t(B * T), 0, 37, 5), targets;
  const int64_t valid = causal_lm_targets(ids, B, T, targets);
  Tensor tid(ids.data(), DType::i32, Device::cpu, {B, T}, "ids");
  Tensor ttg(targets.data(), DType::i32, Device::cpu, {B, T}, "targets");

  // An unarmed backward (an earlier micro-batch) launches nothing.
  m.params().zero_grads(ctx);
  m.forward(ctx, tid, ttg, double(valid));
  m.backward(ctx);
  EXPECT_TRUE(comm.calls.empty());

  blocks_done = 0;
  comm.clock = 0;
  gs.arm();
  m.forward(ctx, tid, ttg, double(valid));
  m.backward(ctx);
  const size_t during = comm.calls.size();
  comm.clock = 99;
  gs.finish();
  ASSERT_EQ(comm.calls.size(), gs.buckets().size());
  EXPECT_GT(during, 0u) << "no bucket was launched before the backward ended: no overlap";
  EXPECT_LT(during, gs.buckets().size()) << "the embedding's bucket cannot be final before the embedding backward";
  // Launch order = bucket order (top first); a bucket launched after block k's report lies wholly
  // above that block's first gradient.
  const char* base = static_cast<const char*>(m.params().grad_arena().data);
  for (size_t i = 0; i < comm.calls.size(); ++i) {
    const auto& c = comm.calls[i];
    EXPECT_EQ(c.op, "all_reduce");
    EXPECT_EQ((static_cast<const char*>(c.send) - base) / 4, gs.buckets()[i].begin);
    EXPECT_EQ(c.count, gs.buckets()[i].count);
    if (c.clock >= 1 && c.clock <= 4) {
      const int layer = 4 - c.clock;  // the clock counts blocks from the last one
      // The block's gradients are contiguous; the bucket must lie above all of them.
      const std::string prefix = "transformer.h." + std::to_string(layer) + ".";
      int64_t block_begin = gs.arena_numel();
      for (const Param& p : m.params())
        if (p.name.rfind(prefix, 0) == 0) block_begin = std::min(block_begin, m.params().grad_offset(p));
      EXPECT_GE(gs.buckets()[i].begin, block_begin) << "bucket " << i << " launched after block " << layer;
    }
  }
  // The bucket holding the token embedding (offset 0) goes last, at finish().
  EXPECT_EQ(comm.calls.back().clock, 99);
}

}  // namespace
}  // namespace attnlab::test
