#pragma once
// Byte-level BPE: the byte <-> symbol map of GPT-2 and the merge loop over token ids.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace attnlab::data {

// GPT-2's bytes_to_unicode: each byte is written as one printable code point (printable Latin-1
// bytes as themselves, the other 68 bytes as U+0100 onwards), so vocab and merges are text.
char32_t byte_to_symbol(uint8_t byte);
// The byte a symbol stands for, or -1 when the code point is not a byte symbol.
int symbol_to_byte(char32_t symbol);
// Raw bytes of a byte-level token string ("Ġhello" -> " hello"); false when it has a code point
// that is not a byte symbol.
bool byte_level_to_bytes(std::string_view token, std::string& bytes);
std::string bytes_to_byte_level(std::string_view bytes);

// Merge table: (left id, right id) -> (rank, merged id), open addressing on a 64-bit key.
class MergeTable {
 public:
  void reserve(size_t n);
  // False when the pair is already present (the first rank wins, as in HF).
  bool insert(int32_t left, int32_t right, int32_t rank, int32_t merged);
  // Rank of the pair, or -1; `merged` receives the merged id.
  int32_t find(int32_t left, int32_t right, int32_t& merged) const {
    if (slots_.empty()) return -1;
    uint64_t key = pack(left, right);
    for (size_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == key) {
        merged = s.merged;
        return s.rank;
      }
      if (s.key == kEmpty) return -1;
    }
  }
  size_t size() const { return count_; }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t(0);
  struct Slot {
    uint64_t key = kEmpty;
    int32_t rank = -1, merged = -1;
  };
  static uint64_t pack(int32_t l, int32_t r) { return (uint64_t(uint32_t(l)) << 32) | uint32_t(r); }
  static size_t hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return size_t(k);
  }
  void grow();
  std::vector<Slot> slots_;
  size_t mask_ = 0, count_ = 0;
};

// Encodes one pre-token (raw bytes) by repeatedly merging the adjacent pair of lowest rank,
// leftmost first, which is what GPT-2's bpe() and HF's BPE model both compute.
// `byte_ids` maps each byte to the id of its one-symbol token. Appends ids to `out`.
void bpe_merge_word(std::string_view bytes, const int32_t (&byte_ids)[256], const MergeTable& merges,
                    std::vector<int32_t>& out);

}  // namespace attnlab::data
