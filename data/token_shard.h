#pragma once
// Token shards: a corpus (or a set of SFT records) tokenised once and memory-mapped by the
// loaders. A shard folder holds shard_00000.bin, shard_00001.bin, ...; each file holds whole
// documents. Layout of one file (little-endian, every section 8-byte aligned):
//
//   0    char[8]  magic "ATNLSHRD"
//   8    u32      format version (kShardVersion)
//   12   u32      bytes per token: 2 (u16, vocab_size <= 65535) or 4 (u32)
//   16   u64      token count
//   24   u64      document count
//   32   u32      vocab size          36  i32  eos id (-1: none)
//   40   u32      flags (bit 0: a per-token loss mask follows the tokens)
//   44   u32      shard index         48  u32  shard count          52  u32  reserved (0)
//   56   u8[32]   dataset hash: SHA-256 of the tokenizer fingerprint and the source identity
//   88   u64      offset of the document index   96  u64  offset of the tokens
//   104  u64      offset of the loss mask (0 without)   112  u64  file size in bytes
//   120  u64      header check: the first 8 bytes of SHA-256(bytes 0..119)
//   128  u64[document count + 1]  document start positions in the token array (0 ... token count)
//   ...  tokens (u16/u32), then optionally one u8 per token (1 = target token, for SFT masks)
//
// Files are written to a temporary name, fsynced and renamed, so a shard that exists is whole.
// Opening validates everything above (and, by default, every token against the vocabulary);
// a bad shard raises one error naming the file and the fix (delete the shard folder).
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "data/corpus.h"
#include "data/tokenizer.h"

namespace attnlab::data {

inline constexpr char kShardMagic[8] = {'A', 'T', 'N', 'L', 'S', 'H', 'R', 'D'};
inline constexpr uint32_t kShardVersion = 1;
inline constexpr size_t kShardHeaderBytes = 128;
using DatasetHash = std::array<uint8_t, 32>;

std::string hash_hex(const DatasetHash& h);
std::string shard_file_name(uint32_t index);  // "shard_00000.bin"

struct ShardInfo {
  uint32_t token_bytes = 0;
  uint64_t token_count = 0;
  uint64_t doc_count = 0;
  uint32_t vocab_size = 0;
  int32_t eos_id = -1;
  bool has_mask = false;
  uint32_t shard_index = 0;
  uint32_t shard_count = 0;
  DatasetHash hash{};
};

// Writes one shard file atomically (temporary name, fsync, rename, fsync of the folder).
// `doc_starts` has doc_count + 1 entries, the last equal to tokens.size(); `mask` is empty or one
// byte per token. Tokens must be in [0, vocab_size).
void write_shard(const std::string& path, const ShardInfo& info, std::span<const int32_t> tokens,
                 std::span<const uint64_t> doc_starts, std::span<const uint8_t> mask = {});

// Lower level, for writers that learn the shard count only at the end: the same file written in
// place (fsynced, not renamed), and its header rewritten in place from `info`.
void write_shard_in_place(const std::string& path, const ShardInfo& info, std::span<const int32_t> tokens,
                          std::span<const uint64_t> doc_starts, std::span<const uint8_t> mask = {});
void rewrite_shard_header(const std::string& path, const ShardInfo& info);

// A read-only memory-mapped shard.
class TokenShard {
 public:
  // Validates the header, the sizes and the document index; with check_tokens also that every
  // token is below the vocabulary size (one pass over the file).
  static TokenShard open(const std::string& path, bool check_tokens = true);
  TokenShard(TokenShard&&) noexcept;
  TokenShard& operator=(TokenShard&&) noexcept;
  ~TokenShard();

  const ShardInfo& info() const { return info_; }
  const std::string& path() const { return path_; }
  uint64_t doc_begin(uint64_t doc) const { return doc_index_[doc]; }
  uint64_t doc_end(uint64_t doc) const { return doc_index_[doc + 1]; }
  uint64_t doc_length(uint64_t doc) const { return doc_end(doc) - doc_begin(doc); }
  int32_t token(uint64_t i) const {
    return info_.token_bytes == 2 ? int32_t(static_cast<const uint16_t*>(tokens_)[i])
                                  : int32_t(static_cast<const uint32_t*>(tokens_)[i]);
  }
  // Copies tokens [begin, end) into out.
  void copy_tokens(uint64_t begin, uint64_t end, int32_t* out) const;
  // The loss mask byte of token i (1 when the shard has no mask).
  uint8_t mask(uint64_t i) const { return mask_ ? mask_[i] : uint8_t(1); }
  std::vector<int32_t> doc_tokens(uint64_t doc) const;

 private:
  TokenShard() = default;
  std::string path_;
  ShardInfo info_;
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  const uint64_t* doc_index_ = nullptr;
  const void* tokens_ = nullptr;
  const uint8_t* mask_ = nullptr;
};

// All shards of a folder, as one list of documents (shard order, then document order).
class ShardSet {
 public:
  // Opens shard_00000.bin ... and checks that they agree (count, hash, vocabulary, mask flag).
  static ShardSet open(const std::string& dir, bool check_tokens = true);
  const std::vector<TokenShard>& shards() const { return shards_; }
  uint64_t doc_count() const { return doc_offsets_.back(); }
  uint64_t token_count() const { return token_count_; }
  const ShardInfo& info() const { return shards_.front().info(); }  // of shard 0 (hash, vocab, eos)
  // Global document d as (shard, local document).
  std::pair<const TokenShard*, uint64_t> locate(uint64_t doc) const;
  uint64_t doc_length(uint64_t doc) const;

 private:
  std::vector<TokenShard> shards_;
  std::vector<uint64_t> doc_offsets_{0};  // first global document of each shard, then the total
  uint64_t token_count_ = 0;
};

// One tokenised document or record: ids and, for SFT, a per-token target mask.
struct TokenizedDoc {
  std::vector<int32_t> ids;
  std::vector<uint8_t> mask;
};
using TokenizeTask = std::function<TokenizedDoc()>;

// What a shard folder is made from. `identity` is everything besides the tokenizer that decides
// the shard contents (reader options, file names, sizes and content hashes); `produce` yields one
// task per document, in order. Tasks run in parallel, their results are stored in order; a task
// that returns no ids stores an empty document (the loaders skip those).
struct ShardSpec {
  std::string identity;
  bool with_mask = false;
  std::function<void(const std::function<void(TokenizeTask&&)>&)> produce;
};

struct PrepareOptions {
  int threads = 0;                        // tokenising threads; 0: hardware concurrency
  uint64_t max_tokens_per_shard = 1ull << 27;
  bool check_tokens_on_reuse = false;     // full token scan when reusing (headers are always checked)
  bool quiet = true;                      // progress lines on the log
};

struct PrepareResult {
  std::string dir;
  bool reused = false;  // valid shards with the same hash were found; nothing was tokenised
  uint32_t shard_count = 0;
  uint64_t doc_count = 0;
  uint64_t token_count = 0;
  DatasetHash hash{};
};

// A fingerprint of what a tokenizer does: its vocabulary, added tokens, normaliser, split
// patterns, merge count and the ids of a probe text.
std::string tokenizer_fingerprint(const Tokenizer& tokenizer);
// The identity of the files behind a corpus: relative names, sizes and SHA-256 of contents.
std::string files_identity(const std::string& root, const std::vector<std::string>& files);

// Tokenises `spec` into `shard_dir` unless it already holds valid shards with the same hash
// (then reuses them). Stale shard_*.bin files are removed before writing new ones.
PrepareResult prepare_shards(const ShardSpec& spec, const Tokenizer& tokenizer, const std::string& shard_dir,
                             const PrepareOptions& opt = {});
// Pretraining documents of a corpus: each document encoded as plain text (added-token strings
// such as "<|endoftext|>" inside the text are not matched), no EOS (the loader adds it).
PrepareResult prepare_shards(const CorpusOptions& source, const Tokenizer& tokenizer, const std::string& shard_dir,
                             const PrepareOptions& opt = {});

// The message every shard validation error ends with.
std::string shard_fix_hint(const std::string& path);

}  // namespace attnlab::data
