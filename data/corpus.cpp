#include "data/corpus.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "data/input_check.h"

namespace attnlab::data {
namespace fs = std::filesystem;

namespace {

bool is_blank(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; });
}

void drop_bom(std::string& line) {
  if (line.size() >= 3 && uint8_t(line[0]) == 0xEF && uint8_t(line[1]) == 0xBB && uint8_t(line[2]) == 0xBF)
    line.erase(0, 3);
}

std::vector<std::string> extensions_of(CorpusFormat f) {
  switch (f) {
    case CorpusFormat::text: return {".txt"};
    case CorpusFormat::wikitext: return {".txt", ".raw", ".tokens"};
    case CorpusFormat::jsonl: return {".jsonl"};
    case CorpusFormat::tsv: return {".tsv"};
  }
  return {};
}

// Reads a file line by line; `fn(line, line_number)` with the newline removed.
void for_each_line(const std::string& file, const std::function<void(std::string&, uint64_t)>& fn) {
  std::ifstream in(file, std::ios::binary);
  INPUT_CHECK(in.good(), file, ": cannot open for reading");
  std::string line;
  uint64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (number == 1) drop_bom(line);
    fn(line, number);
  }
  INPUT_CHECK(in.eof(), file, ":", number + 1, ": read error");
}

std::string read_whole(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  INPUT_CHECK(in.good(), file, ": cannot open for reading");
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  drop_bom(s);
  return s;
}

DocumentUnit resolved_unit(const CorpusOptions& opt) {
  if (opt.unit != DocumentUnit::automatic) return opt.unit;
  return opt.format == CorpusFormat::wikitext ? DocumentUnit::article : DocumentUnit::file;
}

struct Emitter {
  const CorpusOptions& opt;
  const std::function<void(Document&&)>& fn;
  uint64_t count = 0;
  void operator()(std::string text, std::string origin) {
    if (!opt.keep_empty && is_blank(text)) return;
    ++count;
    fn(Document{std::move(text), std::move(origin)});
  }
};

void read_text_file(const std::string& file, DocumentUnit unit, Emitter& emit) {
  INPUT_CHECK(unit == DocumentUnit::file || unit == DocumentUnit::paragraph || unit == DocumentUnit::line,
              "format text reads one document per file, paragraph or line, not per ", document_unit_name(unit));
  if (unit == DocumentUnit::file) {
    emit(read_whole(file), file);
    return;
  }
  if (unit == DocumentUnit::line) {
    for_each_line(file, [&](std::string& line, uint64_t n) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      emit(std::move(line), file + ":" + std::to_string(n));
    });
    return;
  }
  std::string paragraph;
  uint64_t start = 0;
  auto flush = [&] {
    if (!paragraph.empty()) emit(std::move(paragraph), file + ":" + std::to_string(start));
    paragraph.clear();
  };
  for_each_line(file, [&](std::string& line, uint64_t n) {
    if (is_blank(line)) return flush();
    if (paragraph.empty()) start = n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    paragraph += line;
    paragraph += '\n';
  });
  flush();
}

void read_wikitext_file(const std::string& file, const CorpusOptions& opt, DocumentUnit unit, Emitter& emit) {
  INPUT_CHECK(unit == DocumentUnit::article || unit == DocumentUnit::line, "format wikitext reads one document per ",
              "article or per line, not per ", document_unit_name(unit));
  auto clean = [&](std::string& line) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (opt.wikitext_detokenize) line = wikitext_detokenize(line);
  };
  if (unit == DocumentUnit::line) {
    for_each_line(file, [&](std::string& line, uint64_t n) {
      clean(line);
      emit(std::move(line), file + ":" + std::to_string(n));
    });
    return;
  }
  std::string article;  // whole lines, each ending in '\n'
  size_t content_end = 0;  // end of the last non-blank line: trailing blank lines are cut
  uint64_t start = 0;
  auto flush = [&] {
    article.resize(content_end);
    if (!article.empty()) emit(std::move(article), file + ":" + std::to_string(start));
    article.clear();
    content_end = 0;
  };
  for_each_line(file, [&](std::string& line, uint64_t n) {
    clean(line);
    const bool blank = is_blank(line);
    if (is_wikitext_title(line)) flush();
    if (article.empty() && blank) return;  // leading blank lines
    if (article.empty()) start = n;
    article += line;
    article += '\n';
    if (!blank) content_end = article.size();
  });
  flush();
}

// Reads a TSV file: `on_header(names, where)` once (the first non-blank row, or "0", "1", ...
// when the file has no header row), then `on_row(cells, where)` for every data row, each with as
// many cells as the header.
void read_tsv(const std::string& file, bool has_header,
              const std::function<void(const std::vector<std::string>&, const std::string&)>& on_header,
              const std::function<void(std::vector<std::string>&, const std::string&)>& on_row) {
  std::vector<std::string> header;
  bool seen_first = false;
  for_each_line(file, [&](std::string& line, uint64_t n) {
    if (is_blank(line)) return;
    const std::string where = file + ":" + std::to_string(n);
    std::vector<std::string> cells = split_tsv_line(line);
    if (!seen_first) {
      seen_first = true;
      if (has_header) {
        header = std::move(cells);
        on_header(header, where);
        return;
      }
      for (size_t i = 0; i < cells.size(); ++i) header.push_back(std::to_string(i));
      on_header(header, where);
    }
    INPUT_CHECK(cells.size() == header.size(), where, ": ", cells.size(), " tab-separated column",
                cells.size() == 1 ? "" : "s", " where the ", has_header ? "header row" : "first row", " has ",
                header.size(), " (a stray or missing tab?); fix the row or remove it");
    on_row(cells, where);
  });
}

// Column index of `field` in a TSV header: a column name, or a 0-based index.
size_t tsv_column(const std::vector<std::string>& header, const std::string& field, const std::string& where,
                  bool has_header) {
  auto it = std::find(header.begin(), header.end(), field);
  if (it != header.end()) return size_t(it - header.begin());
  const bool digits =
      !field.empty() && field.size() < 9 && std::all_of(field.begin(), field.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (digits && std::stoul(field) < header.size()) return std::stoul(field);
  std::string names;
  for (auto& h : header) names += (names.empty() ? "'" : ", '") + h + "'";
  FAIL_WITH(where, ": no column '", field, "' in the ", has_header ? "header row" : "first row", " (columns: ", names,
            "); set data.text_field to a column name or a 0-based index",
            has_header ? "" : ", or set data.tsv_header: true when the first row names the columns");
}

}  // namespace

CorpusFormat parse_corpus_format(const std::string& s) {
  if (s == "text") return CorpusFormat::text;
  if (s == "wikitext") return CorpusFormat::wikitext;
  if (s == "jsonl") return CorpusFormat::jsonl;
  if (s == "tsv") return CorpusFormat::tsv;
  FAIL_WITH("unknown corpus format '", s, "'; use text, wikitext, jsonl or tsv");
}

const char* corpus_format_name(CorpusFormat f) {
  switch (f) {
    case CorpusFormat::text: return "text";
    case CorpusFormat::wikitext: return "wikitext";
    case CorpusFormat::jsonl: return "jsonl";
    case CorpusFormat::tsv: return "tsv";
  }
  return "?";
}

DocumentUnit parse_document_unit(const std::string& s) {
  if (s == "auto") return DocumentUnit::automatic;
  if (s == "file") return DocumentUnit::file;
  if (s == "article") return DocumentUnit::article;
  if (s == "paragraph") return DocumentUnit::paragraph;
  if (s == "line") return DocumentUnit::line;
  FAIL_WITH("unknown document unit '", s, "'; use auto, file, article, paragraph or line");
}

const char* document_unit_name(DocumentUnit u) {
  switch (u) {
    case DocumentUnit::automatic: return "auto";
    case DocumentUnit::file: return "file";
    case DocumentUnit::article: return "article";
    case DocumentUnit::paragraph: return "paragraph";
    case DocumentUnit::line: return "line";
  }
  return "?";
}

std::vector<std::string> corpus_files(const std::string& path, CorpusFormat format) {
  std::error_code ec;
  INPUT_CHECK(fs::exists(path, ec), path, ": no such file or folder (data.path)");
  if (!fs::is_directory(path, ec)) return {path};
  const auto exts = extensions_of(format);
  std::vector<std::string> files;
  for (auto it = fs::recursive_directory_iterator(path, fs::directory_options::follow_directory_symlink, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    const std::string ext = it->path().extension().string();
    if (std::find(exts.begin(), exts.end(), ext) != exts.end()) files.push_back(it->path().string());
  }
  INPUT_CHECK(!ec, path, ": cannot list the folder: ", ec.message());
  std::sort(files.begin(), files.end());
  std::string wanted;
  for (auto& e : exts) wanted += (wanted.empty() ? "*" : ", *") + e;
  INPUT_CHECK(!files.empty(), path, ": the folder holds no ", wanted, " file for format ", corpus_format_name(format));
  return files;
}

uint64_t for_each_record(const CorpusOptions& opt,
                         const std::function<void(const nlohmann::json&, const std::string&)>& fn) {
  INPUT_CHECK(opt.format == CorpusFormat::jsonl || opt.format == CorpusFormat::tsv, "records are read from jsonl or ",
              "tsv files, not ", corpus_format_name(opt.format));
  uint64_t count = 0;
  for (const std::string& file : corpus_files(opt.path, opt.format)) {
    if (opt.format == CorpusFormat::jsonl) {
      for_each_line(file, [&](std::string& line, uint64_t n) {
        if (is_blank(line)) return;
        const std::string where = file + ":" + std::to_string(n);
        nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
        INPUT_CHECK(!j.is_discarded(), where, ": not valid JSON (each line of a .jsonl file must hold one JSON ",
                    "object); fix or remove the line");
        INPUT_CHECK(j.is_object(), where, ": expected a JSON object {...} on each line, found ", j.type_name());
        ++count;
        fn(j, where);
      });
      continue;
    }
    std::vector<std::string> header;
    read_tsv(file, opt.tsv_header, [&](const std::vector<std::string>& h, const std::string&) { header = h; },
             [&](std::vector<std::string>& cells, const std::string& where) {
               nlohmann::json j = nlohmann::json::object();
               for (size_t i = 0; i < cells.size(); ++i) j[header[i]] = std::move(cells[i]);
               ++count;
               fn(j, where);
             });
  }
  return count;
}

uint64_t for_each_document(const CorpusOptions& opt, const std::function<void(Document&&)>& fn) {
  Emitter emit{opt, fn};
  const DocumentUnit unit = resolved_unit(opt);
  if (opt.format == CorpusFormat::text || opt.format == CorpusFormat::wikitext) {
    for (const std::string& file : corpus_files(opt.path, opt.format)) {
      if (opt.format == CorpusFormat::text) read_text_file(file, unit, emit);
      else read_wikitext_file(file, opt, unit, emit);
    }
    return emit.count;
  }
  INPUT_CHECK(unit == DocumentUnit::file, "format ", corpus_format_name(opt.format), " reads one document per row; ",
              "data.doc_unit must be auto");
  if (opt.format == CorpusFormat::tsv) {
    for (const std::string& file : corpus_files(opt.path, opt.format)) {
      size_t column = 0;
      read_tsv(file, opt.tsv_header,
               [&](const std::vector<std::string>& header, std::string where) {
                 column = tsv_column(header, opt.field, where, opt.tsv_header);
               },
               [&](std::vector<std::string>& cells, std::string where) {
                 emit(std::move(cells[column]), std::move(where));
               });
    }
    return emit.count;
  }
  for_each_record(opt, [&](const nlohmann::json& rec, const std::string& where) {
    auto it = rec.find(opt.field);
    if (it == rec.end()) {
      std::string keys;
      for (auto& [k, v] : rec.items()) keys += (keys.empty() ? "" : ", ") + ("\"" + k + "\"");
      FAIL_WITH(where, ": the record has no \"", opt.field, "\" field (it has ", keys.empty() ? "none" : keys,
                "); set data.text_field to the key that holds the text");
    }
    INPUT_CHECK(it->is_string(), where, ": field \"", opt.field, "\" is a JSON ", it->type_name(),
                ", expected a string of text");
    emit(it->get<std::string>(), where);
  });
  return emit.count;
}

std::vector<Document> read_documents(const CorpusOptions& opt) {
  std::vector<Document> docs;
  for_each_document(opt, [&](Document&& d) { docs.push_back(std::move(d)); });
  return docs;
}

std::string wikitext_detokenize(std::string_view line) {
  static const std::pair<std::string_view, char> kMarkers[] = {{" @-@ ", '-'}, {" @,@ ", ','}, {" @.@ ", '.'}};
  std::string out;
  out.reserve(line.size());
  size_t i = 0;
  while (i < line.size()) {
    bool replaced = false;
    if (line[i] == ' ' && i + 5 <= line.size() && line[i + 1] == '@' && line[i + 3] == '@' && line[i + 4] == ' ') {
      for (auto& [marker, ch] : kMarkers)
        if (line.substr(i, 5) == marker) {
          out.push_back(ch);
          i += 5;
          replaced = true;
          break;
        }
    }
    if (!replaced) out.push_back(line[i++]);
  }
  return out;
}

bool is_wikitext_title(std::string_view line) {
  while (!line.empty() && (line.back() == ' ' || line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
  while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
  // "= Title =": one '=' and a space on each side, a title that is not itself '=' framed.
  if (line.size() < 5 || line.substr(0, 2) != "= " || line.substr(line.size() - 2) != " =") return false;
  std::string_view title = line.substr(2, line.size() - 4);
  while (!title.empty() && title.front() == ' ') title.remove_prefix(1);
  while (!title.empty() && title.back() == ' ') title.remove_suffix(1);
  return !title.empty() && title.front() != '=' && title.back() != '=';
}

std::vector<std::string> split_tsv_line(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  std::vector<std::string> cells;
  size_t start = 0;
  for (;;) {
    size_t tab = line.find('\t', start);
    cells.emplace_back(line.substr(start, tab == std::string_view::npos ? std::string_view::npos : tab - start));
    if (tab == std::string_view::npos) break;
    start = tab + 1;
  }
  return cells;
}

}  // namespace attnlab::data
