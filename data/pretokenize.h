#pragma once
// Pre-tokenisation: a regex (PCRE2, UTF mode with Unicode properties, JIT) cuts text into the
// pieces that BPE then encodes separately. Every match is a piece and so is every stretch between
// matches (the "Isolated" behaviour of HF's Split pre-tokenizer), so the pieces tile the text.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace attnlab::data {

// GPT-2's pattern (openai/gpt-2 encoder.py): case-sensitive English contractions, optional-space
// letter / digit / symbol runs, and whitespace runs that leave their last space to the next word.
inline constexpr const char* kGpt2SplitPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Qwen2/2.5/3's pattern (cl100k family), as their tokenizer.json gives it.
inline constexpr const char* kQwenSplitPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

class RegexSplitter {
 public:
  // `where` names the pattern's origin (file and key) in the error a bad pattern raises.
  RegexSplitter(const std::string& pattern, const std::string& where);
  ~RegexSplitter();
  RegexSplitter(RegexSplitter&&) noexcept;
  RegexSplitter& operator=(RegexSplitter&&) noexcept;

  // Appends the pieces of `text` (valid UTF-8, which the caller has checked) as [begin, end)
  // byte ranges relative to `text`.
  void split(std::string_view text, std::vector<std::pair<size_t, size_t>>& pieces) const;
  const std::string& pattern() const { return pattern_; }

 private:
  struct Compiled;
  std::string pattern_;
  std::unique_ptr<Compiled> compiled_;
};

}  // namespace attnlab::data
