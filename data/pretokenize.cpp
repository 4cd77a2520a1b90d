#include "data/pretokenize.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "data/input_check.h"

namespace attnlab::data {

struct RegexSplitter::Compiled {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Compiled() {
    if (code) pcre2_code_free(code);
  }
};

RegexSplitter::RegexSplitter(const std::string& pattern, const std::string& where)
    : pattern_(pattern), compiled_(std::make_unique<Compiled>()) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  compiled_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                  PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
  if (!compiled_->code) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof(message));
    FAIL_WITH(where, ": the pre-tokenizer regex does not compile (PCRE2: ", reinterpret_cast<char*>(message),
              " at offset ", error_offset, "): ", pattern, "; fix the pattern");
  }
  compiled_->jit = pcre2_jit_compile(compiled_->code, PCRE2_JIT_COMPLETE) == 0;
}

RegexSplitter::~RegexSplitter() = default;
RegexSplitter::RegexSplitter(RegexSplitter&&) noexcept = default;
RegexSplitter& RegexSplitter::operator=(RegexSplitter&&) noexcept = default;

void RegexSplitter::split(std::string_view text, std::vector<std::pair<size_t, size_t>>& pieces) const {
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(compiled_->code, nullptr);
  CHECK(md != nullptr, "out of memory creating PCRE2 match data");
  auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0, emitted = 0;
  while (start < text.size()) {
    // NO_UTF_CHECK: the caller validated the text once; without it PCRE2 would re-check the whole
    // subject on every call, which is quadratic in the text length.
    int rc = pcre2_match(compiled_->code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)  // a pathological run; the interpreter has no such limit
      rc = pcre2_match(compiled_->code, subject, text.size(), start, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      pcre2_match_data_free(md);
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof(message));
      FAIL_WITH("pre-tokenizer regex failed at byte ", start, ": ", reinterpret_cast<char*>(message));
    }
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    size_t m_begin = ov[0], m_end = ov[1];
    if (m_end == m_begin) {  // an empty match yields no piece: step over one code point
      start = m_begin + 1;
      while (start < text.size() && (uint8_t(text[start]) & 0xC0) == 0x80) ++start;
      continue;
    }
    if (m_begin > emitted) pieces.emplace_back(emitted, m_begin);
    pieces.emplace_back(m_begin, m_end);
    emitted = start = m_end;
  }
  if (emitted < text.size()) pieces.emplace_back(emitted, text.size());
  pcre2_match_data_free(md);
}

}  // namespace attnlab::data
