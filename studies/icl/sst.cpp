#include "studies/icl/sst.h"

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "data/corpus.h"
#include "data/input_check.h"
#include "data/sft.h"

namespace attnlab::icl {

namespace {

namespace fs = std::filesystem;

std::string keys_of(const nlohmann::json& j) {
  std::string keys;
  for (auto& [k, v] : j.items()) keys += (keys.empty() ? "\"" : ", \"") + k + "\"";
  return keys.empty() ? "none" : keys;
}

// What the user should check when a field is missing: the likely mix-up of layouts.
const char* layout_hint(SstLayout layout) {
  switch (layout) {
    case SstLayout::sst2_tsv: return "GLUE's SST-2 .tsv files have the header row \"sentence<TAB>label\"";
    case SstLayout::sst2_jsonl: return "glue/sst2 JSON lines have \"idx\", \"sentence\" and \"label\"; for SetFit/sst5 use --data sst5";
    case SstLayout::sst5_jsonl: return "SetFit/sst5 JSON lines have \"text\", \"label\" and \"label_text\"; for glue/sst2 use --data sst2";
  }
  return "";
}

const nlohmann::json& field(const nlohmann::json& rec, const char* name, const std::string& where, SstLayout layout) {
  auto it = rec.find(name);
  if (it == rec.end())
    FAIL_WITH(where, ": ", sst_layout_name(layout), " record has no \"", name, "\" field (it has ", keys_of(rec), "); ",
              layout_hint(layout));
  return *it;
}

std::string text_field(const nlohmann::json& rec, const char* name, const std::string& where, SstLayout layout) {
  const nlohmann::json& v = field(rec, name, where, layout);
  INPUT_CHECK(v.is_string(), where, ": \"", name, "\" is a JSON ", v.type_name(), ", expected the sentence as a string");
  return v.get<std::string>();
}

int label_field(const nlohmann::json& rec, const std::string& where, SstLayout layout, int classes) {
  const nlohmann::json& v = field(rec, "label", where, layout);
  int64_t label = -2;
  if (v.is_number_integer()) {
    label = v.get<int64_t>();
  } else if (v.is_string()) {  // TSV cells are strings
    const std::string s = v.get<std::string>();
    const bool digits = !s.empty() && s.size() < 10 && s.find_first_not_of("0123456789") == std::string::npos;
    INPUT_CHECK(digits || s == "-1", where, ": label \"", s, "\" is not a class number (0-", classes - 1,
                "); fix the row or remove it");
    label = std::stoll(s);
  } else {
    FAIL_WITH(where, ": label is a JSON ", v.type_name(), ", expected a class number 0-", classes - 1);
  }
  INPUT_CHECK(label != -1, where, ": label -1 marks an unlabelled test split; evaluate on the validation split instead");
  INPUT_CHECK(label >= 0 && label < classes, where, ": label ", label, " is not an SST-", classes, " class (0-", classes - 1,
              ")", classes == 2 && label < 5 ? "; is this an SST-5 file? use --data sst5" : "");
  return int(label);
}

bool folder_holds(const std::string& path, const char* ext) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec))
    if (it->is_regular_file(ec) && it->path().extension() == ext) return true;
  return false;
}

}  // namespace

SstTask parse_sst_task(const std::string& s) {
  if (s == "sst2") return SstTask::sst2;
  if (s == "sst5") return SstTask::sst5;
  FAIL_WITH("unknown data set '", s, "'; use sst2 or sst5");
}

const char* sst_task_name(SstTask t) { return t == SstTask::sst2 ? "sst2" : "sst5"; }
int sst_classes(SstTask t) { return t == SstTask::sst2 ? 2 : 5; }

const char* sst_layout_name(SstLayout l) {
  switch (l) {
    case SstLayout::sst2_tsv: return "SST-2 TSV";
    case SstLayout::sst2_jsonl: return "SST-2 JSONL";
    case SstLayout::sst5_jsonl: return "SST-5 JSONL";
  }
  return "?";
}

SstLayout sst_layout_for(SstTask task, const std::string& path) {
  std::error_code ec;
  INPUT_CHECK(fs::exists(path, ec), path, ": no such file or folder; give the SST-", sst_classes(task),
              " split file (or a folder of them)");
  const bool folder = fs::is_directory(path, ec);
  const std::string ext = fs::path(path).extension().string();
  const bool tsv = folder ? folder_holds(path, ".tsv") : ext == ".tsv";
  const bool jsonl = folder ? folder_holds(path, ".jsonl") : ext == ".jsonl";
  if (task == SstTask::sst2 && tsv && !jsonl) return SstLayout::sst2_tsv;
  if (task == SstTask::sst2 && jsonl && !tsv) return SstLayout::sst2_jsonl;
  if (task == SstTask::sst5 && jsonl && !tsv) return SstLayout::sst5_jsonl;
  if (tsv && jsonl) FAIL_WITH(path, ": the folder holds both .tsv and .jsonl files; point at one split file");
  if (task == SstTask::sst5 && tsv)
    FAIL_WITH(path, ": SST-5 is read from SetFit/sst5 JSON lines (.jsonl), not TSV; convert the file or use --data sst2");
  FAIL_WITH(path, ": expected ", task == SstTask::sst2 ? "a GLUE .tsv or a glue/sst2 .jsonl file" : "a SetFit/sst5 .jsonl file",
            folder ? " in the folder" : " (name it with that extension)");
}

std::vector<SstRecord> read_sst(const std::string& path, SstLayout layout) {
  data::CorpusOptions src;
  src.path = path;
  src.format = layout == SstLayout::sst2_tsv ? data::CorpusFormat::tsv : data::CorpusFormat::jsonl;
  src.tsv_header = true;
  const int classes = layout == SstLayout::sst5_jsonl ? 5 : 2;
  std::vector<SstRecord> out;
  std::map<int64_t, std::string> seen;  // idx -> FILE:LINE, for the hub layout
  data::for_each_record(src, [&](const nlohmann::json& rec, const std::string& where) {
    SstRecord r;
    r.idx = int64_t(out.size());
    r.text = text_field(rec, layout == SstLayout::sst5_jsonl ? "text" : "sentence", where, layout);
    r.label = label_field(rec, where, layout, classes);
    if (layout == SstLayout::sst2_jsonl) {
      const nlohmann::json& idx = field(rec, "idx", where, layout);
      INPUT_CHECK(idx.is_number_integer() && idx.get<int64_t>() >= 0, where, ": \"idx\" is ", idx.dump(),
                  ", expected a non-negative integer (the row's identity in the split)");
      r.idx = idx.get<int64_t>();
      auto [it, fresh] = seen.emplace(r.idx, where);
      INPUT_CHECK(fresh, where, ": idx ", r.idx, " was already used at ", it->second,
                  "; each row needs its own idx (are two splits concatenated?)");
    }
    if (layout == SstLayout::sst5_jsonl && rec.contains("label_text"))
      INPUT_CHECK(rec["label_text"].is_string(), where, ": \"label_text\" is a JSON ", rec["label_text"].type_name(),
                  ", expected a string such as \"very positive\"");
    out.push_back(std::move(r));
  });
  INPUT_CHECK(!out.empty(), path, ": no records; is it the right split file?");
  return out;
}

std::vector<SstRecord> read_sst(const std::string& path, SstTask task) {
  return read_sst(path, sst_layout_for(task, path));
}

const std::string& label_word(SstTask task, int label) { return data::sst_label_word(sst_classes(task), label); }

std::string demonstration_text(SstTask task, const SstRecord& r) {
  return "Sentence: " + r.text + " Label: " + label_word(task, r.label) + " ";
}

std::string icl_context(SstTask task, std::span<const SstRecord> demonstrations) {
  std::string context;
  for (const SstRecord& r : demonstrations) context += demonstration_text(task, r);
  return context;
}

std::string query_prompt(const std::string& context, const std::string& text) {
  return context + "Sentence: " + text + " Label:";
}

std::string ft_record_text(SstTask task, const SstRecord& r) {
  return "Sentence: " + r.text + " Label: " + label_word(task, r.label);
}

std::vector<SstRecord> select_records(std::span<const SstRecord> records, std::span<const int64_t> indices) {
  std::vector<SstRecord> out;
  out.reserve(indices.size());
  for (int64_t i : indices) {
    INPUT_CHECK(i >= 0 && i < int64_t(records.size()), "demonstration index ", i, " is outside the training set of ",
                records.size(), " records; were the indices drawn for another split?");
    out.push_back(records[size_t(i)]);
  }
  return out;
}

namespace {

// The code point at s[i] and its byte length; invalid UTF-8 reads as one non-space byte.
std::pair<uint32_t, size_t> code_point_at(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return uint8_t(s[k]); };
  const uint8_t c = b(i);
  if (c < 0x80) return {c, 1};
  const size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
  if (len == 1 || i + len > s.size()) return {0xFFFD, 1};
  uint32_t cp = c & (0x7F >> len);
  for (size_t k = 1; k < len; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return {0xFFFD, 1};
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  return {cp, len};
}

// Python's str.isspace(): Unicode White_Space plus the bidi classes WS/B/S (U+001C-U+001F).
bool python_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// Lower-cases ASCII; non-ASCII bytes stay as they are. The label words are ASCII and no non-ASCII
// character lower-cases to an ASCII letter of theirs (U+212A KELVIN SIGN -> 'k' is the only
// non-ASCII-to-ASCII case, and no label word has a 'k'), so this matches Python's lower() here.
char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; }

}  // namespace

std::string_view python_strip(std::string_view s) {
  size_t begin = 0;
  while (begin < s.size()) {
    auto [cp, len] = code_point_at(s, begin);
    if (!python_space(cp)) break;
    begin += len;
  }
  size_t end = s.size();
  while (end > begin) {
    size_t start = end - 1;  // back to the lead byte of the last code point
    while (start > begin && (uint8_t(s[start]) & 0xC0) == 0x80 && end - start < 4) --start;
    auto [cp, len] = code_point_at(s, start);
    if (start + len != end) {  // not a whole code point: the byte stands alone
      start = end - 1;
      cp = 0xFFFD;
    }
    if (!python_space(cp)) break;
    end = start;
  }
  return s.substr(begin, end - begin);
}

bool label_matches(std::string_view generated, SstTask task, int gold_label) {
  const std::string_view got = python_strip(generated);
  const std::string& want = label_word(task, gold_label);
  if (got.size() != want.size()) return false;
  for (size_t i = 0; i < got.size(); ++i)
    if (ascii_lower(got[i]) != want[i]) return false;
  return true;
}

}  // namespace attnlab::icl
