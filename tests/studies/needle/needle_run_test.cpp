// The answer-to-noise analysis run on tiny scratch decoders with a byte tokenizer (one token per
// byte, so spans and question rows are the character ranges themselves).
#include "studies/needle/needle_run.h"

#include <cmath>

#include "core/memory.h"
#include "data/data_test_util.h"
#include "support/testing.h"

namespace attnlab::test {
namespace {

using namespace attnlab::analysis;

ScratchDecoderConfig tiny_for_bytes(ScratchDecoderConfig::Preset preset, bool differential) {
  ScratchDecoderConfig c;
  c.preset = preset;
  c.differential = differential;
  c.vocab_size = 258;
  c.pad_id = 256;
  c.hidden = 8;
  c.layers = 2;
  c.heads = 4;
  c.head_dim = 2;
  c.ffn = 16;
  c.context = 256;
  c.dropout = 0.1;  // the analysis must switch it off (eval mode)
  return c;
}

TEST(NeedleRun, DefaultAnalysisUsesQuestionRowsAndTheNeedleSpan) {
  Ctx& ctx = cpu_ctx();
  ScratchDir dir;
  data::Tokenizer tok = make_byte_tokenizer(dir / "tok");
  NeedleRunOptions opt;
  opt.contexts.context_length = 32;  // 8 words
  opt.contexts.samples = 2;
  opt.contexts.depths = {0.0, 0.5};
  opt.contexts.seed = 4;
  for (bool differential : {false, true}) {
    ScratchDecoder m(tiny_for_bytes(ScratchDecoderConfig::Preset::paper, differential), {Device::cpu, DType::f64}, ctx);
    init_scratch_decoder(m, ctx, 2);
    const NeedleReport r = run_needle_analysis(m, ctx, tok, opt);
    ASSERT_EQ(r.depths.size(), 2u);
    // Recompute each context by hand: byte tokens, question = the last 36 bytes, span = the needle's bytes.
    const auto contexts = generate_needle_contexts(opt.contexts);
    for (size_t k = 0; k < 2; ++k) {
      double sum_answer = 0, sum_noise = 0;
      for (const NeedleContext& c : contexts) {
        if (c.depth != opt.contexts.depths[k]) continue;
        std::vector<int32_t> ids(c.text.begin(), c.text.end());
        for (auto& i : ids) i &= 0xFF;
        const int64_t T = int64_t(ids.size()), q = int64_t(std::string(kNeedleQuestion).size());
        std::vector<int32_t> rows;
        for (int64_t t = T - q; t < T; ++t) rows.push_back(int32_t(t));
        const auto a = m.attention_rows(ctx, ids, rows, 1);
        const int64_t b = int64_t(c.target_spans[0].begin), e = int64_t(c.target_spans[0].end);
        double answer = 0, noise = 0;
        for (const auto& row : a)
          for (int64_t j = 0; j < T - q; ++j) (j >= b && j < e ? answer : noise) += row[size_t(j)];
        sum_answer += answer / double(rows.size());
        sum_noise += noise / double(rows.size());
      }
      EXPECT_EQ(r.depths[k].n, 2);
      EXPECT_NEAR(r.depths[k].mean_answer, sum_answer / 2, 1e-12) << "differential " << differential;
      EXPECT_NEAR(r.depths[k].mean_noise, sum_noise / 2, 1e-12) << "differential " << differential;
      EXPECT_GT(r.depths[k].mean_anr, 0);
    }
    // The JSON carries the ORIGINAL keys; the CSV one line per depth.
    const auto j = nlohmann::json::parse(needle_report_json(r));
    EXPECT_TRUE(j.contains("avg_answer_attention_per_depth"));
    EXPECT_EQ(j["individual_answer_attention_per_depth"]["0.5"].size(), 2u);
    const std::string csv = needle_reports_csv({r, r});
    EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + 2 * 2);
  }
}

TEST(NeedleRun, SeedCompatibleMapRowsSumToOneMinusLambda) {
  Ctx& ctx = cpu_ctx();
  for (auto preset : {ScratchDecoderConfig::Preset::paper, ScratchDecoderConfig::Preset::seed}) {
    ScratchDecoder m(tiny_for_bytes(preset, true), {Device::cpu, DType::f64}, ctx);
    init_scratch_decoder(m, ctx, 6);
    const std::vector<int32_t> ids = {72, 101, 108, 108, 111};
    const auto map = seed_compat_map(m, ctx, ids, 1);
    double lambda = 0;
    if (preset == ScratchDecoderConfig::Preset::seed) {
      lambda = std::exp(to_host_f64(ctx, m.params().at("blocks.1.attn.lambda").value)[0]) + 0.05;
    } else {
      auto v = [&](const char* n) { return to_host_f64(ctx, m.params().at(std::string("blocks.1.attn.") + n).value); };
      const auto q1 = v("lambda_q1"), k1 = v("lambda_k1"), q2 = v("lambda_q2"), k2 = v("lambda_k2");
      double d1 = 0, d2 = 0;
      for (size_t i = 0; i < q1.size(); ++i) d1 += q1[i] * k1[i], d2 += q2[i] * k2[i];
      lambda = std::exp(d1) - std::exp(d2) + (0.8 - 0.6 * std::exp(-0.3));
    }
    for (int r = 0; r < 5; ++r) {
      double s = 0;
      for (int j = 0; j < 5; ++j) s += map[size_t(r * 5 + j)];
      EXPECT_NEAR(s, 1 - lambda, 1e-12);  // both maps are full (non-causal) softmax rows
    }
  }
}

}  // namespace
}  // namespace attnlab::test
