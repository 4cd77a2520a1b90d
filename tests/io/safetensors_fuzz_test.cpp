// Seeded mutation fuzzing of the safetensors reader: every mutated file must either load with
// every tensor inside the file, or be refused with an attnlab::Error naming the file. Any other
// exception, a crash, or an out-of-bounds read (under a sanitizer) fails.
// ATTNLAB_FUZZ_CASES=N sets the number of cases (default 10000); case i uses seed i, so a failing
// case is reproduced by its number alone.
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <typeinfo>

#include <nlohmann/json.hpp>

#include "core/io/safetensors.h"
#include "io/io_test_util.h"
#include "support/testing.h"

namespace attnlab::test {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes valid_base_file() {
  // Mixed dtypes, a 5-dim tensor, a scalar, an empty tensor, metadata: every reader path.
  const std::string header =
      R"({"__metadata__":{"format":"pt","note":"fuzz base"},)"
      R"("w64":{"dtype":"F64","shape":[2,2],"data_offsets":[0,32]},)"
      R"("w32":{"dtype":"F32","shape":[3,2],"data_offsets":[32,56]},)"
      R"("ids":{"dtype":"I64","shape":[2],"data_offsets":[56,72]},)"
      R"("five":{"dtype":"F32","shape":[1,1,2,1,2],"data_offsets":[72,88]},)"
      R"("s":{"dtype":"F32","shape":[],"data_offsets":[88,92]},)"
      R"("bf":{"dtype":"BF16","shape":[5],"data_offsets":[92,102]},)"
      R"("h":{"dtype":"F16","shape":[3],"data_offsets":[102,108]},)"
      R"("e":{"dtype":"BF16","shape":[0,7],"data_offsets":[108,108]},)"
      R"("m":{"dtype":"BOOL","shape":[4],"data_offsets":[108,112]},)"
      R"("u":{"dtype":"U8","shape":[2,2],"data_offsets":[112,116]}})";
  std::string padded = header;
  while (padded.size() % 8) padded += ' ';
  Bytes data(116);
  for (size_t i = 0; i < data.size(); ++i) data[i] = uint8_t(0x3c + 7 * i);
  return assemble_safetensors(padded, data);
}

uint64_t header_len(const Bytes& b) {
  if (b.size() < 8) return 0;
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | b[size_t(i)];
  return n;
}
void set_header_len(Bytes& b, uint64_t n) {
  if (b.size() < 8) return;
  for (int i = 0; i < 8; ++i) b[size_t(i)] = uint8_t(n >> (8 * i));
}
// The header region as currently described, clamped to the file.
std::pair<size_t, size_t> header_span(const Bytes& b) {
  if (b.size() <= 8) return {8, 8};
  uint64_t n = std::min<uint64_t>(header_len(b), b.size() - 8);
  return {8, 8 + size_t(n)};
}

class Mutator {
 public:
  explicit Mutator(uint64_t seed) : g_(seed) {}

  void mutate(Bytes& b) {
    const int rounds = 1 + int(pick(3));
    for (int r = 0; r < rounds; ++r) {
      switch (pick(12)) {
        case 0: flip_bit(b); break;
        case 1: set_byte(b); break;
        case 2: truncate(b); break;
        case 3: edit_header_length(b); break;
        case 4: case 5: edit_number(b); break;
        case 6: edit_string(b); break;
        case 7: edit_structure(b); break;
        case 8: insert_bytes(b); break;
        case 9: case 10: case 11: edit_json_tree(b); break;
      }
    }
  }

 private:
  uint64_t pick(uint64_t n) { return n ? g_() % n : 0; }
  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(g_) < p; }
  // Position biased towards the header, where the interesting decisions are.
  size_t position(const Bytes& b) {
    auto [h0, h1] = header_span(b);
    if (h1 > h0 && chance(0.8)) return h0 + pick(h1 - h0);
    return pick(b.size());
  }
  // Replace b[at, at+len) by `text` inside the header, keeping the length field honest most of
  // the time so the JSON parser and the semantic checks see the edit.
  void splice_header(Bytes& b, size_t at, size_t len, const std::string& text) {
    const uint64_t n = header_len(b);
    b.erase(b.begin() + long(at), b.begin() + long(at + len));
    b.insert(b.begin() + long(at), text.begin(), text.end());
    if (chance(0.85)) set_header_len(b, n + text.size() - len);
  }

  void flip_bit(Bytes& b) {
    if (!b.empty()) b[position(b)] ^= uint8_t(1u << pick(8));
  }
  void set_byte(Bytes& b) {
    if (!b.empty()) b[position(b)] = uint8_t(g_());
  }
  void truncate(Bytes& b) { b.resize(pick(b.size() + 1)); }
  void edit_header_length(Bytes& b) {
    const uint64_t n = header_len(b);
    switch (pick(6)) {
      case 0: set_header_len(b, n + 1 + pick(16)); break;
      case 1: set_header_len(b, n - 1 - pick(std::min<uint64_t>(n, 16))); break;
      case 2: set_header_len(b, g_()); break;
      case 3: set_header_len(b, pick(b.size() + 1)); break;
      case 4: set_header_len(b, uint64_t(1) << pick(64)); break;
      case 5: set_header_len(b, 0); break;
    }
  }
  void edit_number(Bytes& b) {
    auto [h0, h1] = header_span(b);
    std::vector<std::pair<size_t, size_t>> runs;  // digit runs (with a leading '-')
    for (size_t i = h0; i < h1;) {
      if (std::isdigit(b[i]) || b[i] == '-') {
        size_t j = i + 1;
        while (j < h1 && std::isdigit(b[j])) ++j;
        runs.push_back({i, j - i});
        i = j;
      } else {
        ++i;
      }
    }
    if (runs.empty()) return set_byte(b);
    auto [at, len] = runs[pick(runs.size())];
    static const char* specials[] = {"0", "-1", "1", "18446744073709551615", "18446744073709551616",
                                     "9223372036854775807", "9223372036854775808", "4294967296", "1.5", "1e3",
                                     "-0", "00", "99999999999999999999999", "", "null", "\"7\""};
    std::string text;
    if (chance(0.4)) text = specials[pick(std::size(specials))];
    else {
      long long v = std::atoll(std::string(b.begin() + long(at), b.begin() + long(at + len)).c_str());
      v = std::clamp(v, -(1LL << 62), 1LL << 62);  // atoll saturates on long runs; keep v + delta defined
      text = std::to_string(v + (long long)pick(33) - 16);
    }
    splice_header(b, at, len, text);
  }
  void edit_string(Bytes& b) {
    auto [h0, h1] = header_span(b);
    std::vector<size_t> quotes;
    for (size_t i = h0; i < h1; ++i)
      if (b[i] == '"') quotes.push_back(i);
    if (quotes.size() < 2) return set_byte(b);
    const size_t q = pick(quotes.size() - 1);
    const size_t at = quotes[q] + 1, len = quotes[q + 1] - at;
    static const char* replacements[] = {"", "F32", "BF16", "F16", "F64", "I64", "U8", "BOOL", "XX", "__metadata__",
                                         "w32", "dtype", "shape", "data_offsets", "w64", "\\u0000", "\\ud800",
                                         "\xff\xfe", "a\nb", "\\\""};
    std::string text;
    if (chance(0.8)) text = replacements[pick(std::size(replacements))];
    else
      for (uint64_t k = pick(6); k > 0; --k) text += char(g_());
    splice_header(b, at, len, text);
  }
  void edit_structure(Bytes& b) {
    auto [h0, h1] = header_span(b);
    static const std::string structural = "{}[],:\"";
    std::vector<size_t> spots;
    for (size_t i = h0; i < h1; ++i)
      if (structural.find(char(b[i])) != std::string::npos) spots.push_back(i);
    if (spots.empty()) return set_byte(b);
    const size_t at = spots[pick(spots.size())];
    const std::string other(1, structural[pick(structural.size())]);
    switch (pick(4)) {
      case 0: splice_header(b, at, 1, ""); break;                            // delete
      case 1: splice_header(b, at, 0, std::string(1, char(b[at]))); break;   // duplicate
      case 2: splice_header(b, at, 1, other); break;                         // replace
      case 3: splice_header(b, at, 0, other); break;                         // insert
    }
  }
  // Parse the header, change one value, re-serialise: valid JSON with a semantic change, which
  // reaches the checks behind the parser far more often than byte edits do.
  void edit_json_tree(Bytes& b) {
    auto [h0, h1] = header_span(b);
    nlohmann::json j = nlohmann::json::parse(b.begin() + long(h0), b.begin() + long(h1), nullptr, false);
    if (!j.is_object() || j.empty()) return set_byte(b);
    auto it = j.begin();
    std::advance(it, long(pick(j.size())));
    nlohmann::json& entry = it.value();
    static const char* fields[] = {"dtype", "shape", "data_offsets"};
    static const char* dtypes[] = {"F32", "F16", "BF16", "F64", "I64", "I32", "U8", "BOOL", "F8_E4M3", "U64", "C64"};
    const char* field = fields[pick(3)];
    const auto big = [&] { return uint64_t(1) << pick(64); };
    if (it.key() == "__metadata__" && entry.is_object()) {
      if (chance(0.5)) entry["k" + std::to_string(pick(4))] = pick(2) ? nlohmann::json(int(pick(9))) : nlohmann::json("v");
      else entry = nlohmann::json::array({"pt"});
    } else if (!entry.is_object()) {
      entry = nlohmann::json::object();
    } else {
      switch (pick(10)) {
        case 0: entry.erase(field); break;
        case 1: entry["dtype"] = dtypes[pick(std::size(dtypes))]; break;
        case 2: if (entry["shape"].is_array() && !entry["shape"].empty()) entry["shape"][pick(entry["shape"].size())] = pick(2) ? pick(9) : big(); break;
        case 3: entry["shape"].push_back(pick(4)); break;
        case 4: entry["data_offsets"] = {pick(130), pick(130)}; break;
        case 5: entry["data_offsets"] = {big(), big()}; break;
        case 6: entry[field] = nullptr; break;
        case 7: j["extra" + std::to_string(pick(3))] = {{"dtype", dtypes[pick(4)]}, {"shape", {pick(9)}},
                                                      {"data_offsets", {pick(120), pick(120)}}}; break;
        case 8: {  // shift by a few bytes, size kept: overlaps a neighbour or leaves the data section
          auto& off = entry["data_offsets"];
          if (off.is_array() && off.size() == 2 && off[0].is_number_unsigned() && off[1].is_number_unsigned()) {
            const uint64_t shift = 1 + pick(12);
            const bool down = pick(2) && off[0].get<uint64_t>() >= shift;
            off[0] = down ? off[0].get<uint64_t>() - shift : off[0].get<uint64_t>() + shift;
            off[1] = down ? off[1].get<uint64_t>() - shift : off[1].get<uint64_t>() + shift;
          }
          break;
        }
        case 9: {  // take another tensor's place
          auto other = j.begin();
          std::advance(other, long(pick(j.size())));
          if (other.value().is_object() && other.value().contains("data_offsets")) {
            const nlohmann::json copy = other.value();
            entry = copy;
          }
          break;
        }
      }
    }
    std::string text = j.dump();
    while (chance(0.7) && text.size() % 8) text += ' ';
    splice_header(b, h0, h1 - h0, text);
    set_header_len(b, text.size());
  }
  void insert_bytes(Bytes& b) {
    const size_t at = b.empty() ? 0 : pick(b.size() + 1);
    Bytes extra(1 + pick(12));
    for (auto& x : extra) x = uint8_t(g_());
    b.insert(b.begin() + long(at), extra.begin(), extra.end());
  }

  std::mt19937_64 g_;
};

// Everything a loaded file lets a caller reach must lie inside the file's bytes.
void check_loaded(const SafetensorsFile& f, uint64_t* touched) {
  for (const auto& name : f.names()) {
    const SafetensorInfo& ti = f.info(name);
    ASSERT_LE(ti.begin, ti.end);
    ASSERT_LE(ti.file_offset + ti.bytes(), f.file_size()) << name;
    ASSERT_EQ(ti.file_offset, f.data_offset() + ti.begin);
    ASSERT_EQ(uint64_t(ti.numel()) * st_dtype_size(ti.dtype), ti.bytes()) << name;
    const uint8_t* p = f.raw(name);
    for (uint64_t k = 0; k < ti.bytes(); ++k) *touched += p[k];  // a sanitizer flags any stray read
    const auto dt = to_attnlab_dtype(ti.dtype);
    const bool viewable = dt && ti.shape.size() <= size_t(Tensor::kMaxDims) && ti.file_offset % dtype_size(*dt) == 0;
    if (viewable) {
      Tensor v = f.view(name);
      ASSERT_EQ(static_cast<const uint8_t*>(v.data), p);
      ASSERT_EQ(v.bytes(), ti.bytes());
    } else {
      ASSERT_THROW(f.view(name), Error);
    }
    if (ti.dtype == StDType::F32 || ti.dtype == StDType::BF16 || ti.dtype == StDType::F16 || ti.dtype == StDType::F64) {
      ASSERT_EQ(read_tensor_f64(f, name).size(), size_t(ti.numel()));
    }
  }
  for (const auto& [k, v] : f.metadata()) *touched += k.size() + v.size();
}

}  // namespace

TEST(SafetensorsFuzz, MutatedFilesLoadInBoundsOrThrowAttnlabError) {
  int64_t cases = 10000;
  if (const char* env = std::getenv("ATTNLAB_FUZZ_CASES")) cases = std::max<int64_t>(1, std::atoll(env));
  const Bytes base = valid_base_file();
  ASSERT_NO_THROW(SafetensorsFile::from_bytes(base, "base.safetensors"));
  ScratchDir dir;
  const std::string disk_path = dir.file("fuzz.safetensors");

  int64_t loaded = 0, refused = 0;
  uint64_t touched = 0;
  // Each class of refusal, by a phrase of its message: the summary shows what the mutations reach.
  const std::vector<std::pair<const char*, const char*>> classes = {
      {"fewer than the 8-byte", "file shorter than 8 bytes"},
      {"is absurd", "absurd header length"},
      {"runs past the end", "header length past the end"},
      {"does not start with '{'", "header not starting with '{'"},
      {"not valid JSON", "header not JSON"},
      {"appears twice", "duplicate key"},
      {"strings", "__metadata__ not an object of strings"},
      {"entry ", "entry not an object / lacking fields"},
      {"dtype", "dtype mistyped or unknown"},
      {"shape is a JSON", "shape not an array"},
      {"shape[", "shape element not a non-negative integer"},
      {"64 bits", "shape product overflow"},
      {"data_offsets is", "data_offsets not [begin, end]"},
      {"begin > end", "begin > end"},
      {"beyond the data section", "end beyond the data section"},
      {"bytes but shape", "byte size != shape x dtype"},
      {"overlap", "overlapping tensors"},
  };
  std::vector<int64_t> class_count(classes.size(), 0);
  int64_t unclassified = 0;
  std::string first_unclassified;
  for (int64_t i = 0; i < cases; ++i) {
    Bytes b = base;
    Mutator(uint64_t(i)).mutate(b);
    // Every 16th case goes through the file + mmap path; the rest stay in memory (faster, and
    // heap buffers of the exact size let a sanitizer see any read past the end).
    const bool on_disk = i % 16 == 0;
    const std::string label = on_disk ? disk_path : "case-" + std::to_string(i) + ".safetensors";
    if (on_disk) write_bytes(disk_path, b);
    try {
      SafetensorsFile f = on_disk ? SafetensorsFile::open(disk_path) : SafetensorsFile::from_bytes(b, label);
      check_loaded(f, &touched);
      if (::testing::Test::HasFatalFailure()) {
        ADD_FAILURE() << "case " << i << " loaded with out-of-range tensors";
        return;
      }
      ++loaded;
    } catch (const Error& e) {
      const std::string msg = e.what();
      if (msg.find("'" + label + "'") == std::string::npos) {
        ADD_FAILURE() << "case " << i << ": error does not name the file: " << msg;
        return;
      }
      // Classify by the problem, which follows "<file>': <place>: ".
      const std::string problem = msg.substr(std::min(msg.size(), msg.find("': ") + 3));
      const std::string after_place = problem.substr(std::min(problem.size(), problem.find(": ") + 2));
      size_t k = 0;
      while (k < classes.size() && after_place.find(classes[k].first) == std::string::npos) ++k;
      if (k < classes.size()) ++class_count[k];
      else if (unclassified++ == 0) first_unclassified = msg;
      ++refused;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "case " << i << ": non-attnlab exception " << typeid(e).name() << ": " << e.what();
      return;
    }
  }
  std::printf("[fuzz] %lld cases: %lld loaded, %lld refused (checksum %llu)\n", (long long)cases, (long long)loaded,
              (long long)refused, (unsigned long long)touched);
  for (size_t k = 0; k < classes.size(); ++k)
    std::printf("[fuzz]   %6lld  %s\n", (long long)class_count[k], classes[k].second);
  std::printf("[fuzz]   %6lld  other%s%s\n", (long long)unclassified, unclassified ? ", first: " : "",
              first_unclassified.c_str());
  EXPECT_EQ(loaded + refused, cases);
  if (cases >= 1000) {
    // The mutations must exercise both outcomes, and many distinct refusals, to mean anything.
    EXPECT_GT(loaded, cases / 100);
    EXPECT_GT(refused, cases / 2);
  }
  if (cases >= 10000) {  // the default run reaches every class of malformed file
    for (size_t k = 0; k < classes.size(); ++k) EXPECT_GT(class_count[k], 0) << classes[k].second;
  }
}

}  // namespace attnlab::test
