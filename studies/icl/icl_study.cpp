#include "studies/icl/icl_study.h"

#include "core/error.h"
#include "studies/registry.h"

namespace attnlab::icl {

namespace {

void declare(config::FieldBinder<IclConfig>& f) {
  f.enum_field("dataset", &IclConfig::dataset, {{"sst2", SstTask::sst2}, {"sst5", SstTask::sst5}},
               "sst2 (glue/sst2: TSV sentence<TAB>label or JSONL) or sst5 (SetFit/sst5 JSONL)")
      .def("sst2");
  f.field("train_file", &IclConfig::train_file, "training split: the demonstrations are drawn from it").required().as_path();
  f.field("eval_file", &IclConfig::eval_file, "validation split: every accuracy and metric is over it").required().as_path();
  f.field("eval_limit", &IclConfig::eval_limit, "use the first N validation rows only (0: all; stand-ins and quick runs)")
      .def(0)
      .at_least(0);
  f.field("k", &IclConfig::k, "demonstrations: random.sample(range(N_train), k) after random.seed(seed)").def(32).range_closed(1, 4096);
  f.field("seed", &IclConfig::seed, "demonstration seed (icl select finds the best one)").def(0).at_least(0);
  f.field("seed_max", &IclConfig::seed_max, "icl select tries seeds 0..seed_max-1").def(100).range_closed(1, 100000);
  f.field("batch", &IclConfig::batch, "prompts per prediction batch (ORIGINAL 16)").def(16).range_closed(1, 4096);
  f.field("select_batch", &IclConfig::select_batch, "prompts per batch in icl select (ORIGINAL 32)").def(32).range_closed(1, 4096);
  f.field("label_scoring", &IclConfig::label_scoring,
          "PAPER prediction: the label word whose first token has the largest logit (default ORIGINAL: one greedy "
          "token compared with the label word)")
      .def(false);
  f.field("ft_paper", &IclConfig::ft_paper,
          "PAPER fine-tuning: plain SGD at --ft-paper-lr, batch 1, one epoch, loss on the label tokens only "
          "(default ORIGINAL: the file's kv_only trainer, HF-Trainer AdamW settings, loss on every token)")
      .def(false);
  f.field("ft_paper_lr", &IclConfig::ft_paper_lr, "SGD learning rate of --ft-paper (the paper searched a small grid)")
      .def(1e-3)
      .range_open_closed(0, 10);
  f.enum_field("simaou_source", &IclConfig::simaou_source,
               {{"hidden", SimAouSource::hidden}, {"attn_out", SimAouSource::attn_out}},
               "SimAOU vectors: hidden (ORIGINAL residual stream, L+1 states) or attn_out (PAPER attention outputs)")
      .def("hidden");
  f.field("include_embedding_layer", &IclConfig::include_embedding_layer,
          "keep hidden state 0 (the embedding output, delta identically 0) in the SimAOU mean: the ORIGINAL number")
      .def(false);
  f.field("simaou_paper", &IclConfig::simaou_paper,
          "PAPER SimAOU details: normalise with eps 1e-20 and draw the random baseline from U[0,1) (ORIGINAL: 1e-5, N(0,1))")
      .def(false);
  f.enum_field("simam_align", &IclConfig::simam_align, {{"original", SimAmAlign::original}, {"paper", SimAmAlign::paper}},
               "ICL score row's query part: original (its last Lq scores) or paper (from the context's token count)")
      .def("original");
  f.field("kendall_paper", &IclConfig::kendall_paper,
          "PAPER Kendall: FT side softmax of q_train.q_test over the demonstration records' tokens, ICL side "
          "softmax of head-summed pre-softmax scores; token- and example-level tau and top-k recall")
      .def(false);
  f.enum_field("kendall_demo_pass", &IclConfig::kendall_demo_pass,
               {{"separate", KendallDemoPass::separate}, {"icl", KendallDemoPass::icl}},
               "ORIGINAL Kendall demo queries: separate (a pass on the context text alone) or icl (CHOICE: the ICL "
               "pass's own context tokens)")
      .def("separate");
  f.field("random_seed", &IclConfig::random_seed, "seed of the random baselines (CPython's random)").def(0).at_least(0);
  f.field("out", &IclConfig::out, "output folder (JSON, safetensors, figures, the FT run)").def("runs/icl").as_path();
  f.field("no_plots", &IclConfig::no_plots, "skip the PNG figures (drawn by --plot-script with matplotlib)").def(false);
  f.field("plot_script", &IclConfig::plot_script, "the figure script").def("tools/plot_icl.py").as_path();
}

class IclStudy : public studies::Study {
 public:
  std::string name() const override { return kIclStudy; }
  std::string doc() const override {
    return "in-context learning vs KV-only fine-tuning: Rec2FTP, SimAOU, SimAM, Kendall's tau (METHODS 2)";
  }
  studies::FieldTable analysis_fields() const override { return studies::field_table("analysis", declare); }
};

}  // namespace

studies::FieldTable icl_fields() { return studies::field_table("analysis", declare); }

void register_icl_study() { studies::install_study(studies::find_builtin_study(kIclStudy)); }

config::ExperimentConfig load_icl_experiment(const std::string& path, const std::vector<std::string>& overrides) {
  register_icl_study();
  config::ExperimentConfig cfg = config::load_experiment(path, overrides);
  INPUT_CHECK(cfg.analysis.study == kIclStudy, path, ": the analysis section selects study '", cfg.analysis.study,
              "'; the icl commands need `analysis: {study: icl, ...}` (see experiments/icl/sst2.yaml)");
  INPUT_CHECK(cfg.task == config::Task::kv_only, path,
              ": task must be kv_only (the fine-tuning of METHODS 2.6); set `task: kv_only`");
  return cfg;
}

}  // namespace attnlab::icl

namespace attnlab::studies {
std::shared_ptr<const Study> icl_study() { return std::make_shared<icl::IclStudy>(); }
}  // namespace attnlab::studies
