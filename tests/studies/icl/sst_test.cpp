// SST readers (GLUE TSV, glue/sst2 JSONL, SetFit/sst5 JSONL) on hand-made files, their error
// messages, the ORIGINAL prompt texts and the label-word match (METHODS §2.3-2.5).
#include <gtest/gtest.h>

#include "data/data_test_util.h"
#include "studies/icl/sst.h"

namespace attnlab::test {
namespace {
using icl::SstLayout;
using icl::SstRecord;
using icl::SstTask;

#define EXPECT_HAS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "message: " << (haystack)

TEST(SstReaders, GlueTsvRowsGetTheirRowNumberAsIdx) {
  ScratchDir dir;
  // A byte-order mark, CRLF line ends and a blank line, as files saved by other tools have.
  write_text(dir / "dev.tsv", "\xEF\xBB\xBFsentence\tlabel\r\nit 's a charming journey . \t1\r\n\r\nunfunny and dull\t0\r\n"
                              "a gem\t1\n");
  EXPECT_EQ(icl::sst_layout_for(SstTask::sst2, dir / "dev.tsv"), SstLayout::sst2_tsv);
  const std::vector<SstRecord> r = icl::read_sst(dir / "dev.tsv", SstTask::sst2);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].idx, 0);
  EXPECT_EQ(r[0].text, "it 's a charming journey . ");
  EXPECT_EQ(r[0].label, 1);
  EXPECT_EQ(r[1].idx, 1);
  EXPECT_EQ(r[1].text, "unfunny and dull");
  EXPECT_EQ(r[1].label, 0);
  EXPECT_EQ(r[2].idx, 2);
  EXPECT_EQ(r[2].label, 1);
}

TEST(SstReaders, HubJsonlKeepsItsIdx) {
  ScratchDir dir;
  write_text(dir / "validation.jsonl", "{\"sentence\": \"great fun\", \"label\": 1, \"idx\": 7}\n"
                                       "{\"idx\": 3, \"sentence\": \"a bore\", \"label\": 0}\n");
  const std::vector<SstRecord> r = icl::read_sst(dir / "validation.jsonl", SstTask::sst2);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].idx, 7);
  EXPECT_EQ(r[0].text, "great fun");
  EXPECT_EQ(r[1].idx, 3);
  EXPECT_EQ(r[1].label, 0);
}

TEST(SstReaders, SetFitJsonlGetsRowNumbersAndFiveClasses) {
  ScratchDir dir;
  write_text(dir / "sst5/train.jsonl",
             "{\"text\": \"a masterpiece\", \"label\": 4, \"label_text\": \"very positive\"}\n"
             "{\"text\": \"it is a film\", \"label\": 2, \"label_text\": \"neutral\"}\n"
             "{\"text\": \"awful\", \"label\": 0, \"label_text\": \"very negative\"}\n");
  EXPECT_EQ(icl::sst_layout_for(SstTask::sst5, dir / "sst5"), SstLayout::sst5_jsonl);  // a folder
  const std::vector<SstRecord> r = icl::read_sst(dir / "sst5", SstTask::sst5);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].idx, 0);
  EXPECT_EQ(r[0].label, 4);
  EXPECT_EQ(r[2].idx, 2);
  EXPECT_EQ(r[2].text, "awful");
}

TEST(SstReaders, MalformedInputNamesTheFileLineAndFix) {
  ScratchDir dir;
  auto err = [&](const std::string& name, const std::string& text, SstTask task) {
    write_text(dir / name, text);
    return error_of([&] { icl::read_sst(dir / name, task); });
  };
  std::string e = err("a.tsv", "sentence\tlabel\nfine\t1\nodd\t2\n", SstTask::sst2);
  EXPECT_HAS(e, dir / "a.tsv:3");
  EXPECT_HAS(e, "label 2 is not an SST-2 class");
  EXPECT_HAS(e, "use --data sst5");
  e = err("b.tsv", "sentence\tlabel\nfine\tpositive\n", SstTask::sst2);
  EXPECT_HAS(e, dir / "b.tsv:2");
  EXPECT_HAS(e, "label \"positive\" is not a class number");
  e = err("c.tsv", "text\tlabel\nfine\t1\n", SstTask::sst2);
  EXPECT_HAS(e, dir / "c.tsv:2");
  EXPECT_HAS(e, "no \"sentence\" field");
  EXPECT_HAS(e, "header row \"sentence<TAB>label\"");
  e = err("d.tsv", "sentence\tlabel\nfine\t1\ttoo many\n", SstTask::sst2);
  EXPECT_HAS(e, dir / "d.tsv:2");
  e = err("e.jsonl", "{\"idx\": 0, \"sentence\": \"x\", \"label\": 1}\n{\"idx\": 0, \"sentence\": \"y\", \"label\": 0}\n",
          SstTask::sst2);
  EXPECT_HAS(e, dir / "e.jsonl:2: idx 0 was already used at " + dir / "e.jsonl:1");
  e = err("f.jsonl", "{\"idx\": 0, \"sentence\": \"x\", \"label\": -1}\n", SstTask::sst2);
  EXPECT_HAS(e, dir / "f.jsonl:1");
  EXPECT_HAS(e, "evaluate on the validation split");
  e = err("g.jsonl", "{\"text\": \"x\", \"label\": 1, \"label_text\": \"negative\"}\n", SstTask::sst2);
  EXPECT_HAS(e, dir / "g.jsonl:1");
  EXPECT_HAS(e, "no \"sentence\" field");
  EXPECT_HAS(e, "use --data sst5");
  e = err("h.jsonl", "{\"idx\": 0, \"sentence\": 5, \"label\": 1}\n", SstTask::sst2);
  EXPECT_HAS(e, "\"sentence\" is a JSON number");
  e = err("i.jsonl", "{\"idx\": \"0\", \"sentence\": \"x\", \"label\": 1}\n", SstTask::sst2);
  EXPECT_HAS(e, "\"idx\" is \"0\", expected a non-negative integer");
  e = err("j.jsonl", "{\"text\": \"x\", \"label\": 5}\n", SstTask::sst5);
  EXPECT_HAS(e, dir / "j.jsonl:1: label 5 is not an SST-5 class (0-4)");
  e = err("k.jsonl", "{\"text\": \"x\", \"label\": 1}\nnot json\n", SstTask::sst5);
  EXPECT_HAS(e, dir / "k.jsonl:2: not valid JSON");
  e = err("l.jsonl", "\n\n", SstTask::sst5);
  EXPECT_HAS(e, "no records");
  e = err("m.tsv", "sentence\tlabel\nx\t3\n", SstTask::sst5);
  EXPECT_HAS(e, "SST-5 is read from SetFit/sst5 JSON lines");
  e = error_of([&] { icl::read_sst(dir / "missing.jsonl", SstTask::sst2); });
  EXPECT_HAS(e, "missing.jsonl: no such file");
  write_text(dir / "mixed/a.tsv", "sentence\tlabel\nx\t1\n");
  write_text(dir / "mixed/b.jsonl", "{}\n");
  EXPECT_HAS(error_of([&] { icl::sst_layout_for(SstTask::sst2, dir / "mixed"); }), "both .tsv and .jsonl");
  EXPECT_HAS(error_of([&] { icl::parse_sst_task("sst3"); }), "use sst2 or sst5");
}

TEST(SstPrompts, OriginalTexts) {
  const std::vector<SstRecord> demos = {{.idx = 4, .text = "a gem", .label = 1}, {.idx = 9, .text = "dull", .label = 0}};
  EXPECT_EQ(icl::demonstration_text(SstTask::sst2, demos[0]), "Sentence: a gem Label: positive ");
  const std::string context = icl::icl_context(SstTask::sst2, demos);
  EXPECT_EQ(context, "Sentence: a gem Label: positive Sentence: dull Label: negative ");
  EXPECT_EQ(icl::query_prompt(context, "fun"),
            "Sentence: a gem Label: positive Sentence: dull Label: negative Sentence: fun Label:");
  EXPECT_EQ(icl::query_prompt("", "fun"), "Sentence: fun Label:");  // zero-shot
  EXPECT_EQ(icl::ft_record_text(SstTask::sst2, demos[1]), "Sentence: dull Label: negative");
  const SstRecord five = {.idx = 0, .text = "ok", .label = 2};
  EXPECT_EQ(icl::ft_record_text(SstTask::sst5, five), "Sentence: ok Label: neutral");
  const char* words5[] = {"terrible", "bad", "neutral", "good", "great"};
  for (int l = 0; l < 5; ++l) EXPECT_EQ(icl::label_word(SstTask::sst5, l), words5[l]);
  EXPECT_EQ(icl::label_word(SstTask::sst2, 0), "negative");
  EXPECT_THROW(icl::label_word(SstTask::sst2, 2), Error);
}

TEST(SstPrompts, SelectRecordsKeepsTheSampledOrder) {
  std::vector<SstRecord> train;
  for (int i = 0; i < 6; ++i) train.push_back({.idx = 100 + i, .text = "t" + std::to_string(i), .label = i % 2});
  const std::vector<int64_t> pick = {4, 0, 5};
  const std::vector<SstRecord> d = icl::select_records(train, pick);
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0].text, "t4");
  EXPECT_EQ(d[1].idx, 100);
  EXPECT_EQ(d[2].label, 1);
  const std::vector<int64_t> bad = {6};
  EXPECT_HAS(error_of([&] { icl::select_records(train, bad); }), "outside the training set of 6");
}

TEST(SstPrompts, LabelMatchStripsUnicodeWhitespaceAndIgnoresCase) {
  EXPECT_TRUE(icl::label_matches(" positive", SstTask::sst2, 1));
  EXPECT_TRUE(icl::label_matches("Positive\n", SstTask::sst2, 1));
  EXPECT_TRUE(icl::label_matches("NEGATIVE", SstTask::sst2, 0));
  EXPECT_TRUE(icl::label_matches("\xC2\xA0negative\xE3\x80\x80", SstTask::sst2, 0));  // NBSP, ideographic space
  EXPECT_TRUE(icl::label_matches("\x1cgreat\t", SstTask::sst5, 4));
  EXPECT_FALSE(icl::label_matches("positive", SstTask::sst2, 0));
  EXPECT_FALSE(icl::label_matches(" positive.", SstTask::sst2, 1));
  EXPECT_FALSE(icl::label_matches(" pos", SstTask::sst2, 1));
  EXPECT_FALSE(icl::label_matches("\xE2\x80\x8Bgood", SstTask::sst5, 3));  // U+200B is not whitespace to Python
  EXPECT_FALSE(icl::label_matches("", SstTask::sst5, 1));
  EXPECT_EQ(icl::python_strip("  a b \xE2\x80\xA8"), "a b");  // U+2028
  EXPECT_EQ(icl::python_strip(" \xFF "), "\xFF");             // a stray byte is kept
  EXPECT_EQ(icl::python_strip(" \t "), "");
}

}  // namespace
}  // namespace attnlab::test
