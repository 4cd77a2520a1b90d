#include "studies/ards/run.h"

#include <chrono>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/layers/standard_attention.h"

namespace attnlab::ards {

namespace fs = std::filesystem;

std::vector<double> layer_ramp_alphas(Model& model) {
  std::vector<double> a;
  for (int64_t l = 0; l < model.num_layers(); ++l) {
    const auto* std_attn = dynamic_cast<const StandardAttention*>(&model.attention(l));
    INPUT_CHECK(std_attn, "ards: layer ", l, "'s attention is not the standard variant; the study's modes run on "
                "standard attention (remove attnlab.attention.variant from the folder's config.json)");
    const AttentionSpec& s = std_attn->spec();
    a.push_back(s.norm == AttnNorm::ramp ? s.ramp_alpha : s.norm == AttnNorm::linear ? 1.0 : 0.0);
  }
  return a;
}

PromptRun run_prompt(Model& model, Ctx& ctx, const std::vector<int32_t>& ids, const GenerationConfig& config,
                     Mode mode, double sampling_rate, uint64_t seed, const data::Tokenizer* tokenizer) {
  PromptRun r;
  r.ids = ids;
  ProbeSink sink;
  if (has_diagnostics(mode)) sink.add(probe_request(mode));
  const auto t0 = std::chrono::steady_clock::now();
  {
    ProbeScope scope(ctx, &sink);
    r.generation = generate(model, ctx, {ids}, config, tokenizer);
  }
  const std::vector<double> alphas = mode == Mode::leramp ? layer_ramp_alphas(model) : std::vector<double>{};
  r.diagnostics = collect(sink, mode, model.num_layers(), alphas, sampling_rate, seed);
  sink.clear();  // §4.6: cleared per prompt
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

std::string write_prompt_files(const std::string& dir, int64_t n, const PromptRun& run, const GenerationConfig& g,
                               const std::string& model, uint64_t seed, double sampling_rate) {
  fs::create_directories(dir);
  const std::string stem = (fs::path(dir) / ("prompt_" + std::to_string(n) + "_" + mode_file_name(run.diagnostics.mode))).string();
  nlohmann::ordered_json j;
  j["prompt_index"] = n;
  j["prompt"] = run.prompt;
  j["model"] = model;
  j["prompt_tokens"] = run.ids.size();
  j["response"] = run.generation.texts.empty() ? "" : run.generation.texts[0];
  j["tokens"] = run.generation.tokens.empty() ? std::vector<int32_t>{} : run.generation.tokens[0];
  j["stopped"] = !run.generation.stopped.empty() && run.generation.stopped[0];
  j["generation"] = {{"max_new_tokens", g.max_new_tokens}, {"do_sample", g.do_sample}, {"temperature", g.temperature},
                     {"top_k", g.top_k}, {"top_p", g.top_p}, {"repetition_penalty", g.repetition_penalty}};
  j["seed"] = seed;
  j["sampling_rate"] = sampling_rate;
  j["seconds"] = run.seconds;
  const GenerationStats& st = run.generation.stats;
  j["timing"] = {{"prefill_seconds", st.prefill_seconds}, {"decode_seconds", st.decode_seconds},
                 {"decode_steps", st.decode_steps},
                 {"seconds_per_decode_step", st.decode_steps ? st.decode_seconds / double(st.decode_steps) : 0.0}};
  j["diagnostics"] = to_json(run.diagnostics);
  {
    std::ofstream f(stem + ".json");
    INPUT_CHECK(f.good(), "ards: cannot write '", stem, ".json' (is --out writable?)");
    // A response cut at max_new_tokens (or a byte-level token) may end inside a UTF-8 character:
    // invalid bytes are written as U+FFFD instead of failing the whole run.
    f << j.dump(1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
  }
  std::ofstream c(stem + ".csv");
  INPUT_CHECK(c.good(), "ards: cannot write '", stem, ".csv' (is --out writable?)");
  c << to_csv(run.diagnostics);
  return stem + ".json";
}

}  // namespace attnlab::ards
