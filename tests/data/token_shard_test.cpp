// Token shards: round trips (u16 and u32), validation errors on damaged files, and the
// tokenisation cache of prepare_shards (reuse, invalidation, multi-shard, thread independence).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "data/corpus.h"
#include "data/data_test_util.h"
#include "data/token_shard.h"

namespace attnlab::test {
namespace {
namespace fs = std::filesystem;
using data::ShardInfo;
using data::TokenShard;

#define EXPECT_HAS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "message: " << (haystack)

ShardInfo info_for(uint32_t vocab, uint64_t tokens, uint64_t docs, bool mask = false) {
  ShardInfo i;
  i.token_bytes = vocab <= 65535 ? 2 : 4;
  i.vocab_size = vocab;
  i.eos_id = int32_t(vocab) - 1;
  i.token_count = tokens;
  i.doc_count = docs;
  i.has_mask = mask;
  i.shard_count = 1;
  for (int k = 0; k < 32; ++k) i.hash[k] = uint8_t(k * 7 + 1);
  return i;
}

TEST(TokenShard, RoundTripU16WithMask) {
  ScratchDir dir;
  const std::vector<int32_t> tokens = {5, 65534, 0, 17, 17, 3, 9};  // 65534 is the largest u16 id of vocab 65535
  const std::vector<uint64_t> starts = {0, 2, 2, 7};               // an empty document in the middle
  const std::vector<uint8_t> mask = {0, 1, 1, 0, 1, 1, 0};
  write_shard(dir / "s.bin", info_for(65535, 7, 3, true), tokens, starts, mask);
  TokenShard s = TokenShard::open(dir / "s.bin");
  EXPECT_EQ(s.info().token_bytes, 2u);
  EXPECT_EQ(s.info().doc_count, 3u);
  EXPECT_EQ(s.info().eos_id, 65534);
  EXPECT_EQ(s.info().hash, info_for(65535, 7, 3).hash);
  EXPECT_EQ(s.doc_tokens(0), (std::vector<int32_t>{5, 65534}));
  EXPECT_TRUE(s.doc_tokens(1).empty());
  EXPECT_EQ(s.doc_tokens(2), (std::vector<int32_t>{0, 17, 17, 3, 9}));
  for (uint64_t i = 0; i < 7; ++i) EXPECT_EQ(s.mask(i), mask[i]) << i;
  // 128-byte header + 4 index entries + 7 u16 tokens (padded to 16) + 7 mask bytes (padded to 8).
  EXPECT_EQ(fs::file_size(dir / "s.bin"), 128u + 32 + 16 + 8);
}

TEST(TokenShard, RoundTripU32LargeIds) {
  ScratchDir dir;
  const std::vector<int32_t> tokens = {151668, 65535, 1, 151643};
  write_shard(dir / "s.bin", info_for(151669, 4, 1), tokens, std::vector<uint64_t>{0, 4});
  TokenShard s = TokenShard::open(dir / "s.bin");
  EXPECT_EQ(s.info().token_bytes, 4u);
  EXPECT_EQ(s.doc_tokens(0), tokens);
  EXPECT_EQ(s.mask(2), 1);  // no mask section: every token counts
  EXPECT_EQ(fs::file_size(dir / "s.bin"), 128u + 16 + 16);
}

// Writes a valid shard, lets `damage` change its bytes, and returns the error opening it gives.
std::string open_error(const ScratchDir& dir, const std::function<void(std::string&)>& damage) {
  const std::vector<int32_t> tokens = {1, 2, 3, 4, 5, 6};
  write_shard(dir / "s.bin", info_for(100, 6, 2), tokens, std::vector<uint64_t>{0, 4, 6});
  std::string bytes = read_text(dir / "s.bin");
  damage(bytes);
  write_text(dir / "s.bin", bytes);
  return error_of([&] { TokenShard::open(dir / "s.bin"); });
}

TEST(TokenShard, DamagedFilesGiveOneClearError) {
  ScratchDir dir;
  const std::string fix = "delete the shard folder " + dir.path;
  std::string e = open_error(dir, [](std::string& b) { b[0] = 'X'; });
  EXPECT_HAS(e, dir / "s.bin: not a token shard");
  EXPECT_HAS(e, fix);
  e = open_error(dir, [](std::string& b) { b[8] = 9; });
  EXPECT_HAS(e, "token shard format version 9, this attnlab reads version 1");
  EXPECT_HAS(e, fix);
  e = open_error(dir, [](std::string& b) { b[16] ^= 1; });  // token count, caught by the header check
  EXPECT_HAS(e, "the shard header is corrupt");
  e = open_error(dir, [](std::string& b) { b.resize(b.size() - 8); });
  EXPECT_HAS(e, "but its header describes");
  EXPECT_HAS(e, fix);
  e = open_error(dir, [](std::string& b) { b += "extra"; });
  EXPECT_HAS(e, "truncated or appended to");
  e = open_error(dir, [](std::string& b) { b.resize(40); });
  EXPECT_HAS(e, "shorter than the 128-byte header");
  e = open_error(dir, [](std::string& b) { b[128 + 3 * 8 + 2 * 2] = char(200); });  // token 2 := 200 >= vocab 100
  EXPECT_HAS(e, "token 2 is 200, outside the vocabulary of 100");
  e = open_error(dir, [](std::string& b) { b[128 + 8] = 7; });  // document 1 would start at 7, after its end (6)
  EXPECT_HAS(e, "document 1 ends before it starts");
  // The untouched file opens.
  EXPECT_EQ(open_error(dir, [](std::string&) {}), "");
}

TEST(TokenShard, ShardSetChecksThatShardsBelongTogether) {
  ScratchDir dir;
  auto set = make_shards(dir / "a", {{1, 2}, {3}, {4, 5, 6}, {7}, {8, 9}}, 50, 49, /*per_shard=*/2);
  ASSERT_EQ(set->shards().size(), 3u);
  EXPECT_EQ(set->doc_count(), 5u);
  EXPECT_EQ(set->token_count(), 9u);
  auto [shard, local] = set->locate(3);
  EXPECT_EQ(shard->doc_tokens(local), std::vector<int32_t>{7});
  EXPECT_EQ(set->doc_length(4), 2u);
  // A shard from another run (different hash) in the folder.
  ShardInfo other = info_for(50, 1, 1);
  other.shard_index = 1;
  other.shard_count = 3;
  write_shard(dir / "a/shard_00001.bin", other, std::vector<int32_t>{1}, std::vector<uint64_t>{0, 1});
  std::string e = error_of([&] { data::ShardSet::open(dir / "a"); });
  EXPECT_HAS(e, "shard_00001.bin: does not belong with");
  fs::remove(dir / "a/shard_00002.bin");
  e = error_of([&] { data::ShardSet::open(dir / "a"); });
  EXPECT_HAS(e, "shard_00002.bin: cannot open token shard");
  e = error_of([&] { data::ShardSet::open(dir / "empty"); });
  EXPECT_HAS(e, "no token shards");
}

struct CorpusFixture {
  ScratchDir dir;
  data::Tokenizer tok = make_byte_tokenizer(dir / "tok");
  std::vector<std::string> files = {"alpha beta\n", "gamma <|endoftext|> delta\n", "epsilon"};
  CorpusFixture() {
    for (size_t i = 0; i < files.size(); ++i) write_text(dir / ("corpus/f" + std::to_string(i) + ".txt"), files[i]);
  }
  data::CorpusOptions source() const { return {.format = data::CorpusFormat::text, .path = dir / "corpus"}; }
};

TEST(PrepareShards, TokenisesOnceAndReusesValidShards) {
  CorpusFixture fx;
  const std::string out = fx.dir / "shards";
  data::PrepareResult r1 = data::prepare_shards(fx.source(), fx.tok, out);
  EXPECT_FALSE(r1.reused);
  EXPECT_EQ(r1.doc_count, 3u);
  EXPECT_EQ(r1.token_count, 11u + 26 + 7);
  auto set = data::ShardSet::open(out);
  for (uint64_t d = 0; d < 3; ++d) EXPECT_EQ(set.locate(d).first->doc_tokens(d), bytes_of(fx.files[d]));  // not id 256
  EXPECT_EQ(set.info().eos_id, 256);
  EXPECT_EQ(set.info().token_bytes, 2u);

  const auto stamp = fs::last_write_time(out + "/shard_00000.bin");
  data::PrepareResult r2 = data::prepare_shards(fx.source(), fx.tok, out);
  EXPECT_TRUE(r2.reused);
  EXPECT_EQ(r2.hash, r1.hash);
  EXPECT_EQ(r2.token_count, r1.token_count);
  EXPECT_EQ(fs::last_write_time(out + "/shard_00000.bin"), stamp);

  // Changing a file's contents, or the reader options, re-tokenises.
  write_text(fx.dir / "corpus/f2.txt", "epsilon zeta");
  data::PrepareResult r3 = data::prepare_shards(fx.source(), fx.tok, out);
  EXPECT_FALSE(r3.reused);
  EXPECT_NE(r3.hash, r1.hash);
  EXPECT_EQ(r3.token_count, 11u + 26 + 12);
  data::CorpusOptions by_line = fx.source();
  by_line.unit = data::DocumentUnit::line;
  EXPECT_FALSE(data::prepare_shards(by_line, fx.tok, out).reused);
  EXPECT_TRUE(data::prepare_shards(by_line, fx.tok, out).reused);
}

TEST(PrepareShards, DamagedShardIsReplacedAndShardSplitIsInvisible) {
  CorpusFixture fx;
  const std::string out = fx.dir / "shards";
  data::PrepareOptions small;
  small.max_tokens_per_shard = 10;  // every document (11, 26, 7 tokens) closes a shard
  small.threads = 3;
  data::PrepareResult r = data::prepare_shards(fx.source(), fx.tok, out, small);
  EXPECT_EQ(r.shard_count, 3u);
  auto set = data::ShardSet::open(out);
  EXPECT_EQ(set.doc_count(), 3u);
  for (uint64_t d = 0; d < 3; ++d) {
    auto [shard, local] = set.locate(d);
    EXPECT_EQ(shard->doc_tokens(local), bytes_of(fx.files[d]));
  }
  // Truncate one shard: the next prepare notices and re-tokenises.
  fs::resize_file(out + "/shard_00001.bin", 100);
  data::PrepareResult again = data::prepare_shards(fx.source(), fx.tok, out);
  EXPECT_FALSE(again.reused);
  EXPECT_EQ(again.shard_count, 1u);  // default shard size: one file; the old three are gone
  EXPECT_FALSE(fs::exists(out + "/shard_00001.bin"));
  EXPECT_EQ(data::ShardSet::open(out).token_count(), r.token_count);
}

TEST(PrepareShards, ThreadCountDoesNotChangeTheBytes) {
  CorpusFixture fx;
  for (int i = 0; i < 40; ++i) write_text(fx.dir / ("corpus/g" + std::to_string(100 + i) + ".txt"), std::string(size_t(i + 1), char('a' + i % 26)));
  data::PrepareOptions one, four;
  one.threads = 1;
  four.threads = 4;
  data::prepare_shards(fx.source(), fx.tok, fx.dir / "s1", one);
  data::prepare_shards(fx.source(), fx.tok, fx.dir / "s4", four);
  EXPECT_EQ(read_text(fx.dir / "s1/shard_00000.bin"), read_text(fx.dir / "s4/shard_00000.bin"));
}

}  // namespace
}  // namespace attnlab::test
