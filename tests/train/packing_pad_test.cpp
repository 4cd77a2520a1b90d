// Packing vs padding (issue 13 item 10): packed pretraining windows join documents with the EOS,
// which the ORIGINAL's decoder also uses as its frozen padding row (padding_idx = 50256). The
// separator must train like any token there; padded SFT rows keep their frozen pad row.
#include <algorithm>

#include "core/models/scratch_decoder.h"
#include "train/train_test_util.h"

namespace attnlab::test {
namespace {

// A tiny paper-preset decoder over `vocab` ids; `extra_arch` is appended inside model.arch.
std::string decoder_yaml(int64_t vocab, const std::string& extra_arch = "") {
  return "model:\n"
         "  from: init:decoder_paper\n"
         "  attention: {variant: standard}\n"
         "  arch: {hidden_size: 8, num_hidden_layers: 1, num_attention_heads: 2, head_dim: 4, intermediate_size: 16,\n"
         "         vocab_size: " + std::to_string(vocab) + ", max_position_embeddings: 64, dropout: 0.0" + extra_arch +
         "}\n";
}

std::vector<double> embedding_row(Ctx& ctx, const TrainableModel& m, int64_t row, int64_t D) {
  const Param* p = m.params().find("tok_emb.weight");
  EXPECT_NE(p, nullptr);
  if (!p) return {};
  const auto all = to_host_f64(ctx, p->value);
  return std::vector<double>(all.begin() + row * D, all.begin() + (row + 1) * D);
}

bool all_zero(const std::vector<double>& v) {
  return std::all_of(v.begin(), v.end(), [](double x) { return x == 0.0; });
}

// The study's setting: GPT-2's vocabulary, EOS 50256 between packed documents, pad_token_id left
// at the decoder's default (50256). The EOS row starts random and moves with training.
TEST(PackingPadding, PackedSeparatorHasATrainableEmbedding) {
  ScratchDir d;
  const int32_t V = 50257, eos = V - 1;
  auto data = synthetic_data(d / "shards", 40, V);
  ASSERT_EQ(data->shards->info().eos_id, eos);
  auto cfg = tiny_experiment(d.path, "packed", {"train.steps=3", "optim.lr=1e-1", "optim.weight_decay=0"},
                             decoder_yaml(V));
  train::Trainer t(cfg, quiet_options(data));
  auto* m = dynamic_cast<ScratchDecoder*>(&t.model());
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->config().pad_id, -1) << "packed windows have no padding row";
  const auto before = embedding_row(t.ctx(), t.model(), eos, 8);
  EXPECT_FALSE(all_zero(before)) << "the separator's embedding starts at zero, like a padding row";
  t.run();
  const auto after = embedding_row(t.ctx(), t.model(), eos, 8);
  EXPECT_NE(before, after) << "the separator's embedding did not train";
}

// An explicit pad_token_id equal to the separator would freeze it: refused, naming the key.
TEST(PackingPadding, PackedRefusesAPadIdThatIsTheSeparator) {
  ScratchDir d;
  auto data = synthetic_data(d / "shards", 40, 32);
  auto cfg = tiny_experiment(d.path, "clash", {}, decoder_yaml(32, ", pad_token_id: 31"));
  try {
    train::Trainer t(cfg, quiet_options(data));
    ADD_FAILURE() << "a pad_token_id equal to the packed separator was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.arch.pad_token_id 31"), std::string::npos) << e.what();
  }
  // Any other explicit id is the user's choice and is kept.
  auto other = tiny_experiment(d.path, "other", {}, decoder_yaml(32, ", pad_token_id: 7"));
  train::Trainer t(other, quiet_options(data));
  EXPECT_EQ(dynamic_cast<ScratchDecoder&>(t.model()).config().pad_id, 7);
}

// SFT rows are padded with the pad id (the EOS): there the row stays frozen at zero.
TEST(PackingPadding, PaddedRowsKeepTheFrozenPadRow) {
  ScratchDir d;
  const int32_t V = 32, eos = V - 1;
  auto data = synthetic_sft_data(d / "sft", 48, V, 14);
  std::vector<std::string> o = kSftOverrides;
  o.insert(o.end(), {"train.steps=3", "optim.lr=1e-1"});
  auto cfg = tiny_experiment(d.path, "sft", o, decoder_yaml(V, ", pad_token_id: 31"));
  train::Trainer t(cfg, quiet_options(data));
  EXPECT_EQ(dynamic_cast<ScratchDecoder&>(t.model()).config().pad_id, eos);
  t.run();
  EXPECT_TRUE(all_zero(embedding_row(t.ctx(), t.model(), eos, 8)));
}

}  // namespace
}  // namespace attnlab::test
