#pragma once
// The protocol of seed 001 (METHODS §2.3-2.10) on a Qwen3-shaped model: the pieces the
// `attnlab icl` commands are made of.
//
//   prediction   §2.4: prompts in batches; each batch runs through the KV cache with every row at
//                its own positions and keys (core/models/cached_forward.h), which gives each prompt
//                what it gets alone: what HF's left padding with its attention mask and position ids
//                gives. ORIGINAL: the greedy token, decoded with special tokens skipped, stripped,
//                compared case-insensitively with the label word; PAPER (label_scoring): the label
//                word whose first token (of " word") has the largest logit.
//   selection    §2.5: random.seed(s); random.sample(range(N_train), k) (py_random.h), s = 0..seed_max-1,
//                best ICL accuracy (the first seed on ties).
//   fine-tuning  §2.6: the experiment's kv_only trainer on the k demonstration records (written to
//                OUT/ft/demos.jsonl); the trainer loads model.from itself, so the model the
//                features "before FT" come from is untouched (as the original's ZSL/ICL extraction
//                before its in-place FT).
//   features     §2.8-2.10: one prompt at a time (batch 1), through probes (core/probes.h): last-token
//                hidden states and attention outputs, the last query row's pre-softmax scores and
//                (ICL) post-softmax probabilities summed over heads on the demonstration prefix, and
//                q_proj outputs. Nothing else of the attention maps is kept.
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/models/model.h"
#include "data/tokenizer.h"
#include "studies/icl/icl_study.h"
#include "studies/icl/kendall.h"

namespace attnlab::train {
class Trainer;
}

namespace attnlab::icl {

struct IclData {
  SstTask task = SstTask::sst2;
  std::vector<SstRecord> train, eval;
};
// The two splits (eval cut to eval_limit); errors name the file and the fix.
IclData load_icl_data(const IclConfig& c);

std::vector<std::string> zsl_prompts(std::span<const SstRecord> eval);
std::vector<std::string> icl_prompts(const std::string& context, std::span<const SstRecord> eval);

struct Prediction {
  std::vector<int32_t> token;          // greedy token (ORIGINAL) or the chosen label's first token
  std::vector<std::string> text;       // what was compared with the label word
  std::vector<bool> correct;
  std::vector<int64_t> correct_idx;    // the idx of the correct rows ("candidates")
  double accuracy = 0;
};

// The first token of " word" for every label word of `task`.
std::vector<int32_t> label_first_tokens(const data::Tokenizer& tok, SstTask task);

Prediction predict(Model& m, Ctx& ctx, const data::Tokenizer& tok, SstTask task, const std::vector<std::string>& prompts,
                   std::span<const SstRecord> eval, int64_t batch, bool label_scoring);

struct SelectResult {
  int64_t best_seed = 0;
  double best_accuracy = -1;
  std::vector<double> accuracy;  // per seed
};
SelectResult select_seed(Model& m, Ctx& ctx, const data::Tokenizer& tok, const IclData& d, const IclConfig& c);

// The FT phase (METHODS §2.6), ORIGINAL recipe: the demonstrations are written to
// OUT/ft/demos.jsonl in the dataset's upstream schema, then the experiment file is loaded again
// with `overrides` plus finetune_overrides (data.* at that file, run.out_dir OUT/ft) and its
// kv_only trainer (AdamW with the file's HF-Trainer settings, loss on every token) is made; run()
// it, then model() is the fine-tuned model. A run folder left by an earlier run is removed first.
std::unique_ptr<train::Trainer> make_finetuner(const std::string& file, const std::vector<std::string>& overrides,
                                               const IclConfig& c, std::span<const SstRecord> demos,
                                               std::FILE* console);
std::vector<std::string> finetune_overrides(const IclConfig& c, const std::string& demos_file);
// The demonstrations as JSON lines: SST-2 {"sentence", "label", "idx"}, SST-5 {"text", "label", "label_text"}.
void write_demonstrations(const std::string& path, SstTask task, std::span<const SstRecord> demos);

// PAPER recipe (ft_paper): plain SGD (no momentum, no clipping, constant rate lr), one epoch, batch
// 1, the demonstrations in their sampled order, loss on the label tokens only (the tokens of
// "Sentence: {text} Label: {word}" after those of "Sentence: {text} Label:"). Only k_proj/v_proj
// (set_trainable) get gradients; the update W -= lr * dW runs on the host in double and is stored
// back in the model's dtype. `m` needs gradients (ModelOptions::allocate_grads). Returns the loss of
// every step.
std::vector<double> sgd_kv_finetune(Model& m, Ctx& ctx, const data::Tokenizer& tok, SstTask task,
                                    std::span<const SstRecord> demos, double lr);

// What one batch-1 forward captured, per layer (fp32 copies).
struct PromptCapture {
  int64_t T = 0;
  std::vector<std::vector<float>> hidden;   // [L+1][D]: HF's hidden_states at the last token
  std::vector<std::vector<float>> attn_out; // [L][D]
  std::vector<std::vector<float>> scores;   // [L][Hq*T]: last query row, pre-softmax
  std::vector<std::vector<float>> prefix_probs;  // [L][Ld]: post-softmax, summed over heads (if asked)
  std::vector<std::vector<float>> q_last;   // [L][Hq*d]
  std::vector<std::vector<float>> q_prefix; // [L][n*Hq*d]: q_proj at positions 0..n-1 (if asked)
};
struct CaptureRequest {
  bool scores = true;
  int64_t prefix_probs = 0;   // Ld > 0: the head-summed probabilities on keys [0, Ld)
  int64_t q_prefix = 0;       // n > 0: q_proj at positions [0, n)
};

class Capturer {
 public:
  Capturer(Model& m, Ctx& ctx, int64_t max_prompt);
  PromptCapture run(const std::vector<int32_t>& ids, const CaptureRequest& r);

 private:
  Model& m_;
  Ctx& ctx_;
  int64_t max_prompt_;
  std::vector<double> final_norm_;
};

// The number of tokens of `prompt`'s tokenization that lie wholly within its first `chars` bytes.
int64_t tokens_within(const data::Tokenizer& tok, const std::string& prompt, size_t chars);

// Phase timings (seconds), in the order run.
struct PhaseTimes {
  std::vector<std::pair<std::string, double>> phases;
  void add(const std::string& name, double s) { phases.emplace_back(name, s); }
};

// The whole protocol (`attnlab icl run`) or a part of it: which metrics to compute.
struct RunParts {
  bool accuracy = true;   // ZSL / ICL / FT accuracies, Rec2FTP
  bool simaou = true, simam = true, kendall = true;
  bool finetune = true;   // needed by accuracy's FT part, SimAOU and SimAM
};

// Runs the parts on the experiment `file` with `overrides` (model.from, data.tokenizer, the
// analysis section); writes OUT/icl_<dataset>_seed<S>.json, OUT/icl_<dataset>_seed<S>_captures.safetensors
// and the figures; returns the JSON.
nlohmann::ordered_json run_icl(const std::string& file, const std::vector<std::string>& overrides, const RunParts& parts,
                               Device device, DType dtype, std::FILE* console);

}  // namespace attnlab::icl

namespace attnlab::icl {

// `attnlab icl select`: select_seed on the experiment, printed and written to
// OUT/select_<dataset>.json ({"best_seed", "best_accuracy", "accuracy": [per seed], ...}).
nlohmann::ordered_json run_select(const std::string& file, const std::vector<std::string>& overrides, Device device,
                                  DType dtype, std::FILE* console);

// `attnlab icl dual-form-check`: dual_form_check (dual_form.h) on layer `layer`'s q/k/v projections of
// the experiment's model, with X' = the attention inputs of the context tokens and X = those of the
// first validation row's query, the attention inputs being the layer-0 input_layernorm of the token
// embeddings (layer 0) or of the previous layer's captured hidden states.
struct DualFormReport {
  int64_t layer = 0, demo_tokens = 0, query_tokens = 0;
  double max_abs_diff = 0, max_abs = 0;
};
DualFormReport run_dual_form_check(const std::string& file, const std::vector<std::string>& overrides, int64_t layer,
                                   Device device, DType dtype);

}  // namespace attnlab::icl
