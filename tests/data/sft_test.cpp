// SFT records: the OpenR1 selection rule, field maps and renames, prompt/target texts, target
// masks (raw text on a byte tokenizer; chats through Qwen's template when the assets are cached),
// and record shards read back through the SFT loader.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "data/asset_cache.h"
#include "data/data_test_util.h"
#include "data/loader.h"
#include "data/sft.h"

namespace attnlab::test {
namespace {
using data::SftFormat;
using data::SftOptions;
using nlohmann::json;

#define EXPECT_HAS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "message: " << (haystack)

json openr1(std::vector<std::string> gens, json flags) {
  json j = {{"problem", "What is 2+3?"}, {"generations", gens}};
  if (!flags.is_discarded()) j["correctness_math_verify"] = flags;
  return j;
}

TEST(SftRecords, OpenR1PicksTheFirstVerifiedGenerationElseTheFirst) {
  const json none = json(json::value_t::discarded);
  EXPECT_EQ(data::select_openr1_generation(openr1({"a", "b", "c"}, {false, true, true}), "f:1"), 1u);
  EXPECT_EQ(data::select_openr1_generation(openr1({"a", "b", "c"}, {false, false, true}), "f:1"), 2u);
  EXPECT_EQ(data::select_openr1_generation(openr1({"a", "b"}, {true, true}), "f:1"), 0u);
  EXPECT_EQ(data::select_openr1_generation(openr1({"a", "b"}, {false, false}), "f:1"), 0u);
  EXPECT_EQ(data::select_openr1_generation(openr1({"a", "b"}, {nullptr, true}), "f:1"), 1u);
  EXPECT_EQ(data::select_openr1_generation(openr1({"a", "b"}, none), "f:1"), 0u);
  EXPECT_EQ(data::select_openr1_generation(openr1({"a", "b"}, nullptr), "f:1"), 0u);
  EXPECT_HAS(error_of([&] { data::select_openr1_generation(openr1({"a", "b"}, {true}), "x.jsonl:7"); }),
             "x.jsonl:7: \"correctness_math_verify\" has 1 flags for 2 generations");
  EXPECT_HAS(error_of([&] { data::select_openr1_generation(openr1({}, {}), "x.jsonl:2"); }),
             "x.jsonl:2: \"generations\" must be a non-empty list");
  EXPECT_HAS(error_of([&] { data::select_openr1_generation(openr1({"a"}, {"yes"}), "x.jsonl:3"); }),
             "correctness_math_verify[0] is a JSON string");
  // The selected generation is what the assistant says.
  SftOptions o{.format = SftFormat::openr1, .chat = data::ChatFamily::qwen2_5};
  data::SftText t = data::sft_text(openr1({"wrong", "right", "also right"}, {false, true, true}), "f:1", o);
  ASSERT_TRUE(t.chat);
  ASSERT_EQ(t.messages.size(), 2u);
  EXPECT_EQ(t.messages[0].role, "user");
  EXPECT_EQ(t.messages[0].content, "What is 2+3?");
  EXPECT_EQ(t.messages[1].role, "assistant");
  EXPECT_EQ(t.messages[1].content, "right");
  o.chat.reset();
  EXPECT_HAS(error_of([&] { data::sft_text(openr1({"a"}, {true}), "f:1", o); }), "chat template");
}

TEST(SftRecords, FieldMapsRenamesAndTexts) {
  SftOptions gsm{.format = SftFormat::gsm8k};
  data::SftText t = data::sft_text(json{{"question", "Q?"}, {"answer", "A\n#### 4"}}, "g:1", gsm);
  EXPECT_FALSE(t.chat);
  EXPECT_EQ(t.prompt, "Question: Q?\nAnswer: ");
  EXPECT_EQ(t.target, "A\n#### 4");
  EXPECT_TRUE(t.add_eos);
  std::string e = error_of([&] { data::sft_text(json{{"problem", "Q?"}, {"answer", "A"}}, "g.jsonl:3", gsm); });
  EXPECT_HAS(e, "g.jsonl:3: gsm8k record has no \"question\" field (it has \"answer\", \"problem\")");
  EXPECT_HAS(e, "data.fields: {question: <your field>}");
  gsm.fields["question"] = "problem";
  EXPECT_EQ(data::sft_text(json{{"problem", "Q?"}, {"answer", "A"}}, "g:1", gsm).prompt, "Question: Q?\nAnswer: ");
  gsm.chat = data::ChatFamily::qwen2_5;
  t = data::sft_text(json{{"problem", "Q?"}, {"answer", "A"}}, "g:1", gsm);
  ASSERT_TRUE(t.chat);
  EXPECT_EQ(t.messages[1].content, "A");

  SftOptions om{.format = SftFormat::openmath};  // METHODS §5.6 layout without a chat template
  t = data::sft_text(json{{"problem", "P"}, {"generated_solution", "S \\boxed{3}"}, {"expected_answer", "3"},
                          {"problem_source", "math"}},
                     "o:1", om);
  EXPECT_EQ(t.prompt, "Problem: P\nSolution: ");
  EXPECT_EQ(t.target, "S \\boxed{3}\nFinal answer: 3");
  EXPECT_TRUE(t.add_eos);

  // METHODS §2.3: "Sentence: {text} Label: {word}", glue (sentence) and SetFit (text) fields,
  // integer or string labels.
  SftOptions sst{.format = SftFormat::sst, .sst_classes = 2};
  t = data::sft_text(json{{"sentence", "a fine film "}, {"label", 1}, {"idx", 0}}, "s:1", sst);
  EXPECT_EQ(t.prompt + t.target, "Sentence: a fine film  Label: positive");
  EXPECT_EQ(t.target, " positive");
  EXPECT_FALSE(t.add_eos);
  sst.sst_classes = 5;
  t = data::sft_text(json{{"text", "meh"}, {"label", "2"}, {"label_text", "neutral"}}, "s:2", sst);
  EXPECT_EQ(t.prompt + t.target, "Sentence: meh Label: neutral");
  EXPECT_EQ(data::sft_text(json{{"text", "x"}, {"label", 0}}, "s", sst).target, " terrible");
  EXPECT_EQ(data::sft_text(json{{"text", "x"}, {"label", 4}}, "s", sst).target, " great");
  EXPECT_HAS(error_of([&] { data::sft_text(json{{"text", "x"}, {"label", "pos"}}, "s.tsv:4", sst); }),
             "s.tsv:4: label \"pos\" is not a class number");
  sst.sst_classes = 2;
  EXPECT_HAS(error_of([&] { data::sft_text(json{{"text", "x"}, {"label", 3}}, "s.tsv:5", sst); }),
             "s.tsv:5: label 3 in an SST-2 file");
}

TEST(SftRecords, SstClassCountIsInferred) {
  ScratchDir dir;
  write_text(dir / "sst2.tsv", "sentence\tlabel\ngood \t1\nbad \t0\n");
  write_text(dir / "sst5.jsonl", "{\"text\": \"ok\", \"label\": 1, \"label_text\": \"negative\"}\n");
  write_text(dir / "sst5.tsv", "sentence\tlabel\ngood \t1\ngreat \t4\n");
  SftOptions o{.format = SftFormat::sst};
  EXPECT_EQ(data::infer_sst_classes({.format = data::CorpusFormat::tsv, .path = dir / "sst2.tsv"}, o), 2);
  EXPECT_EQ(data::infer_sst_classes({.format = data::CorpusFormat::jsonl, .path = dir / "sst5.jsonl"}, o), 5);
  EXPECT_EQ(data::infer_sst_classes({.format = data::CorpusFormat::tsv, .path = dir / "sst5.tsv"}, o), 5);
}

// Raw text on the byte tokenizer: one token per byte, so the target tokens are exactly the
// target's bytes (plus EOS = 256 where the format adds it).
TEST(SftRecords, RawTextMaskCoversTheTargetAndEos) {
  ScratchDir dir;
  data::Tokenizer tok = make_byte_tokenizer(dir / "tok");
  data::SftText t{.prompt = "Question: Q?\nAnswer: ", .target = "7\n#### 7", .add_eos = true};
  data::TokenizedDoc d = data::tokenize_sft(t, tok, std::nullopt);
  std::vector<int32_t> want = bytes_of(t.prompt + t.target);
  want.push_back(256);
  EXPECT_EQ(d.ids, want);
  ASSERT_EQ(d.mask.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(d.mask[i], i >= t.prompt.size()) << i;
  t = {.prompt = "Sentence: x Label:", .target = " negative"};
  d = data::tokenize_sft(t, tok, std::nullopt);
  EXPECT_EQ(d.ids, bytes_of("Sentence: x Label: negative"));
  std::string masked;
  for (size_t i = 0; i < d.ids.size(); ++i)
    if (d.mask[i]) masked.push_back(char(d.ids[i]));
  EXPECT_EQ(masked, " negative");
}

TEST(SftRecords, RecordShardsFeedTheLoaderWithTargetOnlyLoss) {
  ScratchDir dir;
  data::Tokenizer tok = make_byte_tokenizer(dir / "tok");
  write_text(dir / "train.tsv", "sentence\tlabel\nit 's a charming journey . \t1\na dull , tedious mess . \t0\n");
  data::CorpusOptions src{.format = data::CorpusFormat::tsv, .path = dir / "train.tsv"};
  data::PrepareResult r = data::prepare_sft_shards(src, {.format = SftFormat::sst}, tok, dir / "tok", dir / "shards");
  EXPECT_FALSE(r.reused);
  EXPECT_EQ(r.doc_count, 2u);
  EXPECT_TRUE(data::prepare_sft_shards(src, {.format = SftFormat::sst}, tok, dir / "tok", dir / "shards").reused);
  auto shards = std::make_shared<const data::ShardSet>(data::ShardSet::open(dir / "shards"));
  EXPECT_TRUE(shards->info().has_mask);
  data::SftLoader l(shards, {.seq_len = 64, .shuffle = false, .loss_on_targets_only = true}, data::Split::train);
  data::Batch b;
  ASSERT_TRUE(l.next(b, 2));
  const std::vector<std::string> words = {" positive", " negative"};
  for (int64_t row = 0; row < 2; ++row) {
    std::string predicted;  // the tokens the targets ask for, in order
    for (int64_t t = 0; t < b.cols; ++t)
      if (int32_t y = b.targets[size_t(row * b.cols + t)]; y != data::kIgnoreTarget) predicted.push_back(char(y));
    EXPECT_EQ(predicted, words[size_t(row)]);
  }
}

// The chat convention on the real Qwen tokenizer: the target tokens decode to exactly the
// assistant content followed by <|im_end|>, and the text is the Qwen2.5 rendering with its
// default system prompt.
TEST(SftRecords, OpenR1ChatMaskIsAssistantContentThroughImEnd) {
  ATTNLAB_REQUIRE_ASSET("qwen3/tokenizer.json");
  const data::Tokenizer& qwen = cached_tokenizer("qwen2.5");
  SftOptions o{.format = SftFormat::openr1, .chat = data::ChatFamily::qwen2_5};
  const std::string gen = "<think>\nAdd them.\n</think>\n\nThe answer is $\\boxed{5}$.";
  json rec = openr1({"<think>\nno\n</think>\n\n\\boxed{6}", gen}, {false, true});
  data::TokenizedDoc d = data::tokenize_sft(data::sft_text(rec, "f:1", o), qwen, o.chat);
  const std::string text = qwen.decode(d.ids);
  EXPECT_EQ(text,
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n" + gen + "<|im_end|>\n");
  std::vector<int32_t> target_ids;
  for (size_t i = 0; i < d.ids.size(); ++i)
    if (d.mask[i]) target_ids.push_back(d.ids[i]);
  EXPECT_EQ(qwen.decode(target_ids), gen + "<|im_end|>");
  // The masked tokens are one contiguous run ending on <|im_end|> (id 151645), before the final "\n".
  const auto first = std::find(d.mask.begin(), d.mask.end(), 1) - d.mask.begin();
  const auto last = d.mask.rend() - std::find(d.mask.rbegin(), d.mask.rend(), 1) - 1;
  EXPECT_EQ(size_t(last - first + 1), target_ids.size());
  EXPECT_EQ(d.ids[size_t(last)], 151645);
  EXPECT_EQ(size_t(last) + 2, d.ids.size());
}

}  // namespace
}  // namespace attnlab::test
