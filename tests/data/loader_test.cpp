// Loaders on hand-made shards: packing against an independently built token stream, seeded
// order, rank splits (world 1/2/3) that cover the data, exact resume from a saved cursor, the
// validation split, and SFT padding/masking/dropping.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "data/data_test_util.h"
#include "data/loader.h"
#include "support/testing.h"

namespace attnlab::test {
namespace {
using data::Batch;
using data::LoaderOptions;
using data::PretrainLoader;
using data::RemainderPolicy;
using data::Split;
constexpr int32_t kEos = 999;

// Documents of varied lengths (including an empty one) with distinct token values.
std::vector<std::vector<int32_t>> make_docs(int n, uint64_t seed) {
  std::vector<std::vector<int32_t>> docs;
  auto lens = rand_ints(size_t(n), 0, 23, seed);
  int32_t next = 1;
  for (int d = 0; d < n; ++d) {
    std::vector<int32_t> doc;
    for (int i = 0; i < lens[size_t(d)]; ++i) doc.push_back(next++ % 900 + 1);
    docs.push_back(doc);
  }
  return docs;
}

std::vector<std::vector<Batch>> batches(data::BatchLoader& l, int count, int64_t rows) {
  std::vector<std::vector<Batch>> out(1);
  for (int i = 0; i < count; ++i) {
    Batch b;
    EXPECT_TRUE(l.next(b, rows));
    out[0].push_back(b);
  }
  return out;
}

TEST(PretrainLoader, WindowsAreTheEosSeparatedStreamShiftedByOne) {
  ScratchDir dir;
  auto docs = make_docs(37, 5);
  auto shards = make_shards(dir / "s", docs, 1000, kEos, /*per_shard=*/7);
  // The stream built here, independently of the loader: non-empty documents each followed by EOS.
  std::vector<int32_t> stream;
  for (auto& d : docs)
    if (!d.empty()) {
      stream.insert(stream.end(), d.begin(), d.end());
      stream.push_back(kEos);
    }
  const int64_t T = 11;
  LoaderOptions o{.seq_len = T, .seed = 3};
  PretrainLoader l(shards, o, Split::train);
  EXPECT_EQ(l.stream_tokens(), stream.size());
  ASSERT_EQ(l.items(), (stream.size() - 1) / uint64_t(T));
  std::multiset<uint64_t> seen;
  for (uint64_t step = 0; step < l.items(); ++step) {
    Batch b;
    ASSERT_TRUE(l.next(b, 1));
    const uint64_t k = b.items[0];
    seen.insert(k);
    ASSERT_EQ(b.cols, T);
    for (int64_t t = 0; t < T; ++t) {
      ASSERT_EQ(b.inputs[size_t(t)], stream[k * T + t]) << "sequence " << k << " position " << t;
      ASSERT_EQ(b.targets[size_t(t)], stream[k * T + t + 1]) << "sequence " << k << " position " << t;
    }
    EXPECT_EQ(b.target_count, T);
  }
  // One epoch visits every sequence exactly once, and not in corpus order.
  EXPECT_EQ(seen.size(), l.items());
  EXPECT_EQ(std::set<uint64_t>(seen.begin(), seen.end()).size(), l.items());
  EXPECT_EQ(l.cursor().epoch, 0u);
}

std::vector<uint64_t> order_of(data::BatchLoader& l, int n) {
  std::vector<uint64_t> v;
  Batch b;
  for (int i = 0; i < n; ++i) {
    l.next(b, 1);
    v.push_back(b.items[0]);
  }
  return v;
}

TEST(PretrainLoader, OrderIsDeterminedBySeedAndEpoch) {
  ScratchDir dir;
  auto shards = make_shards(dir / "s", make_docs(60, 9), 1000, kEos);
  LoaderOptions o{.seq_len = 8, .seed = 42};
  PretrainLoader a(shards, o, Split::train), b(shards, o, Split::train);
  const int n = int(a.items());
  auto ea = order_of(a, 2 * n), eb = order_of(b, 2 * n);
  EXPECT_EQ(ea, eb);
  std::vector<uint64_t> epoch0(ea.begin(), ea.begin() + n), epoch1(ea.begin() + n, ea.end());
  EXPECT_NE(epoch0, epoch1);
  std::vector<uint64_t> sorted = epoch1;
  std::sort(sorted.begin(), sorted.end());
  for (int i = 0; i < n; ++i) EXPECT_EQ(sorted[size_t(i)], uint64_t(i));
  o.seed = 43;
  PretrainLoader c(shards, o, Split::train);
  EXPECT_NE(order_of(c, n), epoch0);
  o.shuffle = false;
  PretrainLoader d(shards, o, Split::train);
  auto plain = order_of(d, n);
  for (int i = 0; i < n; ++i) EXPECT_EQ(plain[size_t(i)], uint64_t(i));
}

// Items each rank reads in one epoch.
std::vector<std::vector<uint64_t>> per_rank_items(std::shared_ptr<const data::ShardSet> shards, LoaderOptions o,
                                                  Split split, int world, uint64_t epoch) {
  std::vector<std::vector<uint64_t>> out;
  for (int r = 0; r < world; ++r) {
    o.rank = r;
    o.world = world;
    PretrainLoader l(shards, o, split);
    l.set_cursor({epoch, 0});
    Batch b;
    std::vector<uint64_t> items;
    if (split == Split::validation) {
      while (l.next(b, 4)) items.insert(items.end(), b.items.begin(), b.items.end());
    } else {
      for (uint64_t i = 0; i < l.items_per_rank_per_epoch(); ++i) {
        l.next(b, 1);
        items.push_back(b.items[0]);
      }
      EXPECT_EQ(l.cursor().epoch, epoch);
    }
    out.push_back(items);
  }
  return out;
}

TEST(PretrainLoader, RanksSplitEveryEpochDisjointlyAndCoverIt) {
  ScratchDir dir;
  auto shards = make_shards(dir / "s", make_docs(50, 21), 1000, kEos);
  for (int world : {1, 2, 3}) {
    for (auto policy : {RemainderPolicy::pad, RemainderPolicy::drop}) {
      LoaderOptions o{.seq_len = 7, .seed = 11, .remainder = policy};
      const uint64_t n = PretrainLoader(shards, o, Split::train).items();
      ASSERT_EQ(n % 3, 1u) << "pick a corpus whose sequence count leaves 2 padding slots for world 3";
      for (uint64_t epoch : {0u, 1u}) {
        auto ranks = per_rank_items(shards, o, Split::train, world, epoch);
        std::map<uint64_t, int> count;
        for (auto& items : ranks) {
          EXPECT_EQ(items.size(), ranks[0].size()) << "ranks must step in lockstep";
          for (uint64_t i : items) ++count[i];
        }
        const uint64_t w = uint64_t(world);
        if (policy == RemainderPolicy::pad) {
          EXPECT_EQ(count.size(), n) << "world " << world << ": the union covers every sequence";
          EXPECT_EQ(ranks[0].size(), (n + w - 1) / w);
          int repeats = 0;
          for (auto& [item, c] : count) {
            EXPECT_LE(c, 2) << "the wrap-around repeats distinct items";
            repeats += c - 1;
          }
          EXPECT_EQ(uint64_t(repeats), (w - n % w) % w) << "only the wrap-around of the last round repeats";
        } else {
          EXPECT_EQ(ranks[0].size(), n / w);
          for (auto& [item, c] : count) EXPECT_EQ(c, 1) << "drop: ranks are disjoint";
          EXPECT_EQ(count.size(), n - n % w);
        }
      }
    }
    // Validation: uneven shares, disjoint, covering, in order.
    LoaderOptions v{.seq_len = 5, .val_fraction = 0.3, .seed = 2};
    const uint64_t nv = PretrainLoader(shards, v, Split::validation).items();
    auto ranks = per_rank_items(shards, v, Split::validation, world, 0);
    std::vector<uint64_t> all;
    for (auto& items : ranks) {
      EXPECT_TRUE(std::is_sorted(items.begin(), items.end()));
      all.insert(all.end(), items.begin(), items.end());
    }
    std::sort(all.begin(), all.end());
    ASSERT_EQ(all.size(), nv);
    for (uint64_t i = 0; i < nv; ++i) EXPECT_EQ(all[i], i);
  }
}

TEST(PretrainLoader, SavedCursorResumesExactly) {
  ScratchDir dir;
  auto shards = make_shards(dir / "s", make_docs(40, 4), 1000, kEos);
  LoaderOptions o{.seq_len = 6, .seed = 77, .rank = 1, .world = 2};
  PretrainLoader run(shards, o, Split::train);
  const int per_epoch = int(run.items_per_rank_per_epoch());
  // Stop mid-epoch with a batch that does not divide the epoch, save, and keep going past the
  // epoch boundary.
  batches(run, per_epoch / 3 + 1, 3);
  const std::string state = run.state_json();
  auto expected = batches(run, per_epoch, 3)[0];
  PretrainLoader resumed(shards, o, Split::train);
  resumed.restore_state(state);
  auto got = batches(resumed, per_epoch, 3)[0];
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].inputs, expected[i].inputs) << "batch " << i;
    EXPECT_EQ(got[i].targets, expected[i].targets) << "batch " << i;
  }
  EXPECT_EQ(resumed.cursor(), run.cursor());
  EXPECT_GE(run.cursor().epoch, 1u);
  // A state from another seed is refused.
  LoaderOptions other = o;
  other.seed = 78;
  PretrainLoader wrong_seed(shards, other, Split::train);
  EXPECT_NE(error_of([&] { wrong_seed.restore_state(state); }).find("seed"), std::string::npos);
}

// A cursor saved by `from` ranks restores on `to` ranks: together they visit every sequence of
// the interrupted epoch exactly once (up to the pad wrap-around of the last round), and the next
// epoch starts afresh on the new ranks.
TEST(PretrainLoader, ResumeOnAnotherRankCountContinuesTheEpoch) {
  ScratchDir dir;
  auto shards = make_shards(dir / "s", make_docs(60, 5), 1000, kEos);
  for (auto [from, to] : {std::pair{2, 3}, std::pair{2, 1}, std::pair{3, 2}}) {
    std::map<uint64_t, int> seen;
    std::string state;
    uint64_t n = 0;
    for (int r = 0; r < from; ++r) {
      PretrainLoader l(shards, {.seq_len = 6, .seed = 9, .rank = r, .world = from}, Split::train);
      n = l.items();
      Batch b;
      for (int k = 0; k < 3; ++k) {
        ASSERT_TRUE(l.next(b, 2));
        for (uint64_t i : b.items) ++seen[i];
      }
      if (r == 0) state = l.state_json();
    }
    ASSERT_GT(n, uint64_t(from * 6)) << "the test needs an epoch longer than the saved part";
    std::vector<uint64_t> next_epoch_first;
    for (int r = 0; r < to; ++r) {
      PretrainLoader l(shards, {.seq_len = 6, .seed = 9, .rank = r, .world = to}, Split::train);
      l.restore_state(state);
      EXPECT_EQ(l.cursor().offset, uint64_t(from * 6));
      Batch b;
      while (l.cursor().epoch == 0) {
        ASSERT_TRUE(l.next(b, 1));
        if (l.cursor().epoch == 0 || l.cursor().position > 1) {
          for (uint64_t i : b.items) ++seen[i];
        } else {
          next_epoch_first.push_back(b.items[0]);  // the batch that crossed into epoch 1
        }
      }
    }
    EXPECT_EQ(seen.size(), n) << from << " -> " << to << ": every sequence of the epoch is visited";
    int repeats = 0;
    for (auto& [item, c] : seen) repeats += c - 1;
    EXPECT_LT(repeats, to) << from << " -> " << to << ": only the last round's wrap-around repeats";
    // Epoch 1 on the new ranks is the ordinary one: rank r starts at position r of its order.
    std::vector<uint64_t> fresh;
    for (int r = 0; r < to; ++r) {
      PretrainLoader l(shards, {.seq_len = 6, .seed = 9, .rank = r, .world = to}, Split::train);
      l.set_cursor({1, 0, 0});
      Batch b;
      ASSERT_TRUE(l.next(b, 1));
      fresh.push_back(b.items[0]);
    }
    EXPECT_EQ(next_epoch_first, fresh);
  }
}

TEST(DocumentSplit, SeededDisjointAndSized) {
  for (uint64_t n : {2u, 10u, 101u}) {
    auto s = data::split_documents(n, 0.1, 5);
    EXPECT_EQ(s.validation.size(), std::max<uint64_t>(1, uint64_t(std::llround(0.1 * double(n)))));
    std::vector<uint64_t> all = s.train;
    all.insert(all.end(), s.validation.begin(), s.validation.end());
    std::sort(all.begin(), all.end());
    for (uint64_t i = 0; i < n; ++i) EXPECT_EQ(all[i], i);
    EXPECT_EQ(data::split_documents(n, 0.1, 5).validation, s.validation);
  }
  EXPECT_NE(data::split_documents(101, 0.1, 5).validation, data::split_documents(101, 0.1, 6).validation);
  EXPECT_TRUE(data::split_documents(50, 0, 5).validation.empty());
  EXPECT_EQ(data::split_documents(1, 0.5, 5).train.size(), 1u);  // never all documents
}

TEST(PretrainLoader, ValidationHoldsOutWholeDocuments) {
  ScratchDir dir;
  auto docs = make_docs(30, 8);
  auto shards = make_shards(dir / "s", docs, 1000, kEos);
  LoaderOptions o{.seq_len = 4, .val_fraction = 0.2, .seed = 1};
  PretrainLoader train(shards, o, Split::train), val(shards, o, Split::validation);
  auto split = data::split_documents(30, 0.2, 1);
  uint64_t val_tokens = 0;
  for (uint64_t d : split.validation) val_tokens += docs[d].empty() ? 0 : docs[d].size() + 1;
  EXPECT_EQ(val.stream_tokens(), val_tokens);
  EXPECT_EQ(train.stream_tokens() + val.stream_tokens(), shards->token_count() + 29);  // one empty document
  // The validation pass is finite and starts over after rewind().
  Batch b;
  uint64_t rows = 0;
  while (val.next(b, 3)) rows += uint64_t(b.rows);
  EXPECT_EQ(rows, val.items());
  EXPECT_FALSE(val.next(b, 3));
  val.rewind();
  EXPECT_TRUE(val.next(b, 3));
  std::string e = error_of([&] { PretrainLoader(shards, {.seq_len = 4000}, Split::train); });
  EXPECT_NE(e.find("fewer than seq_len + 1 = 4001"), std::string::npos) << e;
}

// SFT rows: records with a mask (1 = target token).
TEST(SftLoader, PadsMasksAndDropsTooLongRecords) {
  ScratchDir dir;
  std::vector<std::vector<int32_t>> recs = {{10, 11, 12, 13}, {20, 21}, {30, 31, 32, 33, 34, 35, 36}, {40, 41, 42}};
  std::vector<std::vector<uint8_t>> masks = {{0, 0, 1, 1}, {0, 1}, {0, 0, 0, 0, 1, 1, 1}, {1, 0, 1}};
  auto shards = make_shards(dir / "s", recs, 100, 99, 1000, masks);
  LoaderOptions o{.seq_len = 5, .shuffle = false, .loss_on_targets_only = true};
  data::SftLoader l(shards, o, Split::train);
  EXPECT_EQ(l.records_in_split(), 4u);
  EXPECT_EQ(l.dropped_too_long(), 1u);  // 7 tokens > 5
  EXPECT_EQ(l.kept(), 3u);
  Batch b;
  ASSERT_TRUE(l.next(b, 3));
  ASSERT_EQ(b.rows, 3);
  ASSERT_EQ(b.cols, 4);  // the longest kept record
  const int32_t X = data::kIgnoreTarget;
  EXPECT_EQ(b.inputs, (std::vector<int32_t>{10, 11, 12, 13, 20, 21, 99, 99, 40, 41, 42, 99}));
  EXPECT_EQ(b.targets, (std::vector<int32_t>{X, 12, 13, X, 21, X, X, X, X, 42, X, X}));
  EXPECT_EQ(b.lengths, (std::vector<int32_t>{4, 2, 3}));
  EXPECT_EQ(b.target_count, 4);
  EXPECT_EQ(l.record_of(b.items[2]), 3u);

  o.loss_on_targets_only = false;
  o.pad_to_seq_len = true;
  o.pad_id = 7;
  data::SftLoader all(shards, o, Split::train);
  ASSERT_TRUE(all.next(b, 2));
  EXPECT_EQ(b.cols, 5);
  EXPECT_EQ(b.inputs, (std::vector<int32_t>{10, 11, 12, 13, 7, 20, 21, 7, 7, 7}));
  EXPECT_EQ(b.targets, (std::vector<int32_t>{11, 12, 13, X, X, 21, X, X, X, X}));
  std::string e = error_of([&] { data::SftLoader(shards, {.seq_len = 1}, Split::train); });
  EXPECT_NE(e.find("at least 2"), std::string::npos) << e;
  e = error_of([&] { PretrainLoader(shards, {.seq_len = 2}, Split::train); });
  EXPECT_NE(e.find("SFT records"), std::string::npos) << e;
}

}  // namespace
}  // namespace attnlab::test
