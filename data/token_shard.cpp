#include "data/token_shard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "data/input_check.h"
#include "data/sha256.h"

namespace attnlab::data {
namespace fs = std::filesystem;
static_assert(std::endian::native == std::endian::little, "token shards are little-endian; add byte swapping");

namespace {

constexpr uint32_t kFlagMask = 1u;
constexpr size_t kHeaderCheckAt = 120;

uint64_t align8(uint64_t x) { return (x + 7) & ~uint64_t(7); }

template <class T> void put(uint8_t* h, size_t at, T v) { std::memcpy(h + at, &v, sizeof(T)); }
template <class T> T get(const uint8_t* h, size_t at) {
  T v;
  std::memcpy(&v, h + at, sizeof(T));
  return v;
}

uint64_t header_check(const uint8_t* h) {
  Sha256 s;
  s.update(h, kHeaderCheckAt);
  auto d = s.finish();
  return get<uint64_t>(d.data(), 0);
}

struct Layout {
  uint64_t index_at = kShardHeaderBytes, tokens_at = 0, mask_at = 0, file_bytes = 0;
};

Layout layout_of(const ShardInfo& info) {
  Layout l;
  l.tokens_at = l.index_at + (info.doc_count + 1) * 8;
  uint64_t end = align8(l.tokens_at + info.token_count * info.token_bytes);
  if (info.has_mask) {
    l.mask_at = end;
    end = align8(end + info.token_count);
  }
  l.file_bytes = end;
  return l;
}

std::array<uint8_t, kShardHeaderBytes> encode_header(const ShardInfo& info) {
  const Layout l = layout_of(info);
  std::array<uint8_t, kShardHeaderBytes> h{};
  std::memcpy(h.data(), kShardMagic, 8);
  put<uint32_t>(h.data(), 8, kShardVersion);
  put<uint32_t>(h.data(), 12, info.token_bytes);
  put<uint64_t>(h.data(), 16, info.token_count);
  put<uint64_t>(h.data(), 24, info.doc_count);
  put<uint32_t>(h.data(), 32, info.vocab_size);
  put<int32_t>(h.data(), 36, info.eos_id);
  put<uint32_t>(h.data(), 40, info.has_mask ? kFlagMask : 0);
  put<uint32_t>(h.data(), 44, info.shard_index);
  put<uint32_t>(h.data(), 48, info.shard_count);
  std::memcpy(h.data() + 56, info.hash.data(), 32);
  put<uint64_t>(h.data(), 88, l.index_at);
  put<uint64_t>(h.data(), 96, l.tokens_at);
  put<uint64_t>(h.data(), 104, l.mask_at);
  put<uint64_t>(h.data(), 112, l.file_bytes);
  put<uint64_t>(h.data(), kHeaderCheckAt, header_check(h.data()));
  return h;
}

void write_all(int fd, const void* data, size_t n, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (n) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    INPUT_CHECK(w > 0, path, ": write failed: ", std::strerror(errno), " (disk full?)");
    p += w;
    n -= size_t(w);
  }
}

void fsync_dir(const std::string& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

// Writes the whole file at `path` (no rename); fsyncs it.
void write_shard_file(const std::string& path, const ShardInfo& info, std::span<const int32_t> tokens,
                      std::span<const uint64_t> doc_starts, std::span<const uint8_t> mask) {
  CHECK(info.token_bytes == 2 || info.token_bytes == 4, "token_bytes ", info.token_bytes);
  CHECK(tokens.size() == info.token_count && doc_starts.size() == info.doc_count + 1, "shard sizes disagree");
  CHECK(doc_starts.front() == 0 && doc_starts.back() == info.token_count, "document index must span the tokens");
  CHECK(info.has_mask == !mask.empty() && (mask.empty() || mask.size() == tokens.size()), "mask size");
  const Layout l = layout_of(info);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  INPUT_CHECK(fd >= 0, path, ": cannot create: ", std::strerror(errno));
  try {
    auto h = encode_header(info);
    write_all(fd, h.data(), h.size(), path);
    write_all(fd, doc_starts.data(), doc_starts.size_bytes(), path);
    std::vector<uint8_t> chunk;
    const size_t per_chunk = 1 << 20;
    for (size_t i = 0; i < tokens.size(); i += per_chunk) {
      const size_t n = std::min(per_chunk, tokens.size() - i);
      chunk.resize(n * info.token_bytes);
      for (size_t k = 0; k < n; ++k) {
        const int32_t t = tokens[i + k];
        CHECK(t >= 0 && uint32_t(t) < info.vocab_size, "token ", t, " outside the vocabulary of ", info.vocab_size);
        if (info.token_bytes == 2) put<uint16_t>(chunk.data(), k * 2, uint16_t(t));
        else put<uint32_t>(chunk.data(), k * 4, uint32_t(t));
      }
      write_all(fd, chunk.data(), chunk.size(), path);
    }
    const uint8_t zeros[8] = {};
    uint64_t at = l.tokens_at + tokens.size() * info.token_bytes;
    write_all(fd, zeros, align8(at) - at, path);
    if (info.has_mask) {
      write_all(fd, mask.data(), mask.size(), path);
      at = l.mask_at + mask.size();
      write_all(fd, zeros, align8(at) - at, path);
    }
    INPUT_CHECK(::fsync(fd) == 0, path, ": fsync failed: ", std::strerror(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(path.c_str());
    throw;
  }
  ::close(fd);
}

}  // namespace

std::string hash_hex(const DatasetHash& h) {
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (uint8_t b : h) {
    s.push_back(hex[b >> 4]);
    s.push_back(hex[b & 15]);
  }
  return s;
}

std::string shard_file_name(uint32_t index) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "shard_%05u.bin", index);
  return buf;
}

std::string shard_fix_hint(const std::string& path) {
  return "delete the shard folder " + fs::path(path).parent_path().string() +
         " and run again (or `attnlab data prepare`) to re-tokenise";
}

void write_shard(const std::string& path, const ShardInfo& info, std::span<const int32_t> tokens,
                 std::span<const uint64_t> doc_starts, std::span<const uint8_t> mask) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  write_shard_file(tmp, info, tokens, doc_starts, mask);
  INPUT_CHECK(::rename(tmp.c_str(), path.c_str()) == 0, path, ": cannot rename from ", tmp, ": ", std::strerror(errno));
  fsync_dir(fs::path(path).parent_path().string());
}

void write_shard_in_place(const std::string& path, const ShardInfo& info, std::span<const int32_t> tokens,
                          std::span<const uint64_t> doc_starts, std::span<const uint8_t> mask) {
  write_shard_file(path, info, tokens, doc_starts, mask);
}

void rewrite_shard_header(const std::string& path, const ShardInfo& info) {
  std::error_code ec;
  const uint64_t size = fs::file_size(path, ec);
  CHECK(!ec && size == layout_of(info).file_bytes, path, ": the new header does not describe the file");
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  INPUT_CHECK(fd >= 0, path, ": cannot reopen to rewrite the header: ", std::strerror(errno));
  const auto header = encode_header(info);
  const bool ok = ::pwrite(fd, header.data(), header.size(), 0) == ssize_t(header.size()) && ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  INPUT_CHECK(ok, path, ": cannot rewrite the header: ", std::strerror(err));
}

TokenShard TokenShard::open(const std::string& path, bool check_tokens) {
  TokenShard s;
  s.path_ = path;
  const std::string fix = shard_fix_hint(path);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  INPUT_CHECK(fd >= 0, path, ": cannot open token shard: ", std::strerror(errno), "; ", fix);
  struct stat st{};
  ::fstat(fd, &st);
  const uint64_t size = uint64_t(st.st_size);
  if (size < kShardHeaderBytes) {
    ::close(fd);
    FAIL_WITH(path, ": not a token shard (", size, " bytes, shorter than the ", kShardHeaderBytes,
              "-byte header; an interrupted copy?); ", fix);
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  INPUT_CHECK(map != MAP_FAILED, path, ": cannot memory-map: ", std::strerror(errno));
  s.map_ = map;
  s.map_bytes_ = size;
  const auto* h = static_cast<const uint8_t*>(map);
  INPUT_CHECK(std::memcmp(h, kShardMagic, 8) == 0, path, ": not a token shard (the file does not start with ",
              "\"ATNLSHRD\"); ", fix);
  const uint32_t version = get<uint32_t>(h, 8);
  INPUT_CHECK(version == kShardVersion, path, ": token shard format version ", version, ", this attnlab reads version ",
              kShardVersion, "; ", fix);
  INPUT_CHECK(get<uint64_t>(h, kHeaderCheckAt) == header_check(h), path, ": the shard header is corrupt (its check ",
              "value does not match); ", fix);
  ShardInfo& i = s.info_;
  i.token_bytes = get<uint32_t>(h, 12);
  i.token_count = get<uint64_t>(h, 16);
  i.doc_count = get<uint64_t>(h, 24);
  i.vocab_size = get<uint32_t>(h, 32);
  i.eos_id = get<int32_t>(h, 36);
  const uint32_t flags = get<uint32_t>(h, 40);
  i.has_mask = flags & kFlagMask;
  i.shard_index = get<uint32_t>(h, 44);
  i.shard_count = get<uint32_t>(h, 48);
  std::memcpy(i.hash.data(), h + 56, 32);
  INPUT_CHECK(i.token_bytes == 2 || i.token_bytes == 4, path, ": ", i.token_bytes, " bytes per token (expected 2 or ",
              "4); ", fix);
  INPUT_CHECK((flags & ~kFlagMask) == 0 && i.vocab_size > 0 && (i.token_bytes == 4 || i.vocab_size <= 65535) &&
                  i.eos_id >= -1 && i.eos_id < int64_t(i.vocab_size) && i.shard_index < i.shard_count,
              path, ": inconsistent shard header (flags ", flags, ", vocabulary ", i.vocab_size, ", eos ", i.eos_id,
              ", shard ", i.shard_index, " of ", i.shard_count, "); ", fix);
  INPUT_CHECK(i.token_count < (uint64_t(1) << 40) && i.doc_count < (uint64_t(1) << 40), path,
              ": implausible counts in the shard header; ", fix);
  const Layout l = layout_of(i);
  INPUT_CHECK(get<uint64_t>(h, 88) == l.index_at && get<uint64_t>(h, 96) == l.tokens_at &&
                  get<uint64_t>(h, 104) == l.mask_at && get<uint64_t>(h, 112) == l.file_bytes,
              path, ": the section offsets in the shard header disagree with its counts; ", fix);
  INPUT_CHECK(size == l.file_bytes, path, ": the shard is ", size, " bytes but its header describes ", l.file_bytes,
              " (truncated or appended to); ", fix);
  s.doc_index_ = reinterpret_cast<const uint64_t*>(h + l.index_at);
  s.tokens_ = h + l.tokens_at;
  s.mask_ = i.has_mask ? h + l.mask_at : nullptr;
  INPUT_CHECK(s.doc_index_[0] == 0 && s.doc_index_[i.doc_count] == i.token_count, path,
              ": the document index does not span the tokens; ", fix);
  for (uint64_t d = 0; d < i.doc_count; ++d)
    INPUT_CHECK(s.doc_index_[d] <= s.doc_index_[d + 1], path, ": document ", d, " ends before it starts in the ",
                "document index; ", fix);
  if (check_tokens) {
    for (uint64_t t = 0; t < i.token_count; ++t)
      INPUT_CHECK(uint32_t(s.token(t)) < i.vocab_size, path, ": token ", t, " is ", s.token(t), ", outside the ",
                  "vocabulary of ", i.vocab_size, "; ", fix);
    if (s.mask_)
      for (uint64_t t = 0; t < i.token_count; ++t)
        INPUT_CHECK(s.mask_[t] <= 1, path, ": loss-mask byte ", t, " is ", int(s.mask_[t]), " (0 or 1); ", fix);
  }
  return s;
}

TokenShard::TokenShard(TokenShard&& o) noexcept { *this = std::move(o); }
TokenShard& TokenShard::operator=(TokenShard&& o) noexcept {
  if (this != &o) {
    if (map_) ::munmap(map_, map_bytes_);
    path_ = std::move(o.path_);
    info_ = o.info_;
    map_ = std::exchange(o.map_, nullptr);
    map_bytes_ = std::exchange(o.map_bytes_, 0);
    doc_index_ = o.doc_index_;
    tokens_ = o.tokens_;
    mask_ = o.mask_;
  }
  return *this;
}
TokenShard::~TokenShard() {
  if (map_) ::munmap(map_, map_bytes_);
}

void TokenShard::copy_tokens(uint64_t begin, uint64_t end, int32_t* out) const {
  CHECK(begin <= end && end <= info_.token_count, "token range [", begin, ", ", end, ") outside ", info_.token_count);
  if (info_.token_bytes == 2) {
    const auto* p = static_cast<const uint16_t*>(tokens_);
    for (uint64_t i = begin; i < end; ++i) *out++ = int32_t(p[i]);
  } else {
    const auto* p = static_cast<const uint32_t*>(tokens_);
    for (uint64_t i = begin; i < end; ++i) *out++ = int32_t(p[i]);
  }
}

std::vector<int32_t> TokenShard::doc_tokens(uint64_t doc) const {
  CHECK(doc < info_.doc_count, "document ", doc, " of ", info_.doc_count);
  std::vector<int32_t> v(doc_length(doc));
  copy_tokens(doc_begin(doc), doc_end(doc), v.data());
  return v;
}

ShardSet ShardSet::open(const std::string& dir, bool check_tokens) {
  ShardSet set;
  const std::string first = (fs::path(dir) / shard_file_name(0)).string();
  std::error_code ec;
  INPUT_CHECK(fs::exists(first, ec), dir, ": no token shards (", shard_file_name(0), " is missing); run `attnlab data ",
              "prepare` on the experiment file, or the training command, to tokenise the corpus");
  set.shards_.push_back(TokenShard::open(first, check_tokens));
  const ShardInfo head = set.shards_[0].info();  // a copy: push_back below moves the shards
  for (uint32_t k = 1; k < head.shard_count; ++k)
    set.shards_.push_back(TokenShard::open((fs::path(dir) / shard_file_name(k)).string(), check_tokens));
  for (uint32_t k = 0; k < set.shards_.size(); ++k) {
    const ShardInfo& i = set.shards_[k].info();
    const std::string& p = set.shards_[k].path();
    INPUT_CHECK(i.shard_index == k && i.shard_count == head.shard_count && i.hash == head.hash &&
                    i.vocab_size == head.vocab_size && i.eos_id == head.eos_id && i.has_mask == head.has_mask,
                p, ": does not belong with ", first, " (a different tokenisation run: shard ", i.shard_index, " of ",
                i.shard_count, ", hash ", hash_hex(i.hash).substr(0, 12), " vs ", hash_hex(head.hash).substr(0, 12),
                "); ", shard_fix_hint(p));
    set.doc_offsets_.push_back(set.doc_offsets_.back() + i.doc_count);
    set.token_count_ += i.token_count;
  }
  return set;
}

std::pair<const TokenShard*, uint64_t> ShardSet::locate(uint64_t doc) const {
  CHECK(doc < doc_count(), "document ", doc, " of ", doc_count());
  const size_t k = size_t(std::upper_bound(doc_offsets_.begin(), doc_offsets_.end(), doc) - doc_offsets_.begin()) - 1;
  return {&shards_[k], doc - doc_offsets_[k]};
}

uint64_t ShardSet::doc_length(uint64_t doc) const {
  auto [shard, local] = locate(doc);
  return shard->doc_length(local);
}

}  // namespace attnlab::data
