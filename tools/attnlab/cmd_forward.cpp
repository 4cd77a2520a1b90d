// attnlab forward --model DIR (--text TEXT --tokenizer T | --tokens FILE) --dump OUT.safetensors
// [--grads] [--device cpu|cuda] [--dtype f32|bf16|f64]: one forward (and backward) pass, dumped
// for comparison with other implementations (transformers, llm.c, ...).
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/io/safetensors.h"
#include "core/memory.h"
#include "core/models/model_loader.h"
#include "core/probes.h"
#include "data/tokenizer.h"
#include "data/tokenizer_files.h"
#include "tools/attnlab/cli_options.h"
#include "tools/attnlab/command.h"

namespace attnlab::cli {
namespace {

struct ForwardOptions {
  std::string model;
  std::string text;
  std::string tokenizer;
  std::string tokens;
  std::string dump;
  bool grads = false;
  std::string device = "cpu";
  std::string dtype = "f32";
  std::vector<std::string> captures;   // probe requests, WHAT[@LAYERS][:SELECTION]
  std::vector<std::string> attention;  // attention options over the folder's, key=value
};

// One sequence per non-empty line; ids separated by spaces or commas ("[1, 2, 3]" works too).
std::vector<std::vector<int32_t>> read_token_file(const std::string& path) {
  std::ifstream in(path);
  CHECK(in, "forward: cannot open --tokens file '", path, "'");
  std::vector<std::vector<int32_t>> rows;
  std::string line;
  for (int64_t lineno = 1; std::getline(in, line); ++lineno) {
    for (char& c : line)
      if (c == ',' || c == '[' || c == ']') c = ' ';
    std::istringstream ls(line);
    std::vector<int32_t> row;
    for (std::string word; ls >> word;) {
      char* end = nullptr;
      const long v = std::strtol(word.c_str(), &end, 10);
      CHECK(*end == '\0' && v >= 0 && v <= INT32_MAX, "forward: '", path, "' line ", lineno, ": '", word,
            "' is not a token id (non-negative integers separated by spaces)");
      row.push_back(int32_t(v));
    }
    if (row.empty()) continue;
    CHECK(rows.empty() || row.size() == rows[0].size(), "forward: '", path, "' line ", lineno, " has ", row.size(),
          " ids but the first sequence has ", rows[0].size(), "; every line is one sequence of the batch");
    rows.push_back(std::move(row));
  }
  CHECK(!rows.empty(), "forward: '", path, "' holds no token ids");
  return rows;
}

// A float tensor as an f32 CPU buffer (optionally in the checkpoint layout: [in, out] for Conv1D).
Buffer to_f32_host(Ctx& ctx, const Tensor& t, bool transpose) {
  std::vector<double> v = to_host_f64(ctx, t);
  if (transpose) {
    std::vector<double> turned(v.size());
    const int64_t rows = t.dim(0), cols = t.dim(1);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) turned[size_t(c * rows + r)] = v[size_t(r * cols + c)];
    v.swap(turned);
  }
  Buffer b(Device::cpu, DType::f32, {int64_t(v.size())}, t.name);
  from_host_f64(ctx, b.t(), v);
  return b;
}

void run_forward(const ForwardOptions& o) {
  ARG_CHECK(o.text.empty() != o.tokens.empty(), "forward: give either --text or --tokens FILE");
  // The tokenizer: --tokenizer, else the model folder's own files.
  const std::string tokenizer = !o.tokenizer.empty() ? o.tokenizer
                                : data::folder_has_tokenizer(o.model) ? o.model : std::string();
  INPUT_CHECK(o.text.empty() || !tokenizer.empty(), "forward: '", o.model, "' has no tokenizer files; pass --tokenizer ",
              "(gpt2, qwen2.5, qwen3 or a path)");
  const DeviceDtype dd = parse_device_dtype("forward", o.device, o.dtype);
  const Device dev = dd.device;
  const DType dt = dd.dtype;

  std::vector<std::vector<int32_t>> rows;
  if (!o.tokens.empty()) {
    rows = read_token_file(o.tokens);
  } else {
    data::Tokenizer tok = data::Tokenizer::load(tokenizer);
    rows.push_back(tok.encode(o.text));
    CHECK(!rows[0].empty(), "forward: --text encodes to no tokens");
  }
  const int64_t B = int64_t(rows.size()), T = int64_t(rows[0].size());
  ARG_CHECK(!o.grads || T >= 2, "forward: --grads needs a loss, and the loss needs sequences of at least 2 tokens");

  Ctx ctx = dev == Device::cuda ? Ctx::make_cuda(0, 0) : Ctx::make_cpu(0);
  auto model = load_any_model(o.model, {dev, dt, o.grads}, ctx, o.attention);
  const int64_t V = model->vocab_size();
  std::vector<int32_t> ids;
  for (const auto& r : rows) ids.insert(ids.end(), r.begin(), r.end());
  for (size_t i = 0; i < ids.size(); ++i)
    CHECK(ids[i] < V, "forward: token id ", ids[i], " (sequence ", i / size_t(T), ", position ", i % size_t(T),
          ") is outside the model's vocabulary of ", V, " (", o.model, "/config.json)");
  std::vector<int32_t> targets;
  const int64_t valid = causal_lm_targets(ids, B, T, targets);

  Buffer ids_dev(dev, DType::i32, {B, T}, "input_ids"), targets_dev(dev, DType::i32, {B, T}, "targets");
  from_host_f64(ctx, ids_dev.t(), std::vector<double>(ids.begin(), ids.end()));
  from_host_f64(ctx, targets_dev.t(), std::vector<double>(targets.begin(), targets.end()));
  model->plan(ctx, B, T);
  if (o.grads) model->params().zero_grads(ctx);
  ProbeSink sink;
  for (const std::string& spec : o.captures) sink.add(parse_probe_request(spec, T, model->num_layers()));
  Tensor loss;
  {
    ProbeScope scope(ctx, &sink);
    loss = model->forward(ctx, ids_dev, valid > 0 ? targets_dev.t() : Tensor(), double(valid));
  }

  std::vector<Buffer> keep;
  std::vector<NamedTensor> out;
  auto add = [&](const std::string& name, Buffer b, std::vector<int64_t> dims) {
    keep.push_back(std::move(b));
    out.push_back({name, make_tensor_view(keep.back().t().data, keep.back().t().dtype, Device::cpu, dims, "")});
  };
  Buffer ids_host(Device::cpu, DType::i32, {B, T}, "input_ids");
  from_host_f64(ctx, ids_host.t(), std::vector<double>(ids.begin(), ids.end()));
  add("input_ids", std::move(ids_host), {B, T});
  {
    const std::vector<double> logits = model->logits_f64(ctx);  // [B, T, V]: the padding columns dropped
    Buffer b(Device::cpu, DType::f32, {int64_t(logits.size())}, "logits");
    from_host_f64(ctx, b.t(), logits);
    add("logits", std::move(b), {B, T, V});
  }
  double loss_value = 0;
  if (loss.defined()) {
    loss_value = to_host_f64(ctx, loss)[0];
    add("loss", to_f32_host(ctx, loss, false), {1});
  }
  for (const Capture& c : sink.captures()) {
    Buffer b(Device::cpu, DType::f32, {int64_t(c.values.size())}, c.what.c_str());
    from_host_f64(ctx, b.t(), c.values);
    add("capture." + c.what + ".layer" + std::to_string(c.layer) + (c.call ? ".call" + std::to_string(c.call) : ""),
        std::move(b), c.shape);
  }
  if (o.grads) {
    model->backward(ctx);
    for (const Param& p : model->params())
      if (p.grad.defined())
        add("grad." + p.name, to_f32_host(ctx, p.unpadded(p.grad), p.stored_transposed), p.stored_shape());
  }
  write_safetensors(o.dump, out,
                    {{"model", o.model}, {"device", o.device}, {"dtype", o.dtype},
                     {"note", "logits [B,T,V]; loss = mean CE of logits[t] against input_ids[t+1]; grad.<name> in "
                              "the checkpoint layout (GPT-2 Conv1D [in,out])"}});
  std::printf("%s: B=%lld T=%lld V=%lld", o.dump.c_str(), (long long)B, (long long)T, (long long)V);
  if (loss.defined()) std::printf(" loss=%.6f over %lld targets", loss_value, (long long)valid);
  if (o.grads) std::printf(", gradients");
  if (!sink.captures().empty()) std::printf(", %zu captures", sink.captures().size());
  std::printf(" (%s, %s)\n", o.device.c_str(), o.dtype.c_str());
}

void setup(CLI::App& root) {
  auto o = std::make_shared<ForwardOptions>();
  auto* c = root.add_subcommand("forward", "Run one forward (and backward) pass and dump logits, loss and gradients");
  c->footer(
      "Writes a .safetensors file with input_ids [B,T] (i32), logits [B,T,V] and loss [1] (f32), and with\n"
      "--grads every parameter gradient as grad.<HF name> (f32, in the checkpoint's layout, so GPT-2's\n"
      "Conv1D gradients are [in,out] like transformers'). The loss is HF's labels=input_ids loss: the mean\n"
      "cross-entropy of the logits at t against the token at t+1. Meant for comparing attnlab with other\n"
      "implementations on the same checkpoint.\n"
      "Examples:\n"
      "  attnlab forward --model /tmp/qwen3-tiny --text 'Hello world' --tokenizer qwen3 --dump out.safetensors\n"
      "  attnlab forward --model ./gpt2 --tokens ids.txt --dump ref.safetensors --grads --device cuda --dtype bf16\n"
      "  attnlab forward --model /tmp/qwen3-tiny --text 'Hello world' --tokenizer qwen3 --dump maps.safetensors \\\n"
      "      --capture probs@1:last --capture entropy --attention norm=linear\n"
      "  attnlab inspect out.safetensors\n"
      "Captures (--capture WHAT[@LAYERS][:SELECTION], repeatable) land in the dump as\n"
      "capture.<what>.layer<L> [B, H, rows, S] (scores, probs), [B, H, T] (entropy, kl, variance),\n"
      "[B, H, T, spans] (span_mass) or [B, positions, width] (hidden, attn_out, q_proj). WHAT is scores (pre-\n"
      "softmax rows), probs, entropy, kl (to softmax), variance, span_mass (key spans B-E), hidden (residual\n"
      "stream after the block), attn_out or q_proj; LAYERS comma-separated or all; SELECTION query rows or\n"
      "positions (index, last, -k). Statistics are row reductions inside the attention op; no map is stored.\n"
      "--attention KEY=VALUE (repeatable) runs the folder with other attention options: norm=softmax|linear|ramp,\n"
      "ramp_alpha=A, controller=none|info_density|temperature, variant=standard|differential (parameters a\n"
      "variant or controller adds start from their declared initialisation, which leaves the model unchanged\n"
      "for the controllers).");
  c->add_option("--model", o->model,
                "model folder: HF (config.json + model.safetensors or shards), `attnlab init` output, or a run "
                "checkpoint (runs/<name>/checkpoints/step_N, the from-scratch decoders' too)")->required();
  c->add_option("--text", o->text, "text to encode (one sequence)");
  c->add_option("--tokenizer", o->tokenizer,
                "with --text: gpt2, qwen2.5, qwen3, or a tokenizer folder/file (default: the model folder's)");
  c->add_option("--tokens", o->tokens, "file of token ids, one sequence per line (equal lengths)");
  c->add_option("--dump", o->dump, "output .safetensors file")->required();
  c->add_flag("--grads", o->grads, "also run backward and dump every parameter gradient");
  c->add_option("--device", o->device, "cpu (default) or cuda");
  c->add_option("--dtype", o->dtype, "f32 (default), f64 (CPU) or bf16 (CUDA)");
  c->add_option("--capture", o->captures, "attention maps, statistics or activations to dump, WHAT[@LAYERS][:SELECTION] "
                "(repeatable; see below)");
  c->add_option("--attention", o->attention, "attention option over the folder's, KEY=VALUE (repeatable; see below)");
  c->callback([o] { run_forward(*o); });
}
ATTNLAB_COMMAND(setup);

}  // namespace
}  // namespace attnlab::cli
