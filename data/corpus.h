#pragma once
// Corpus readers: plain text files and folders, wikitext-raw, JSON lines and TSV. Each yields
// documents (the units that are tokenised, separated by EOS when packed, and split between
// training and validation) or, for SFT, records (JSON objects; a TSV row becomes an object keyed
// by the header's column names).
//
// Layouts:
//   text      a file, or a folder searched recursively for *.txt (sorted by path, byte-wise).
//             One document per file (default), per paragraph (blank-line separated) or per line.
//   wikitext  wikitext-raw: one article per document; a line " = Title = " (one '=' on each
//             side) starts an article, " = = Section = = " lines stay inside it. Lines are kept
//             as they are (leading space, blank lines inside the article, the heading itself);
//             blank lines at the start and end of an article are dropped. With detokenize, only
//             the number-joining markers are undone: " @-@ " -> "-", " @,@ " -> ",",
//             " @.@ " -> "."; the other wikitext spacing (" , ", " 's", "( x )") is kept.
//             unit: line gives one document per non-blank line (the seed-002 setting).
//   jsonl     one JSON object per non-blank line; a pretraining document is one string field.
//   tsv       tab-separated, no quoting (GLUE's convention); the first row names the columns
//             unless `tsv_header` is false, in which case columns are named "0", "1", ...; a
//             document is one column, given by name or by 0-based index. A trailing "\r" is cut.
// A folder given for jsonl/tsv/wikitext is searched recursively for *.jsonl / *.tsv / *.txt
// (wikitext: also *.raw, *.tokens). A UTF-8 byte-order mark at the start of a file is skipped.
//
// Malformed input raises attnlab::Error naming FILE:LINE and the fix.
#include <cstdint>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace attnlab::data {

enum class CorpusFormat : uint8_t { text, wikitext, jsonl, tsv };
// What one document is: `automatic` = file for text, article for wikitext, row for jsonl/tsv.
enum class DocumentUnit : uint8_t { automatic, file, article, paragraph, line };

CorpusFormat parse_corpus_format(const std::string& s);  // text | wikitext | jsonl | tsv
const char* corpus_format_name(CorpusFormat f);
DocumentUnit parse_document_unit(const std::string& s);  // auto | file | article | paragraph | line
const char* document_unit_name(DocumentUnit u);

struct CorpusOptions {
  CorpusFormat format = CorpusFormat::text;
  std::string path;                  // a file or a folder
  std::string field = "text";        // jsonl: the key; tsv: a column name or a 0-based index
  bool tsv_header = true;            // tsv: the first row names the columns
  DocumentUnit unit = DocumentUnit::automatic;
  bool wikitext_detokenize = false;  // undo " @-@ ", " @,@ ", " @.@ "
  bool keep_empty = false;           // keep documents that are empty or only whitespace
};

struct Document {
  std::string text;
  std::string origin;  // FILE or FILE:LINE where the document starts, for messages
};

// The files a path stands for, in reading order. Throws when the path does not exist or a
// folder holds no file of the format.
std::vector<std::string> corpus_files(const std::string& path, CorpusFormat format);

// Calls `fn` for every document in order. Returns the number of documents yielded.
uint64_t for_each_document(const CorpusOptions& opt, const std::function<void(Document&&)>& fn);
std::vector<Document> read_documents(const CorpusOptions& opt);

// Records of a jsonl or tsv source (files as corpus_files gives them). `where` is FILE:LINE.
uint64_t for_each_record(const CorpusOptions& opt,
                         const std::function<void(const nlohmann::json& record, const std::string& where)>& fn);

// " @-@ " -> "-", " @,@ " -> ",", " @.@ " -> "." (wikitext-103/2 raw number markers).
std::string wikitext_detokenize(std::string_view line);
// Whether a wikitext line is a top-level heading " = Title = " (not " = = Section = = ").
bool is_wikitext_title(std::string_view line);

// Splits one TSV line on tabs (a trailing "\r" is dropped first).
std::vector<std::string> split_tsv_line(std::string_view line);

}  // namespace attnlab::data
