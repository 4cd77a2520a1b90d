// Data, prompts, prediction and seed selection of the ICL study (METHODS §2.3-2.5; icl_run.h).
#include <algorithm>
#include <cstdio>

#include "core/error.h"
#include "core/memory.h"
#include "core/models/cached_forward.h"
#include "studies/icl/icl_run.h"
#include "studies/icl/py_random.h"

namespace attnlab::icl {

IclData load_icl_data(const IclConfig& c) {
  IclData d;
  d.task = c.dataset;
  d.train = read_sst(c.train_file, c.dataset);
  d.eval = read_sst(c.eval_file, c.dataset);
  INPUT_CHECK(int64_t(d.train.size()) >= c.k, "icl: analysis.train_file '", c.train_file, "' holds ", d.train.size(),
              " rows, fewer than k = ", c.k, " demonstrations; lower --k or use the whole training split");
  INPUT_CHECK(!d.eval.empty(), "icl: analysis.eval_file '", c.eval_file, "' holds no rows");
  if (c.eval_limit > 0 && int64_t(d.eval.size()) > c.eval_limit) d.eval.resize(size_t(c.eval_limit));
  return d;
}

std::vector<std::string> zsl_prompts(std::span<const SstRecord> eval) { return icl_prompts("", eval); }

std::vector<std::string> icl_prompts(const std::string& context, std::span<const SstRecord> eval) {
  std::vector<std::string> p;
  p.reserve(eval.size());
  for (const SstRecord& r : eval) p.push_back(query_prompt(context, r.text));
  return p;
}

std::vector<int32_t> label_first_tokens(const data::Tokenizer& tok, SstTask task) {
  std::vector<int32_t> ids;
  for (int l = 0; l < sst_classes(task); ++l) {
    const std::vector<int32_t> t = tok.encode(" " + label_word(task, l));
    INPUT_CHECK(!t.empty(), "icl: the tokenizer gives no token for label word '", label_word(task, l), "'");
    ids.push_back(t.front());
  }
  return ids;
}

Prediction predict(Model& m, Ctx& ctx, const data::Tokenizer& tok, SstTask task, const std::vector<std::string>& prompts,
                   std::span<const SstRecord> eval, int64_t batch, bool label_scoring) {
  CHECK(prompts.size() == eval.size(), "predict: one prompt per record");
  std::vector<std::vector<int32_t>> ids;
  int64_t longest = 1;
  for (const std::string& p : prompts) {
    ids.push_back(tok.encode(p));
    for (int32_t id : ids.back())
      INPUT_CHECK(id < m.vocab(), "icl: the tokenizer gave id ", id, ", outside the model's vocabulary of ", m.vocab(),
                  " (is data.tokenizer the model's?)");
    longest = std::max<int64_t>(longest, int64_t(ids.back().size()));
  }
  const std::vector<int32_t> label_ids = label_first_tokens(tok, task);
  const int64_t V = m.vocab();
  Prediction out;
  const int64_t n = int64_t(prompts.size());
  std::unique_ptr<CachedForward> fwd;
  int64_t fwd_batch = 0;
  for (int64_t b0 = 0; b0 < n; b0 += batch) {
    const int64_t B = std::min(batch, n - b0);
    if (B != fwd_batch) {
      fwd = std::make_unique<CachedForward>(m, ctx, B, longest, longest + 1);
      fwd_batch = B;
    }
    std::vector<std::vector<int32_t>> chunk(ids.begin() + b0, ids.begin() + b0 + B);
    const std::vector<double> logits = to_host_f64(ctx, fwd->prefill(ctx, chunk));
    for (int64_t b = 0; b < B; ++b) {
      const double* row = logits.data() + b * V;
      const SstRecord& r = eval[size_t(b0 + b)];
      int32_t token = 0;
      std::string text;
      bool ok = false;
      if (label_scoring) {
        int best = 0;
        for (int l = 1; l < int(label_ids.size()); ++l)
          if (row[label_ids[size_t(l)]] > row[label_ids[size_t(best)]]) best = l;
        token = label_ids[size_t(best)];
        text = label_word(task, best);
        ok = best == r.label;
      } else {
        token = int32_t(std::max_element(row, row + V) - row);  // greedy: the first maximum, as torch.argmax
        const int32_t one[1] = {token};
        text = token < tok.vocab_size() ? tok.decode(std::span<const int32_t>(one, 1), /*skip_special=*/true) : "";
        ok = label_matches(text, task, r.label);
      }
      out.token.push_back(token);
      out.text.push_back(text);
      out.correct.push_back(ok);
      if (ok) out.correct_idx.push_back(r.idx);
    }
  }
  out.accuracy = double(out.correct_idx.size()) / double(n);
  return out;
}

SelectResult select_seed(Model& m, Ctx& ctx, const data::Tokenizer& tok, const IclData& d, const IclConfig& c) {
  SelectResult s;
  for (int64_t seed = 0; seed < c.seed_max; ++seed) {
    const std::vector<int64_t> idx = demonstration_indices(int64_t(d.train.size()), c.k, seed);
    const std::vector<SstRecord> demos = select_records(d.train, idx);
    const std::string context = icl_context(d.task, demos);
    const Prediction p =
        predict(m, ctx, tok, d.task, icl_prompts(context, d.eval), d.eval, c.select_batch, c.label_scoring);
    s.accuracy.push_back(p.accuracy);
    if (p.accuracy > s.best_accuracy) {
      s.best_accuracy = p.accuracy;
      s.best_seed = seed;
    }
  }
  return s;
}

int64_t tokens_within(const data::Tokenizer& tok, const std::string& prompt, size_t chars) {
  std::vector<size_t> offsets;
  const std::vector<int32_t> ids = tok.encode_with_offsets(prompt, offsets);
  int64_t n = 0;
  for (size_t j = 0; j < ids.size(); ++j) {
    const size_t end = j + 1 < offsets.size() ? offsets[j + 1] : prompt.size();
    if (end <= chars) ++n;
  }
  return n;
}

}  // namespace attnlab::icl
