// `attnlab icl run` and its parts: the protocol of METHODS §2 in order, with the phase times
// (icl_run.h). Outputs: icl_report.cpp.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <numeric>

#include "core/error.h"
#include "core/models/weights.h"
#include "studies/icl/icl_report.h"
#include "studies/icl/icl_run.h"
#include "studies/icl/py_random.h"
#include "train/trainer.h"

namespace attnlab::icl {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }


// The token spans of the demonstrations inside the ICL prompt: demonstration j's tokens are those
// whose start offset lies in [its first byte, the next one's first byte).
std::vector<int64_t> demo_token_counts(const data::Tokenizer& tok, const std::string& prompt,
                                       const std::vector<size_t>& demo_starts, size_t context_end) {
  std::vector<size_t> offsets;
  tok.encode_with_offsets(prompt, offsets);
  std::vector<int64_t> n(demo_starts.size(), 0);
  for (size_t off : offsets)
    for (size_t j = 0; j < demo_starts.size(); ++j) {
      const size_t end = j + 1 < demo_starts.size() ? demo_starts[j + 1] : context_end;
      if (off >= demo_starts[j] && off < end) ++n[j];
    }
  return n;
}

}  // namespace

nlohmann::ordered_json run_icl(const std::string& file, const std::vector<std::string>& overrides, const RunParts& parts,
                               Device device, DType dtype, std::FILE* console) {
  auto say = [&](const std::string& s) {
    if (console) std::fprintf(console, "%s\n", s.c_str()), std::fflush(console);
  };
  const auto t_all = Clock::now();
  PhaseTimes times;
  auto t0 = Clock::now();
  const config::ExperimentConfig cfg = load_icl_experiment(file, overrides);
  const IclConfig& c = cfg.analysis.as<IclConfig>();
  const IclData d = load_icl_data(c);
  const data::Tokenizer tok = data::Tokenizer::load(cfg.data.tokenizer);
  Ctx ctx = device == Device::cuda ? Ctx::make_cuda(0, uint64_t(cfg.run.seed)) : Ctx::make_cpu(uint64_t(cfg.run.seed));
  std::unique_ptr<Model> base = load_model(cfg.model.from, {device, dtype, false}, ctx);
  base->set_training(false);
  const ModelConfig& mc = base->config();
  const int64_t L = mc.num_layers;
  INPUT_CHECK(mc.qk_norm, "icl: model.from '", cfg.model.from,
              "' is not Qwen3-shaped (no q_norm/k_norm); the study is written for Qwen3 (attnlab init --arch qwen3)");
  times.add("load", since(t0));

  IclResults res;
  res.dataset = d.task;
  res.config = c;
  res.model = cfg.model.from;
  res.layers = L;
  res.demo_indices = demonstration_indices(int64_t(d.train.size()), c.k, c.seed);
  const std::vector<SstRecord> demos = select_records(d.train, res.demo_indices);
  const std::string context = icl_context(d.task, demos);
  const std::vector<std::string> zsl = zsl_prompts(d.eval), icl = icl_prompts(context, d.eval);
  res.n_eval = int64_t(d.eval.size());
  say("icl: " + std::string(sst_task_name(d.task)) + ", " + std::to_string(d.eval.size()) + " validation rows, k = " +
      std::to_string(c.k) + ", seed " + std::to_string(c.seed) + ", model " + cfg.model.from);

  // ---- prediction before FT (§2.4) ----
  if (parts.accuracy) {
    t0 = Clock::now();
    res.zsl = predict(*base, ctx, tok, d.task, zsl, d.eval, c.batch, c.label_scoring);
    res.icl = predict(*base, ctx, tok, d.task, icl, d.eval, c.batch, c.label_scoring);
    times.add("predict_before_ft", since(t0));
    say("  ZSL accuracy " + std::to_string(res.zsl->accuracy) + ", ICL accuracy " + std::to_string(res.icl->accuracy));
  }

  // ---- features before FT (§2.8-2.10) ----
  const bool need_ft = parts.finetune && (parts.accuracy || parts.simaou || parts.simam);
  const bool capture = parts.simaou || parts.simam || parts.kendall;
  std::vector<std::vector<int32_t>> zsl_ids, icl_ids;
  int64_t longest = 1;
  for (size_t t = 0; t < d.eval.size(); ++t) {
    zsl_ids.push_back(tok.encode(zsl[t]));
    icl_ids.push_back(tok.encode(icl[t]));
    longest = std::max<int64_t>(longest, int64_t(icl_ids.back().size()));
  }
  const std::vector<int32_t> context_ids = tok.encode(context);
  res.context_tokens = int64_t(context_ids.size());
  // Kendall's demonstration prefix: ORIGINAL the separate pass's length, CHOICE the ICL prompt's
  // tokens wholly inside the context.
  const bool separate = c.kendall_demo_pass == KendallDemoPass::separate;
  res.kendall_Ld = separate ? res.context_tokens : tokens_within(tok, icl[0], context.size());
  // PAPER Kendall: each demonstration's tokens in the ICL prompt and in its own FT record.
  std::vector<size_t> demo_starts;
  for (size_t j = 0, at = 0; j < demos.size(); ++j) {
    demo_starts.push_back(at);
    at += demonstration_text(d.task, demos[j]).size();
  }
  if (capture) {
    t0 = Clock::now();
    Capturer cap(*base, ctx, std::max<int64_t>(longest, int64_t(context_ids.size())));
    if (parts.kendall && separate) res.qd = cap.run(context_ids, {false, 0, res.kendall_Ld}).q_prefix;
    for (size_t t = 0; t < d.eval.size(); ++t) {
      res.zsl_cap.push_back(cap.run(zsl_ids[t], {true, 0, 0}));
      const int64_t q_pre = parts.kendall && !separate && t == 0 ? res.kendall_Ld : 0;
      res.icl_cap.push_back(cap.run(icl_ids[t], {true, parts.kendall ? res.kendall_Ld : 0, q_pre}));
      if (q_pre > 0) res.qd = res.icl_cap.back().q_prefix;
    }
    if (parts.kendall && c.kendall_paper) {
      res.paper_icl_counts = demo_token_counts(tok, icl[0], demo_starts, context.size());
      res.paper_demo_tokens = res.paper_icl_counts;
      for (size_t j = 0; j < demos.size(); ++j) {
        const std::vector<int32_t> rec = tok.encode(ft_record_text(d.task, demos[j]));
        res.paper_demo_tokens[j] = std::min<int64_t>(res.paper_demo_tokens[j], int64_t(rec.size()));
        Capturer rc(*base, ctx, int64_t(rec.size()));
        res.paper_train_q.push_back(rc.run(rec, {false, 0, res.paper_demo_tokens[j]}).q_prefix);
      }
    }
    times.add("features_before_ft", since(t0));
  }

  // ---- FT (§2.6) and what comes after it ----
  if (need_ft) {
    t0 = Clock::now();
    std::unique_ptr<train::Trainer> trainer;
    std::unique_ptr<Model> sgd_model;
    Model* ft = nullptr;
    Ctx* ft_ctx = &ctx;
    if (c.ft_paper) {
      sgd_model = load_model(cfg.model.from, {device, dtype, true}, ctx);
      const std::vector<double> losses = sgd_kv_finetune(*sgd_model, ctx, tok, d.task, demos, c.ft_paper_lr);
      res.ft_steps = int64_t(losses.size());
      res.ft_first_loss = losses.front();
      res.ft_last_loss = losses.back();
      ft = sgd_model.get();
    } else {
      trainer = make_finetuner(file, overrides, c, demos, console);
      const train::TrainResult tr = trainer->run();
      res.ft_steps = tr.steps_done;
      res.ft_first_loss = tr.first_loss;
      res.ft_last_loss = tr.last_loss;
      ft = dynamic_cast<Model*>(&trainer->model());
      CHECK(ft != nullptr, "icl: the fine-tuned model is not an HF-config model");
      ft_ctx = &trainer->ctx();
    }
    times.add("finetune", since(t0));
    ft->set_training(false);
    res.ft_changed = kv_only_check(ctx, *base, *ft_ctx, *ft, res.ft_frozen_changed);
    say("  fine-tuned " + std::to_string(res.ft_steps) + " steps (loss " + std::to_string(res.ft_first_loss) + " -> " +
        std::to_string(res.ft_last_loss) + "); k_proj/v_proj tensors changed: " + std::to_string(res.ft_changed) +
        ", other tensors changed: " + std::to_string(res.ft_frozen_changed.size()));
    if (parts.accuracy) {
      t0 = Clock::now();
      res.ft = predict(*ft, *ft_ctx, tok, d.task, zsl, d.eval, c.batch, c.label_scoring);
      times.add("predict_after_ft", since(t0));
      say("  FT accuracy " + std::to_string(res.ft->accuracy));
    }
    if (parts.simaou || parts.simam) {
      t0 = Clock::now();
      Capturer cap(*ft, *ft_ctx, longest);
      for (size_t t = 0; t < d.eval.size(); ++t) res.ft_cap.push_back(cap.run(zsl_ids[t], {true, 0, 0}));
      times.add("features_after_ft", since(t0));
    }
  }

  // ---- metrics (§2.7-2.10) ----
  t0 = Clock::now();
  compute_metrics(res, parts);
  times.add("metrics", since(t0));
  t0 = Clock::now();
  res.times = times;
  nlohmann::ordered_json j = write_icl_outputs(res, parts, console);
  times.add("outputs", since(t0));
  j["phase_seconds"]["outputs"] = times.phases.back().second;
  j["phase_seconds"]["total"] = since(t_all);
  rewrite_json(res, j);
  return j;
}

}  // namespace attnlab::icl
