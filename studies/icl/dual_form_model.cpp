// The dual-form check on a model's own weights and activations, and the select command's
// outputs (icl_run.h).
#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/memory.h"
#include "core/models/cached_forward.h"
#include "core/models/weights.h"
#include "core/probes.h"
#include "studies/icl/dual_form.h"
#include "studies/icl/icl_run.h"
#include "studies/icl/py_random.h"

namespace attnlab::icl {

namespace {

std::vector<double> param_f64(Ctx& ctx, const Model& m, const std::string& name) {
  for (const Param& p : m.params())
    if (p.name == name) return to_host_f64(ctx, p.value);
  FAIL_WITH("icl: the model has no parameter '", name, "'; the study needs a Qwen3-shaped model");
}

}  // namespace

nlohmann::ordered_json run_select(const std::string& file, const std::vector<std::string>& overrides, Device device,
                                  DType dtype, std::FILE* console) {
  const config::ExperimentConfig cfg = load_icl_experiment(file, overrides);
  const IclConfig& c = cfg.analysis.as<IclConfig>();
  const IclData d = load_icl_data(c);
  const data::Tokenizer tok = data::Tokenizer::load(cfg.data.tokenizer);
  Ctx ctx = device == Device::cuda ? Ctx::make_cuda(0, 0) : Ctx::make_cpu(0);
  std::unique_ptr<Model> m = load_model(cfg.model.from, {device, dtype, false}, ctx);
  m->set_training(false);
  const SelectResult s = select_seed(*m, ctx, tok, d, c);
  nlohmann::ordered_json j;
  j["dataset"] = sst_task_name(d.task);
  j["model"] = cfg.model.from;
  j["k"] = c.k;
  j["seed_max"] = c.seed_max;
  j["n_eval"] = d.eval.size();
  j["best_seed"] = s.best_seed;
  j["best_accuracy"] = s.best_accuracy;
  j["best_demonstration_indices"] = demonstration_indices(int64_t(d.train.size()), c.k, s.best_seed);
  j["accuracy"] = s.accuracy;
  std::filesystem::create_directories(c.out);
  const std::string path = (std::filesystem::path(c.out) / ("select_" + std::string(sst_task_name(d.task)) + ".json")).string();
  std::ofstream(path) << j.dump(2) << "\n";
  if (console) {
    std::fprintf(console, "Best seed: %lld\nAccuracy is %.6g\n", (long long)s.best_seed, s.best_accuracy);
    std::fprintf(console, "icl: wrote %s\n", path.c_str());
  }
  return j;
}

DualFormReport run_dual_form_check(const std::string& file, const std::vector<std::string>& overrides, int64_t layer,
                                   Device device, DType dtype) {
  const config::ExperimentConfig cfg = load_icl_experiment(file, overrides);
  const IclConfig& c = cfg.analysis.as<IclConfig>();
  const IclData d = load_icl_data(c);
  const data::Tokenizer tok = data::Tokenizer::load(cfg.data.tokenizer);
  Ctx ctx = device == Device::cuda ? Ctx::make_cuda(0, 0) : Ctx::make_cpu(0);
  std::unique_ptr<Model> m = load_model(cfg.model.from, {device, dtype, false}, ctx);
  m->set_training(false);
  const ModelConfig& mc = m->config();
  INPUT_CHECK(layer >= 0 && layer < mc.num_layers, "icl dual-form-check: --layer ", layer, " is outside 0..",
              mc.num_layers - 1);
  const std::vector<SstRecord> demos = select_records(d.train, demonstration_indices(int64_t(d.train.size()), c.k, c.seed));
  const std::string context = icl_context(d.task, demos);
  const std::string prompt = query_prompt(context, d.eval[0].text);
  const std::vector<int32_t> ids = tok.encode(prompt);
  const int64_t T = int64_t(ids.size()), D = mc.hidden_size;
  const int64_t Nd = tokens_within(tok, prompt, context.size());

  // The layer's input (the residual stream before the block): the embeddings, or layer-1's output.
  std::vector<double> resid;
  if (layer == 0) {
    for (const Param& p : m->params())
      if (p.name == "model.embed_tokens.weight")
        for (int32_t id : ids) {
          const std::vector<double> row = to_host_f64(ctx, p.value.slice0(id, id + 1));
          resid.insert(resid.end(), row.begin(), row.end());
        }
  } else {
    ProbeSink sink;
    ProbeRequest r;
    r.layers = {layer - 1};
    r.hidden = true;
    for (int32_t t = 0; t < T; ++t) r.positions.push_back(t);
    sink.add(r);
    CachedForward fwd(*m, ctx, 1, T, T + 1);
    {
      ProbeScope scope(ctx, &sink);
      fwd.prefill(ctx, {ids});
    }
    resid = sink.find("hidden", layer - 1).at(0)->values;
  }
  const std::string pre = "model.layers." + std::to_string(layer);
  const std::vector<double> w_norm = param_f64(ctx, *m, pre + ".input_layernorm.weight");
  std::vector<double> x(static_cast<size_t>(T * D));
  for (int64_t t = 0; t < T; ++t) {
    double ss = 0;
    for (int64_t i = 0; i < D; ++i) ss += resid[size_t(t * D + i)] * resid[size_t(t * D + i)];
    const double inv = 1.0 / std::sqrt(ss / double(D) + mc.norm_eps);
    for (int64_t i = 0; i < D; ++i) x[size_t(t * D + i)] = resid[size_t(t * D + i)] * inv * w_norm[size_t(i)];
  }
  DualFormInputs in;
  in.D = D;
  in.Hq = mc.num_heads;
  in.Hkv = mc.num_kv_heads;
  in.d = mc.head_dim;
  in.Wq = param_f64(ctx, *m, pre + ".self_attn.q_proj.weight");
  in.Wk = param_f64(ctx, *m, pre + ".self_attn.k_proj.weight");
  in.Wv = param_f64(ctx, *m, pre + ".self_attn.v_proj.weight");
  in.Xd.assign(x.begin(), x.begin() + Nd * D);
  in.Xq.assign(x.begin() + Nd * D, x.end());
  const DualFormResult r = dual_form_check(in);
  return {layer, Nd, T - Nd, r.max_abs_diff, r.max_abs};
}

}  // namespace attnlab::icl
