#include "data/bpe.h"

#include <queue>

#include "core/error.h"
#include "data/unicode_nfc.h"

namespace attnlab::data {
namespace {

struct ByteSymbols {
  char32_t to_symbol[256];
  int16_t from_symbol[512];  // every symbol is below U+0200
  ByteSymbols() {
    for (auto& v : from_symbol) v = -1;
    int next_extra = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_symbol[b] = printable ? char32_t(b) : char32_t(256 + next_extra++);
      from_symbol[to_symbol[b]] = int16_t(b);
    }
  }
};
const ByteSymbols& byte_symbols() {
  static const ByteSymbols s;
  return s;
}

}  // namespace

char32_t byte_to_symbol(uint8_t byte) { return byte_symbols().to_symbol[byte]; }

int symbol_to_byte(char32_t symbol) { return symbol < 512 ? byte_symbols().from_symbol[symbol] : -1; }

bool byte_level_to_bytes(std::string_view token, std::string& bytes) {
  bytes.clear();
  for (size_t pos = 0; pos < token.size();) {
    int32_t cp = decode_utf8(token, pos);
    int b = cp < 0 ? -1 : symbol_to_byte(char32_t(cp));
    if (b < 0) return false;
    bytes.push_back(char(b));
  }
  return true;
}

std::string bytes_to_byte_level(std::string_view bytes) {
  std::string out;
  for (char c : bytes) append_utf8(out, byte_to_symbol(uint8_t(c)));
  return out;
}

void MergeTable::reserve(size_t n) {
  size_t cap = 16;
  while (cap < 2 * n) cap <<= 1;
  if (cap <= slots_.size()) return;
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(cap, Slot{});
  mask_ = cap - 1;
  count_ = 0;
  for (auto& s : old)
    if (s.key != kEmpty) insert(int32_t(s.key >> 32), int32_t(uint32_t(s.key)), s.rank, s.merged);
}

void MergeTable::grow() { reserve(slots_.empty() ? 16 : slots_.size()); }

bool MergeTable::insert(int32_t left, int32_t right, int32_t rank, int32_t merged) {
  if (2 * (count_ + 1) > slots_.size()) grow();
  uint64_t key = pack(left, right);
  for (size_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
    Slot& s = slots_[i];
    if (s.key == key) return false;
    if (s.key == kEmpty) {
      s = Slot{key, rank, merged};
      ++count_;
      return true;
    }
  }
}

void bpe_merge_word(std::string_view bytes, const int32_t (&byte_ids)[256], const MergeTable& merges,
                    std::vector<int32_t>& out) {
  const size_t n = bytes.size();
  if (n == 0) return;
  if (n == 1) {
    out.push_back(byte_ids[uint8_t(bytes[0])]);
    return;
  }
  // Symbols form a linked list over positions; a merge keeps the left slot and unlinks the right.
  // Candidate pairs wait in a heap by (rank, left position); entries made stale by an earlier
  // merge are recognised on pop because their symbols changed.
  struct Symbol {
    int32_t id;
    int32_t prev, next;  // -1 at the ends
  };
  struct Candidate {
    int32_t rank, left;
    int32_t left_id, right_id, merged;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  std::vector<Symbol> sym(n);
  for (size_t i = 0; i < n; ++i) sym[i] = {byte_ids[uint8_t(bytes[i])], int32_t(i) - 1, i + 1 < n ? int32_t(i + 1) : -1};
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  auto consider = [&](int32_t left) {
    int32_t right = sym[left].next;
    if (right < 0) return;
    int32_t merged = -1;
    int32_t rank = merges.find(sym[left].id, sym[right].id, merged);
    if (rank >= 0) heap.push({rank, left, sym[left].id, sym[right].id, merged});
  };
  for (size_t i = 0; i + 1 < n; ++i) consider(int32_t(i));
  while (!heap.empty()) {
    Candidate c = heap.top();
    heap.pop();
    Symbol& l = sym[c.left];
    if (l.id != c.left_id || l.next < 0 || sym[l.next].id != c.right_id) continue;  // stale
    int32_t right = l.next;
    l.id = c.merged;
    l.next = sym[right].next;
    if (l.next >= 0) sym[l.next].prev = c.left;
    sym[right].id = -1;  // unlinked: any candidate naming it as its left symbol is stale
    if (l.prev >= 0) consider(l.prev);
    consider(c.left);
  }
  for (int32_t i = 0; i >= 0; i = sym[i].next) out.push_back(sym[i].id);
}

}  // namespace attnlab::data
