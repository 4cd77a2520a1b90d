// NFC: against Node's String.prototype.normalize (goldens) and, when the Debian package
// unicode-data is installed, against every case of the Unicode NormalizationTest.txt.
#include <gtest/gtest.h>

#include <cstdio>
#include <set>
#include <sstream>

#include "data/asset_cache.h"
#include "data/unicode_nfc.h"

namespace attnlab::test {
namespace {

TEST(UnicodeNfc, MatchesNodeNormalizeOnGoldens) {
  auto lines = golden_lines("nfc.txt");
  ASSERT_GE(lines.size(), 100u);
  size_t changed = 0;
  for (auto& line : lines) {
    auto pair = nlohmann::json::parse(line);
    std::string in = pair[0], want = pair[1];
    EXPECT_EQ(data::to_nfc(in), want) << line;
    changed += in != want;
  }
  EXPECT_GE(changed, 20u) << "the goldens should exercise composition, not only unchanged text";
}

std::string from_hex_list(const std::string& field) {
  std::istringstream ss(field);
  std::string hex, out;
  while (ss >> hex) data::append_utf8(out, char32_t(std::stoul(hex, nullptr, 16)));
  return out;
}

TEST(UnicodeNfc, PassesUnicodeNormalizationTest) {
  const char* path = "/usr/share/unicode/NormalizationTest.txt.bz2";
  std::FILE* probe = std::fopen(path, "rb");
  if (!probe) GTEST_SKIP() << path << " not found; install it with: sudo apt-get install -y unicode-data bzip2";
  std::fclose(probe);
  std::FILE* pipe = popen((std::string("bzcat ") + path).c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string text;
  char buf[1 << 16];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;) text.append(buf, n);
  if (pclose(pipe) != 0 || text.empty()) GTEST_SKIP() << "cannot decompress " << path << " (is bzip2 installed?)";

  std::istringstream in(text);
  std::string line;
  bool part1 = false;
  std::set<char32_t> listed_in_part1;
  size_t cases = 0, failures = 0;
  while (std::getline(in, line)) {
    if (line.rfind("@Part", 0) == 0) part1 = line.rfind("@Part1", 0) == 0;
    if (line.empty() || line[0] == '#' || line[0] == '@') continue;
    std::vector<std::string> c;
    std::istringstream cols(line);
    for (std::string col; std::getline(cols, col, ';') && c.size() < 5;) c.push_back(from_hex_list(col));
    ASSERT_EQ(c.size(), 5u) << line;
    if (part1) {
      size_t pos = 0;
      listed_in_part1.insert(char32_t(data::decode_utf8(c[0], pos)));
    }
    // NFC conformance: c2 == NFC(c1) == NFC(c2) == NFC(c3), c4 == NFC(c4) == NFC(c5).
    const std::pair<int, int> checks[] = {{0, 1}, {1, 1}, {2, 1}, {3, 3}, {4, 3}};
    for (auto [src, want] : checks) {
      ++cases;
      if (data::to_nfc(c[size_t(src)]) != c[size_t(want)] && ++failures <= 10) ADD_FAILURE() << "NFC fails: " << line;
    }
  }
  EXPECT_GT(cases, 90000u);
  EXPECT_EQ(failures, 0u);
  // Every code point not listed in part 1 is its own NFC.
  size_t invariance_failures = 0;
  for (char32_t cp = 0; cp < 0x110000; ++cp) {
    if ((cp >= 0xD800 && cp <= 0xDFFF) || listed_in_part1.count(cp)) continue;
    std::string s;
    data::append_utf8(s, cp);
    if (data::to_nfc(s) != s && ++invariance_failures <= 10) ADD_FAILURE() << "U+" << std::hex << uint32_t(cp);
  }
  EXPECT_EQ(invariance_failures, 0u);
}

TEST(UnicodeNfc, RejectsInvalidUtf8WithItsOffset) {
  for (std::string bad : {std::string("ab\xc3"), std::string("ab\xc0\xaf"), std::string("ab\xed\xa0\x80"),
                          std::string("ab\xf4\x90\x80\x80"), std::string("ab\x80")}) {
    EXPECT_EQ(data::find_invalid_utf8(bad), 2u);
    try {
      data::to_nfc(bad + "\xcc\x81");
      ADD_FAILURE() << "expected an error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("byte 2"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace attnlab::test
