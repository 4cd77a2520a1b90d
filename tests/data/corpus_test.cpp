// Corpus readers: text files and folders, wikitext-raw, JSONL and TSV on small files written here.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "data/corpus.h"
#include "data/data_test_util.h"

namespace attnlab::test {
namespace {
using data::CorpusFormat;
using data::CorpusOptions;
using data::DocumentUnit;

std::vector<std::string> texts(const CorpusOptions& o) {
  std::vector<std::string> out;
  for (auto& d : data::read_documents(o)) out.push_back(d.text);
  return out;
}

TEST(Corpus, TextFolderIsRecursiveSortedAndTxtOnly) {
  ScratchDir dir;
  write_text(dir / "b.txt", "second file\n");
  write_text(dir / "a/z.txt", "first file\n");
  write_text(dir / "c/d/e.txt", "third file");
  write_text(dir / "a/notes.md", "not a txt file");
  write_text(dir / "blank.txt", "  \n\n");
  CorpusOptions o{.format = CorpusFormat::text, .path = dir.path};
  EXPECT_EQ(texts(o), (std::vector<std::string>{"first file\n", "second file\n", "third file"}));
  auto docs = data::read_documents(o);
  EXPECT_EQ(docs[1].origin, dir / "b.txt");
  o.keep_empty = true;
  EXPECT_EQ(texts(o).size(), 4u);  // byte-wise, "b.txt" < "blank.txt" < "c/d/e.txt"
  EXPECT_EQ(texts(o)[2], "  \n\n");
  // A single file is one document.
  EXPECT_EQ(texts({.format = CorpusFormat::text, .path = dir / "b.txt"}), std::vector<std::string>{"second file\n"});
}

TEST(Corpus, TextParagraphsAndLines) {
  ScratchDir dir;
  write_text(dir / "t.txt", "one a\none b\r\n\n\n two\n  \nthree");
  CorpusOptions o{.format = CorpusFormat::text, .path = dir / "t.txt", .unit = DocumentUnit::paragraph};
  EXPECT_EQ(texts(o), (std::vector<std::string>{"one a\none b\n", " two\n", "three\n"}));
  EXPECT_EQ(data::read_documents(o)[1].origin, dir / "t.txt:5");
  o.unit = DocumentUnit::line;
  EXPECT_EQ(texts(o), (std::vector<std::string>{"one a", "one b", " two", "three"}));
}

TEST(Corpus, MissingPathAndEmptyFolderAreNamed) {
  ScratchDir dir;
  EXPECT_NE(error_of([&] { data::read_documents({.path = dir / "nope"}); }).find(dir / "nope"), std::string::npos);
  write_text(dir / "x.jsonl", "{}");
  std::string e = error_of([&] { data::read_documents({.format = CorpusFormat::text, .path = dir.path}); });
  EXPECT_NE(e.find("no *.txt file"), std::string::npos) << e;
}

// The layout of wikitext-2-raw: lines with a leading space, " = Title = " headings, " = = Section
// = = " sub-headings, blank lines between paragraphs, number markers.
const char* kWiki =
    " \n"
    " = Valkyria Chronicles III = \n"
    " \n"
    " Senjo no Valkyria 3 is a 2011 role @-@ playing game sold 1 @,@ 000 times , rated 3 @.@ 5 . \n"
    " \n"
    " = = Gameplay = = \n"
    " \n"
    " The game 's battle system is turn @-@ based . \n"
    " \n"
    " \n"
    " = Tower Building = \n"
    " \n"
    " The tower is 100 @-@ foot tall . \n"
    " \n";

TEST(Corpus, WikitextArticlesStartAtTitles) {
  ScratchDir dir;
  write_text(dir / "wiki.train.raw", kWiki);
  CorpusOptions o{.format = CorpusFormat::wikitext, .path = dir / "wiki.train.raw"};
  auto docs = data::read_documents(o);
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].text,
            " = Valkyria Chronicles III = \n \n"
            " Senjo no Valkyria 3 is a 2011 role @-@ playing game sold 1 @,@ 000 times , rated 3 @.@ 5 . \n \n"
            " = = Gameplay = = \n \n"
            " The game 's battle system is turn @-@ based . \n");
  EXPECT_EQ(docs[0].origin, dir / "wiki.train.raw:2");
  EXPECT_EQ(docs[1].text, " = Tower Building = \n \n The tower is 100 @-@ foot tall . \n");
  EXPECT_EQ(docs[1].origin, dir / "wiki.train.raw:11");

  o.wikitext_detokenize = true;
  docs = data::read_documents(o);
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_NE(docs[0].text.find("2011 role-playing game sold 1,000 times , rated 3.5 ."), std::string::npos) << docs[0].text;
  EXPECT_NE(docs[0].text.find("The game 's battle system is turn-based ."), std::string::npos);  // other spacing kept
  EXPECT_EQ(docs[0].text.find('@'), std::string::npos);

  o.unit = DocumentUnit::line;  // seed-002 setting: each non-blank line is a document
  docs = data::read_documents(o);
  ASSERT_EQ(docs.size(), 6u);
  EXPECT_EQ(docs[2].text, " = = Gameplay = = ");
  EXPECT_EQ(docs[5].text, " The tower is 100-foot tall . ");
}

TEST(Corpus, WikitextTitleAndMarkerRules) {
  EXPECT_TRUE(data::is_wikitext_title(" = Title = "));
  EXPECT_TRUE(data::is_wikitext_title("= A = B ="));  // inner '=' is part of the title
  EXPECT_FALSE(data::is_wikitext_title(" = = Section = = "));
  EXPECT_FALSE(data::is_wikitext_title(" = = = Sub = = = "));
  EXPECT_FALSE(data::is_wikitext_title(" a = b = "));
  EXPECT_FALSE(data::is_wikitext_title(" =  = "));
  EXPECT_EQ(data::wikitext_detokenize("a @-@ b @,@ c @.@ d @x@ e @-@"), "a-b,c.d @x@ e @-@");
}

TEST(Corpus, JsonlFieldAndErrorsNameFileAndLine) {
  ScratchDir dir;
  write_text(dir / "a.jsonl", "{\"text\": \"hello\", \"id\": 1}\n\n{\"text\": \"caf\\u00e9\"}\n");
  CorpusOptions o{.format = CorpusFormat::jsonl, .path = dir / "a.jsonl"};
  EXPECT_EQ(texts(o), (std::vector<std::string>{"hello", "caf\xc3\xa9"}));
  EXPECT_EQ(data::read_documents(o)[1].origin, dir / "a.jsonl:3");

  write_text(dir / "bad.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"ok\"}\n{\"text\": \"unterminated}\n");
  std::string e = error_of([&] { data::read_documents({.format = CorpusFormat::jsonl, .path = dir / "bad.jsonl"}); });
  EXPECT_NE(e.find(dir / "bad.jsonl:3: not valid JSON"), std::string::npos) << e;

  write_text(dir / "arr.jsonl", "[1, 2]\n");
  e = error_of([&] { data::read_documents({.format = CorpusFormat::jsonl, .path = dir / "arr.jsonl"}); });
  EXPECT_NE(e.find("arr.jsonl:1: expected a JSON object"), std::string::npos) << e;

  write_text(dir / "key.jsonl", "{\"content\": \"x\", \"meta\": 2}\n");
  e = error_of([&] { data::read_documents({.format = CorpusFormat::jsonl, .path = dir / "key.jsonl"}); });
  EXPECT_NE(e.find("key.jsonl:1: the record has no \"text\" field (it has \"content\", \"meta\")"), std::string::npos) << e;
  EXPECT_EQ(texts({.format = CorpusFormat::jsonl, .path = dir / "key.jsonl", .field = "content"}),
            std::vector<std::string>{"x"});
  e = error_of([&] { data::read_documents({.format = CorpusFormat::jsonl, .path = dir / "key.jsonl", .field = "meta"}); });
  EXPECT_NE(e.find("key.jsonl:1: field \"meta\" is a JSON number"), std::string::npos) << e;
}

TEST(Corpus, TsvColumnsHeadersAndErrors) {
  ScratchDir dir;
  write_text(dir / "train.tsv", "sentence\tlabel\r\nit 's a charming journey . \t1\r\na dull mess \t0\r\n");
  CorpusOptions o{.format = CorpusFormat::tsv, .path = dir / "train.tsv", .field = "sentence"};
  EXPECT_EQ(texts(o), (std::vector<std::string>{"it 's a charming journey . ", "a dull mess "}));
  o.field = "1";  // by index; the header row is still skipped
  EXPECT_EQ(texts(o), (std::vector<std::string>{"1", "0"}));
  o.field = "text";
  std::string e = error_of([&] { data::read_documents(o); });
  EXPECT_NE(e.find("train.tsv:1: no column 'text' in the header row (columns: 'sentence', 'label')"), std::string::npos)
      << e;
  o.field = "0";
  o.tsv_header = false;  // now the header row is data
  EXPECT_EQ(texts(o), (std::vector<std::string>{"sentence", "it 's a charming journey . ", "a dull mess "}));

  write_text(dir / "ragged.tsv", "sentence\tlabel\ngood\t1\nno tab here\n");
  e = error_of([&] { data::read_documents({.format = CorpusFormat::tsv, .path = dir / "ragged.tsv", .field = "sentence"}); });
  EXPECT_NE(e.find("ragged.tsv:3: 1 tab-separated column where the header row has 2"), std::string::npos) << e;

  // Records keep every column, keyed by the header.
  std::vector<nlohmann::json> recs;
  data::for_each_record({.format = CorpusFormat::tsv, .path = dir / "train.tsv"},
                        [&](const nlohmann::json& j, const std::string&) { recs.push_back(j); });
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[1]["label"], "0");
  EXPECT_EQ(recs[0]["sentence"], "it 's a charming journey . ");
  EXPECT_EQ(data::split_tsv_line("a\t\tb\r"), (std::vector<std::string>{"a", "", "b"}));
}

}  // namespace
}  // namespace attnlab::test
