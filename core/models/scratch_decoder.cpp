#include "core/models/scratch_decoder.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include "core/io/safetensors.h"
#include "core/layers/attention_shell.h"
#include "core/layers/differential_attention.h"
#include "core/memory.h"
#include "core/models/attention_rows.h"
#include "core/nvtx.h"
#include "core/ops/attention.h"
#include "core/ops/cross_entropy.h"
#include "core/ops/gelu.h"
#include "core/ops/matmul.h"
#include "core/ops/permute.h"
#include "core/ops/residual.h"
#include "core/ops/scale.h"
#include "core/ops/simple_rmsnorm.h"
#include "core/probes.h"

namespace attnlab {

int64_t scratch_swiglu_hidden(int64_t hidden) {
  CHECK(hidden > 0, "scratch decoder: hidden size must be positive, got ", hidden);
  const int64_t ratio = (8 * hidden + 2) / 3;  // ⌈8·D/3⌉
  return (ratio + 63) / 64 * 64;
}

ScratchDecoderConfig::Preset scratch_preset_from_name(const std::string& name) {
  if (name == "paper") return ScratchDecoderConfig::Preset::paper;
  if (name == "seed") return ScratchDecoderConfig::Preset::seed;
  FAIL_WITH("unknown decoder preset '", name, "'; use paper or seed");
}

namespace {

enum class NormKind { layer, rms, simple };

// out (acc dtype) += alpha·x (model dtype) over n elements: a K = 1 GEMM against the one-element
// tensor `one`, the one op that accumulates across dtypes (the position table's f32 gradient from
// a bf16 residual gradient). Same-dtype scaling goes through the scale op.
void accumulate_scaled(Ctx& ctx, const Tensor& out, const Tensor& x, const Tensor& one, double alpha) {
  const int64_t n = x.numel();
  MatmulArgs m;
  m.c = out.view({n, 1});
  m.a = x.view({n, 1});
  m.b = one;
  m.M = n;
  m.N = 1;
  m.K = 1;
  m.alpha = alpha;
  m.beta = 1.0;
  matmul(ctx, m);
}

}  // namespace

namespace {

// A block or final norm: LayerNorm (eps 1e−5), RMSNorm (P2, eps 1e−6) or SimpleRMSNorm (eps 1e−8
// outside the root).
Norm make_norm(NormKind kind, const std::string& name, Param* weight, Param* bias) {
  if (kind == NormKind::layer) return Norm::layer_norm(name, weight, bias, 1e-5);
  if (kind == NormKind::rms) return Norm::rms_norm(name, weight, 1e-6);
  return Norm::simple_rms_norm(name, weight, 1e-8);
}

// One block of METHODS §3.4/§3.5 as a DecoderBlock: pre-norm (the seed preset's single norm serves
// both sub-layers: two Norms over the same parameters), the attention variant, FFN Linear(D→F,
// bias) → GELU(erf) → Dropout → Linear(F→D, bias), or with ffn: swiglu the gated FFN
// down(silu(gate(x)) ⊙ up(x)) without biases; no residual dropout.
BlockParts scratch_block_parts(const ScratchDecoderConfig& c, const ModelConfig& layer_config, int64_t layer,
                               ParamStore& ps) {
  const std::string p = "blocks." + std::to_string(layer);
  const bool seed = c.preset == ScratchDecoderConfig::Preset::seed;
  const NormKind kind = !seed ? NormKind::rms : c.differential ? NormKind::simple : NormKind::layer;
  auto norm_params = [&](const std::string& nm) {
    Param* w = &ps.add(p + "." + nm + ".weight", {c.hidden});
    Param* b = kind == NormKind::layer ? &ps.add(p + "." + nm + ".bias", {c.hidden}) : nullptr;
    return std::pair{w, b};
  };
  BlockParts parts;
  parts.prefix = p;
  parts.layer = layer;
  parts.width = c.hidden;
  if (seed) {
    auto [w, b] = norm_params("norm");
    parts.norm1 = make_norm(kind, p + ".norm.attn_use", w, b);
    parts.norm2 = make_norm(kind, p + ".norm.ffn_use", w, b);
  } else {
    auto [w1, b1] = norm_params("attn_norm");
    parts.norm1 = make_norm(kind, p + ".attn_norm", w1, b1);
    auto [w2, b2] = norm_params("ffn_norm");
    parts.norm2 = make_norm(kind, p + ".ffn_norm", w2, b2);
  }
  parts.attention_prefix = p + ".attn";
  parts.attention = make_attention_layer({layer_config, layer, parts.attention_prefix, ps, attention_options(layer_config)});
  if (c.decoder.ffn == "swiglu") {
    Linear gate(&ps.add(p + ".ffn.gate.weight", {c.ffn, c.hidden}), nullptr);
    Linear up(&ps.add(p + ".ffn.up.weight", {c.ffn, c.hidden}), nullptr);
    Linear down(&ps.add(p + ".ffn.down.weight", {c.hidden, c.ffn}), nullptr);
    parts.mlp = Mlp::swiglu(p + ".ffn", gate, up, down);
    return parts;
  }
  Linear fc(&ps.add(p + ".ffn.fc.weight", {c.ffn, c.hidden}), &ps.add(p + ".ffn.fc.bias", {c.ffn}));
  Linear proj(&ps.add(p + ".ffn.proj.weight", {c.hidden, c.ffn}), &ps.add(p + ".ffn.proj.bias", {c.hidden}));
  parts.mlp = Mlp::gelu(p + ".ffn", fc, proj, GeluKind::erf_exact, c.dropout);
  return parts;
}

}  // namespace

ScratchDecoder::ScratchDecoder(const ScratchDecoderConfig& config, const ModelOptions& options, const Ctx& ctx)
    : config_(config), options_(options), planner_(options.device) {
  const ScratchDecoderConfig& c = config_;
  CHECK(c.hidden > 0 && c.layers > 0 && c.heads > 0 && c.head_dim > 0 && c.ffn >= c.hidden && c.vocab_size > 0 &&
            c.context > 0,
        "scratch decoder: sizes must be positive and ffn ≥ hidden (hidden ", c.hidden, ", layers ", c.layers,
        ", heads ", c.heads, ", head_dim ", c.head_dim, ", ffn ", c.ffn, ", vocab ", c.vocab_size, ", context ",
        c.context, ")");
  CHECK(c.heads * c.head_dim == c.hidden, "scratch decoder: heads·head_dim (", c.heads, "·", c.head_dim,
        ") must equal hidden (", c.hidden, ")");
  CHECK(c.dropout >= 0 && c.dropout < 1, "scratch decoder: dropout must be in [0, 1), got ", c.dropout);
  CHECK(c.decoder.ffn == "gelu" || c.decoder.ffn == "swiglu", "scratch decoder: ffn must be gelu or swiglu, got ",
        c.decoder.ffn);
  CHECK(!c.decoder.rope || c.head_dim % 2 == 0, "scratch decoder: rope rotates pairs of dims, so head_dim must be "
        "even, got ", c.head_dim, ". Fix: change model.arch.head_dim (or hidden_size / num_attention_heads)");
  CHECK(ctx.device == options_.device, "scratch decoder on ", device_name(options_.device), " built with a ",
        device_name(ctx.device), " context");
  const bool seed = c.preset == ScratchDecoderConfig::Preset::seed;
  const int64_t D = c.hidden, V = c.vocab_size;

  layer_config_ = model_config_defaults(ModelArch::qwen2);
  layer_config_.hidden_size = D;
  layer_config_.num_layers = c.layers;
  layer_config_.num_heads = layer_config_.num_kv_heads = c.heads;
  layer_config_.head_dim = c.head_dim;
  // Learned positions: the attention layers rotate nothing. rope: θ = 10,000, interleaved pairs for
  // differential attention (the official Diff-Transformer code), rotate-half for the baseline.
  layer_config_.rope_theta = c.decoder.rope ? 1e4 : 0;
  layer_config_.rope_interleaved = c.decoder.rope && c.differential;
  layer_config_.source = seed ? "init:decoder_seed" : "init:decoder_paper";
  layer_config_.attnlab = nlohmann::ordered_json::object();
  // Both attentions are variants on the attention shell; the baseline's projections follow the
  // preset's names and biases (METHODS §3.4).
  AttentionOptions opts = c.attention;
  opts.variant = c.differential ? "differential" : "standard";
  opts.preset = c.differential ? (seed ? "seed" : "paper") : "paper";
  opts.scratch = c.differential ? "" : (seed ? "seed" : "paper");
  if (!c.differential) opts.lambda_init.reset();
  layer_config_.attnlab["attention"] = attention_options_to_json(opts);
  // to_json leaves out defaults; the variant key is what make_attention_layer reads.
  layer_config_.attnlab["attention"]["variant"] = opts.variant;

  tok_emb_ = &params_.add("tok_emb.weight", {V, D});
  if (!c.decoder.rope) pos_emb_ = &params_.add("pos_emb.weight", {c.context, D});
  // ORIGINAL: the standard seed model adds √D·pos; every other model adds pos unscaled.
  pos_scale_ = seed && !c.differential ? std::sqrt(double(D)) : 1.0;
  tok_embedding_ = TokenEmbedding("tok_emb", tok_emb_, nullptr);
  emb_drop_ = Dropout("emb_drop", c.dropout);
  for (int64_t l = 0; l < c.layers; ++l)
    blocks_.push_back(std::make_unique<DecoderBlock>(scratch_block_parts(c, layer_config_, l, params_)));
  const NormKind kind = !seed ? NormKind::rms : c.differential ? NormKind::simple : NormKind::layer;
  Param* fw = &params_.add("final_norm.weight", {D});
  Param* fb = kind == NormKind::layer ? &params_.add("final_norm.bias", {D}) : nullptr;
  final_norm_ = make_norm(kind, "final_norm", fw, fb);
  // The output layer's rows padded to a multiple of options.vocab_multiple (as Model's LM head:
  // aligned logits rows; the padding rows and bias entries stay zero and are not saved).
  const int64_t Vp = padded_vocab_size(V, options_.vocab_multiple);
  Param& ow = params_.add("output.weight", {Vp, D});
  Param& ob = params_.add("output.bias", {Vp});
  ow.pad_rows = ob.pad_rows = Vp - V;
  output_ = Linear(&ow, &ob);

  params_.allocate(options_.device, options_.dtype);
  params_.zero_padding(ctx);
  if (options_.allocate_grads) params_.allocate_grads(ctx);
}

ScratchDecoder::~ScratchDecoder() = default;

std::string ScratchDecoder::describe() const {
  const ScratchDecoderConfig& c = config_;
  const bool seed = c.preset == ScratchDecoderConfig::Preset::seed;
  // paper DIFF: heads/2 heads of two d-maps (value 2d); seed DIFF: heads heads of two d-maps (value d).
  const std::string heads = !c.differential ? std::to_string(c.heads) + "x" + std::to_string(c.head_dim)
                            : seed ? std::to_string(c.heads) + "x(2 maps of " + std::to_string(c.head_dim) + ")"
                                   : std::to_string(c.heads / 2) + "x(2 maps of " + std::to_string(c.head_dim) + ")";
  const std::string options = decoder_options_words(c.decoder);
  return std::string("scratch decoder (") + (seed ? "seed" : "paper") + " preset, " +
         (c.differential ? "differential" : "standard") + (options.empty() ? "" : ", " + options) + ") L=" + std::to_string(c.layers) + " D=" +
         std::to_string(c.hidden) + " heads " + heads + " V=" + std::to_string(c.vocab_size) + " context " +
         std::to_string(c.context);
}

std::string scratch_decoder_file(const std::string& folder) { return folder + "/model.safetensors"; }

void ScratchDecoder::save_weights(Ctx& ctx, const std::string& folder) const {
  save_scratch_decoder(*this, ctx, scratch_decoder_file(folder));
}

void ScratchDecoder::load_weights(Ctx& ctx, const std::string& folder) {
  const std::string path = scratch_decoder_file(folder);
  const ScratchDecoderConfig saved = read_scratch_decoder_config(path);
  const ScratchDecoderConfig& c = config_;
  CHECK(saved.preset == c.preset && saved.differential == c.differential, "'", path, "' holds a ",
        saved.differential ? "differential" : "standard", " decoder of the ",
        saved.preset == ScratchDecoderConfig::Preset::seed ? "seed" : "paper", " preset; this model is ",
        c.differential ? "differential" : "standard", " (", c.preset == ScratchDecoderConfig::Preset::seed ? "seed" : "paper",
        "). Fix: point model.from / checkpoint.resume at a checkpoint of the same model");
  CHECK(saved.decoder == c.decoder, "'", path, "' holds a decoder with options {", decoder_options_to_json(saved.decoder).dump(),
        "}; this model has {", decoder_options_to_json(c.decoder).dump(), "} (model.decoder). Fix: set model.decoder as "
        "the checkpoint was trained, or point at a checkpoint of this model");
  load_scratch_decoder(*this, ctx, path);
}

void ScratchDecoder::set_training(bool training) {
  emb_drop_.set_training(training);
  for (auto& b : blocks_) b->set_training(training);
}

AttentionLayer& ScratchDecoder::attention(int64_t layer) { return blocks_.at(size_t(layer))->attention(); }

void ScratchDecoder::plan_all(ActivationPlanner& p, const Ctx& ctx) {
  const DType dt = options_.dtype, acc = acc_dtype(dt);
  const int64_t D = config_.hidden, L = config_.layers, N = B_ * T_;
  residual_.clear();
  for (int64_t l = 0; l <= L; ++l) residual_.push_back(p.saved(dt, {B_, T_, D}, "residual." + std::to_string(l)));
  final_out_ = p.saved(dt, {B_, T_, D}, "final_norm_out");
  d_residual_ = p.saved(dt, {B_, T_, D}, "d_residual");
  d_final_ = p.scratch("decoder.d_final", dt, {B_, T_, D});
  one_ = p.saved(dt, {1, 1}, "decoder.one");
  tok_embedding_.plan(p, ctx, B_, T_);
  for (auto& b : blocks_) b->plan(p, ctx, dt, B_, T_);
  final_norm_.plan(p, ctx, dt, N, D);
  logits_ = p.saved(dt, {N, padded_vocab()}, "output.logits");
  row_loss_ = p.saved(acc, {N}, "output.row_loss");
  lse_ = p.saved(acc, {N}, "output.lse");
  loss_ = p.saved(acc, {1}, "output.loss");
}

void ScratchDecoder::plan(Ctx& ctx, int64_t B, int64_t T) {
  CHECK(B > 0 && T > 0 && T <= config_.context, "scratch decoder plan: need B > 0 and 0 < T ≤ context (",
        config_.context, "), got B=", B, " T=", T);
  B_ = B;
  T_ = T;
  have_loss_ = false;
  planner_.begin_sizing();
  plan_all(planner_, ctx);
  planner_.begin_carving();
  plan_all(planner_, ctx);
  planner_.finish();
  from_host_f64(ctx, one_, {1.0});
}

Tensor ScratchDecoder::forward(Ctx& ctx, const Tensor& ids, const Tensor& targets, double valid_count) {
  NVTX_RANGE(ctx, "scratch decoder forward");
  CHECK(B_ > 0, "forward before plan(B, T)");
  CHECK(ids.defined() && ids.dtype == DType::i32 && ids.ndim == 2 && ids.dim(0) == B_ && ids.dim(1) == T_,
        "scratch decoder forward: ids must be i32 [", B_, ", ", T_, "]");
  ids_ = ids;
  const int64_t D = config_.hidden;
  tok_embedding_.forward(ctx, ids, residual_[0]);
  if (pos_emb_) {  // learned positions (rope rotates q and k in the attention layers instead)
    const Tensor pos = pos_emb_->value.slice0(0, T_);
    for (int64_t b = 0; b < B_; ++b)
      scale_forward(ctx, {residual_[0].slice0(b, b + 1).view({T_ * D}), pos.view({T_ * D}), pos_scale_, 1.0});
  }
  emb_drop_.forward(ctx, residual_[0]);
  for (size_t l = 0; l < blocks_.size(); ++l) blocks_[l]->forward(ctx, residual_[l], residual_[l + 1]);
  final_norm_.forward(ctx, residual_.back(), final_out_);
  output_.forward(ctx, final_out_, logits_);
  have_loss_ = false;
  targets_ = Tensor();
  if (!targets.defined()) return Tensor();
  CHECK(valid_count > 0, "scratch decoder: the loss needs valid_count > 0, got ", valid_count);
  CHECK(targets.numel() == B_ * T_ && targets.dtype == DType::i32, "scratch decoder: targets must be i32 [", B_, ", ",
        T_, "]");
  targets_ = targets.view({B_ * T_});
  valid_count_ = valid_count;
  CrossEntropyArgs ce;
  ce.logits = logits_;
  ce.targets = targets_;
  ce.loss = row_loss_;
  ce.lse = lse_;
  ce.vocab = config_.vocab_size;
  cross_entropy_forward(ctx, ce);
  CrossEntropyMeanArgs mean;
  mean.loss = row_loss_;
  mean.out = loss_;
  mean.valid_count = valid_count;
  cross_entropy_mean(ctx, mean);
  have_loss_ = true;
  return loss_;
}

void ScratchDecoder::backward(Ctx& ctx) {
  NVTX_RANGE(ctx, "scratch decoder backward");
  CHECK(have_loss_, "backward needs a forward with targets since the last backward");
  have_loss_ = false;
  CrossEntropyBackwardArgs ce;
  ce.logits = logits_;
  ce.targets = targets_;
  ce.lse = lse_;
  ce.dlogits = logits_;
  ce.valid_count = valid_count_;
  ce.vocab = config_.vocab_size;
  cross_entropy_backward(ctx, ce);
  output_.backward(ctx, logits_, final_out_, d_final_, false);
  final_norm_.backward(ctx, d_final_, residual_.back(), d_residual_, false);
  for (size_t l = blocks_.size(); l-- > 0;) blocks_[l]->backward(ctx, residual_[l], d_residual_);
  if (emb_drop_.applied()) emb_drop_.backward(ctx, d_residual_, d_residual_);
  tok_embedding_.backward(ctx, d_residual_, ids_);
  const int64_t D = config_.hidden;
  if (pos_emb_ && pos_emb_->grad.defined()) {
    const Tensor dpos = pos_emb_->grad.slice0(0, T_);
    for (int64_t b = 0; b < B_; ++b)
      accumulate_scaled(ctx, dpos.view({T_ * D}), d_residual_.slice0(b, b + 1).view({T_ * D}), one_, pos_scale_);
  }
  // padding_idx: the pad row is never updated.
  if (tok_emb_->grad.defined() && config_.pad_id >= 0 && config_.pad_id < config_.vocab_size)
    zero_tensor(ctx, tok_emb_->grad.slice0(config_.pad_id, config_.pad_id + 1));
}

std::vector<std::vector<double>> ScratchDecoder::attention_rows(Ctx& ctx, const std::vector<int32_t>& ids,
                                                                const std::vector<int32_t>& rows, int64_t layer) {
  const int64_t T = int64_t(ids.size());
  CHECK(T > 0, "attention_rows: need tokens");
  if (B_ != 1 || T_ != T) plan(ctx, 1, T);
  return planned_attention_rows(*this, ctx, ids, rows, layer);
}
int64_t ScratchDecoder::padded_vocab() const { return output_.out_features(); }

Tensor ScratchDecoder::padded_logits() const {
  CHECK(B_ > 0, "logits before plan(B, T)");
  return logits_.view({B_, T_, padded_vocab()});
}

std::vector<double> ScratchDecoder::logits_f64(Ctx& ctx) const {
  return drop_padding_columns(to_host_f64(ctx, padded_logits()), B_ * T_, padded_vocab(), config_.vocab_size);
}

void init_scratch_decoder(ScratchDecoder& m, Ctx& ctx, uint64_t seed) {
  std::mt19937_64 gen(seed);
  const ScratchDecoderConfig& c = m.config();
  for (Param& p : m.params()) {
    const std::string& n = p.name;
    const Tensor dst = p.unpadded(p.value);  // draws for the real rows only: the same with padding on or off
    std::vector<double> v(size_t(dst.numel()));
    auto ends_with = [&](const std::string& suffix) {
      return n.size() >= suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    if (n == "tok_emb.weight" || n == "pos_emb.weight") {
      std::normal_distribution<double> dist(0.0, 1.0);
      for (double& x : v) x = dist(gen);
      if (n == "tok_emb.weight" && c.pad_id >= 0 && c.pad_id < c.vocab_size)
        std::fill(v.begin() + c.pad_id * c.hidden, v.begin() + (c.pad_id + 1) * c.hidden, 0.0);
    } else if (ends_with(".lambda_q1") || ends_with(".lambda_k1") || ends_with(".lambda_q2") || ends_with(".lambda_k2")) {
      std::normal_distribution<double> dist(0.0, 0.1);
      for (double& x : v) x = dist(gen);
    } else if (ends_with(".attn.lambda")) {
      std::normal_distribution<double> dist(0.0, 1.0);
      for (double& x : v) x = dist(gen);
    } else if (p.shape.size() == 2) {
      std::uniform_real_distribution<double> dist(-1.0 / std::sqrt(double(p.shape[1])), 1.0 / std::sqrt(double(p.shape[1])));
      for (double& x : v) x = dist(gen);
    } else if (ends_with(".bias")) {
      const Param* w = m.params().find(n.substr(0, n.size() - 5) + ".weight");
      if (w && w->shape.size() == 2) {  // a Linear's bias: U(±1/√fan_in)
        const double bound = 1.0 / std::sqrt(double(w->shape[1]));
        std::uniform_real_distribution<double> dist(-bound, bound);
        for (double& x : v) x = dist(gen);
      } else {
        std::fill(v.begin(), v.end(), 0.0);  // a norm's bias
      }
    } else {
      std::fill(v.begin(), v.end(), 1.0);  // norm weights
    }
    from_host_f64(ctx, dst, v);
  }
  m.params().zero_padding(ctx);
}

void save_scratch_decoder(const ScratchDecoder& m, Ctx& ctx, const std::string& path) {
  std::vector<Buffer> host;
  std::vector<NamedTensor> tensors;
  host.reserve(m.params().size());
  for (const Param& p : m.params()) {
    Tensor t = p.unpadded(p.value);  // the padded output rows are not saved
    if (!t.on_cpu()) {
      host.emplace_back(Device::cpu, t.dtype, std::initializer_list<int64_t>{t.numel()}, p.name.c_str());
      copy_tensor(ctx, host.back().t().view({t.numel()}), t.view({t.numel()}));
      t = make_tensor_view(host.back().t().data, t.dtype, Device::cpu, p.stored_shape(), p.name.c_str());
    }
    tensors.push_back({p.name, t});
  }
  const ScratchDecoderConfig& c = m.config();
  std::map<std::string, std::string> meta = {
      {"attnlab.model", "scratch_decoder"},
      {"preset", c.preset == ScratchDecoderConfig::Preset::seed ? "seed" : "paper"},
      {"attention", c.differential ? "differential" : "standard"},
      {"vocab_size", std::to_string(c.vocab_size)}, {"hidden", std::to_string(c.hidden)},
      {"layers", std::to_string(c.layers)}, {"heads", std::to_string(c.heads)},
      {"head_dim", std::to_string(c.head_dim)}, {"ffn", std::to_string(c.ffn)},
      {"context", std::to_string(c.context)}, {"pad_id", std::to_string(c.pad_id)},
      {"dropout", std::to_string(c.dropout)}};
  // The other attention options (norm, controller, ...) as config.json's attnlab block would hold them.
  const nlohmann::ordered_json options = attention_options_to_json(c.attention);
  if (!options.empty()) meta["attention_options"] = options.dump();
  // The block options (rope, ffn) from their table; absent = the defaults (older checkpoints too).
  const nlohmann::ordered_json decoder = decoder_options_to_json(c.decoder);
  if (!decoder.empty()) meta["decoder_options"] = decoder.dump();
  write_safetensors(path, tensors, meta);
}

ScratchDecoderConfig read_scratch_decoder_config(const std::string& path) {
  SafetensorsFile f = SafetensorsFile::open(path);
  const auto& meta = f.metadata();
  auto get = [&](const char* key) -> const std::string& {
    auto it = meta.find(key);
    CHECK(it != meta.end(), "'", path, "' is not a scratch-decoder checkpoint: its metadata lacks '", key,
          "' (write it with save_scratch_decoder)");
    return it->second;
  };
  CHECK(get("attnlab.model") == "scratch_decoder", "'", path, "' holds a '", get("attnlab.model"),
        "' model, not a scratch decoder");
  ScratchDecoderConfig c;
  c.preset = scratch_preset_from_name(get("preset"));
  const std::string& att = get("attention");
  CHECK(att == "standard" || att == "differential", "'", path, "': unknown attention '", att, "'");
  c.differential = att == "differential";
  c.vocab_size = std::stoll(get("vocab_size"));
  c.hidden = std::stoll(get("hidden"));
  c.layers = std::stoll(get("layers"));
  c.heads = std::stoll(get("heads"));
  c.head_dim = std::stoll(get("head_dim"));
  c.ffn = std::stoll(get("ffn"));
  c.context = std::stoll(get("context"));
  c.pad_id = std::stoll(get("pad_id"));
  c.dropout = std::stod(get("dropout"));
  if (auto it = meta.find("attention_options"); it != meta.end()) {
    const auto j = nlohmann::ordered_json::parse(it->second, nullptr, false);
    CHECK(!j.is_discarded(), "'", path, "': metadata attention_options is not JSON");
    c.attention = attention_options_from_json(j, path);
  }
  if (auto it = meta.find("decoder_options"); it != meta.end()) {
    const auto j = nlohmann::ordered_json::parse(it->second, nullptr, false);
    CHECK(!j.is_discarded(), "'", path, "': metadata decoder_options is not JSON");
    c.decoder = decoder_options_from_json(j, path);
  }
  c.attention.preset = c.preset == ScratchDecoderConfig::Preset::seed ? "seed" : "paper";
  return c;
}

void load_scratch_decoder(ScratchDecoder& m, Ctx& ctx, const std::string& path) {
  SafetensorsFile f = SafetensorsFile::open(path);
  std::vector<ExpectedTensor> expected;
  for (const Param& p : m.params()) expected.push_back({p.name, p.stored_shape()});
  expect_tensors(f, expected, false);
  for (Param& p : m.params()) {
    const Tensor dst = p.unpadded(p.value);
    if (dst.on_cpu()) {
      read_tensor_into(f, p.name, dst);
    } else {
      Buffer host(Device::cpu, dst.dtype, {dst.numel()}, p.name.c_str());
      read_tensor_into(f, p.name, make_tensor_view(host.t().data, dst.dtype, Device::cpu, p.stored_shape(), p.name.c_str()));
      copy_tensor(ctx, dst.view({dst.numel()}), host.t());
    }
  }
  m.params().zero_padding(ctx);
}

}  // namespace attnlab
