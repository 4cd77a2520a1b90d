#include "core/config/attention_options.h"

#include <algorithm>
#include <sstream>

#include "core/error.h"

namespace attnlab {

const std::vector<std::string>& attention_variant_choices() {
  static const std::vector<std::string> v = {"standard", "differential", "two_pass"};
  return v;
}

const std::vector<AttentionOptionDecl>& attention_option_decls() {
  using O = AttentionOptions;
  static const std::vector<AttentionOptionDecl> decls = [] {
    std::vector<AttentionOptionDecl> d;
    auto text = [&](std::string name, std::vector<std::string> choices, std::string def, std::string doc,
                    std::string O::*member, std::vector<std::string> variants = {}) {
      AttentionOptionDecl x;
      x.name = std::move(name);
      x.choices = std::move(choices);
      x.def = std::move(def);
      x.doc = std::move(doc);
      x.text = member;
      x.variants = std::move(variants);
      d.push_back(std::move(x));
    };
    auto number = [&](std::string name, double lo, double hi, std::string doc, std::optional<double> O::*member,
                      std::vector<std::string> variants = {}) {
      AttentionOptionDecl x;
      x.name = std::move(name);
      x.lo = lo;
      x.hi = hi;
      x.doc = std::move(doc);
      x.number = member;
      x.variants = std::move(variants);
      d.push_back(std::move(x));
    };
    text("variant", attention_variant_choices(), "standard",
         "attention operator: standard, differential (two maps and lambda, METHODS §3.2) or two_pass "
         "(uncertainty-gated q/k/v inputs from a draft pass and the LM-head entropy, METHODS §1.3)", &O::variant);
    text("norm", {"softmax", "linear", "ramp"}, "softmax",
         "score normalisation: softmax, linear (shift by the row min, METHODS §4.4) or ramp (mix of both, §4.5)",
         &O::norm);
    number("ramp_alpha", 0, 1, "ramp weight alpha: alpha*linear + (1-alpha)*softmax; set only with norm: ramp",
           &O::ramp_alpha);
    text("ramp_schedule", {"constant", "by_layer"}, "constant",
         "ramp weight per layer: constant (ramp_alpha in every layer) or by_layer (alpha_l = (L - l)/L, "
         "METHODS §4.5: layer 0 fully linear, the last 1/L; takes no ramp_alpha)",
         &O::ramp_schedule, {"standard", "differential"});
    text("norm_mask", {"visible", "unmasked"}, "visible",
         "norm linear or ramp only: the keys the normalisation sees: visible (the default: causal and padding "
         "masks, METHODS §4.4's choice) or unmasked (the original's literal prefill: every key of the call, later "
         "positions included, so a prompt's rows see their future; padding stays masked; decode steps are the "
         "same either way)",
         &O::norm_mask, {"standard"});
    text("controller", {"none", "info_density", "temperature"}, "none",
         "per-row score controller with its own parameters: none, info_density (additive, METHODS §4.3) or "
         "temperature (multiplicative)",
         &O::controller);
    text("preset", {"paper", "seed"}, "paper",
         "differential only: paper (Differential Transformer) or seed (the study's original variant, §3.3)",
         &O::preset, {"differential"});
    number("lambda_init", -10, 10, "differential seed preset only: the constant lambda_init (default 0.8)",
           &O::lambda_init, {"differential"});
    text("impl", {"auto", "materialized", "fused"}, "auto",
         "attention kernels: auto (fused on the GPU where the support matrix allows once the fused kernels are "
         "verified on a GPU, else materialized), "
         "materialized (probability maps in memory) or fused (flash-style: row statistics only; on the CPU the "
         "tiled reference)",
         &O::impl);
    text("draft_mask", {"causal", "none"}, "causal",
         "two_pass only: the draft pass's mask: causal (the default) or none (every token sees every token, the "
         "original's likely behaviour, METHODS §1.9)",
         &O::draft_mask, {"two_pass"});
    text("cached_gather", {"self", "draft_keys"}, "self",
         "two_pass only, KV-cache decoding: self (u_t = e_t, the token's own entropy, the original) or draft_keys "
         "(the draft attention over cached draft keys and entropies, METHODS §1.9)",
         &O::cached_gather, {"two_pass"});
    AttentionOptionDecl s;
    s.name = "scratch";
    s.choices = {"", "paper", "seed"};
    s.doc = "set by the from-scratch decoders: their baseline attention's layout";
    s.text = &O::scratch;
    s.variants = {"standard"};
    s.user_facing = false;
    d.push_back(s);
    return d;
  }();
  return decls;
}

namespace {

bool taken_by(const AttentionOptionDecl& d, const std::string& variant) {
  return d.variants.empty() || std::find(d.variants.begin(), d.variants.end(), variant) != d.variants.end();
}

bool is_default(const AttentionOptionDecl& d, const AttentionOptions& o) {
  if (d.text) return o.*d.text == d.def;
  return !(o.*d.number).has_value();
}

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + (x.empty() ? std::string("\"\"") : x);
  return s;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> attention_option_problems(const AttentionOptions& o, bool rope,
                                                                           const std::string& k) {
  std::vector<std::pair<std::string, std::string>> p;
  for (const AttentionOptionDecl& d : attention_option_decls())
    if (!taken_by(d, o.variant) && !is_default(d, o))
      p.push_back({d.name, k + d.name + " is an option of the " + join(d.variants, ", ") + " variant, not of " +
                               o.variant + "; remove it or set " + k + "variant: " + d.variants[0]});
  if (o.ramp_alpha && o.norm != "ramp" && o.ramp_schedule != "by_layer")
    p.push_back({"ramp_alpha", k + "ramp_alpha is set but " + k + "norm is " + o.norm +
                                   "; set norm: ramp or remove ramp_alpha"});
  const bool by_layer = o.ramp_schedule == "by_layer";
  if (by_layer && o.norm != "ramp")
    p.push_back({"ramp_schedule", k + "ramp_schedule: by_layer is set but " + k + "norm is " + o.norm +
                                      "; set norm: ramp or remove ramp_schedule"});
  if (by_layer && o.ramp_alpha)
    p.push_back({"ramp_alpha", k + "ramp_alpha is set with " + k + "ramp_schedule: by_layer, which takes each "
                                   "layer's alpha_l = (L - l)/L; remove ramp_alpha or set ramp_schedule: constant"});
  if (o.norm_mask == "unmasked" && o.norm == "softmax")
    p.push_back({"norm_mask", k + "norm_mask: unmasked is METHODS §4.4's literal masking of the linear and ramp "
                              "normalisations, but " + k + "norm is softmax; set norm: linear or ramp, or remove "
                              "norm_mask"});
  if (o.norm == "ramp" && !o.ramp_alpha && !by_layer)
    p.push_back({"norm", k + "norm: ramp needs " + k + "ramp_alpha (the weight of linear in alpha*linear + "
                         "(1-alpha)*softmax), or " + k + "ramp_schedule: by_layer"});
  if (o.variant == "differential" && o.preset == "paper" && o.lambda_init)
    p.push_back({"lambda_init", k + "lambda_init is the seed preset's constant; the paper preset uses "
                                    "0.8 - 0.6*exp(-0.3*l). Set " + k + "preset: seed or remove lambda_init"});
  return p;
}

AttentionOptions attention_options_from_json(const nlohmann::ordered_json& block, const std::string& source) {
  AttentionOptions o;
  if (block.is_null()) return o;
  CHECK(block.is_object(), "config '", source, "': attnlab.attention must be an object, got ", block.dump());
  std::vector<std::string> problems;
  for (auto it = block.begin(); it != block.end(); ++it) {
    const AttentionOptionDecl* decl = nullptr;
    for (const AttentionOptionDecl& d : attention_option_decls())
      if (d.name == it.key()) decl = &d;
    if (!decl) {
      std::vector<std::string> names;
      for (const AttentionOptionDecl& d : attention_option_decls())
        if (d.user_facing) names.push_back(d.name);
      problems.push_back("attnlab.attention has unknown key '" + it.key() + "' (the attention options are " +
                         join(names, ", ") + ")");
      continue;
    }
    const auto& v = it.value();
    if (decl->text) {
      // The variant's name is the registry's to check (core/layers/attention_layer.h): tests and
      // extensions register variants the table does not list.
      const bool any_name = decl->name == "variant" && v.is_string();
      const bool ok = any_name || (v.is_string() &&
                      std::find(decl->choices.begin(), decl->choices.end(), v.get<std::string>()) != decl->choices.end());
      if (!ok) {
        problems.push_back("attnlab.attention." + decl->name + " is " + v.dump() + "; use " + join(decl->choices, ", "));
        continue;
      }
      o.*decl->text = v.get<std::string>();
    } else {
      if (!v.is_number() || v.get<double>() < decl->lo || v.get<double>() > decl->hi) {
        std::ostringstream os;
        os << "attnlab.attention." << decl->name << " is " << v.dump() << "; use a number in [" << decl->lo << ", "
           << decl->hi << "]";
        problems.push_back(os.str());
        continue;
      }
      o.*decl->number = v.get<double>();
    }
  }
  if (problems.empty())
    for (const auto& [name, msg] : attention_option_problems(o, false, "attnlab.attention.")) problems.push_back(msg);
  if (!problems.empty()) {
    std::string msg = "config '" + source + "': ";
    for (size_t i = 0; i < problems.size(); ++i) msg += (i ? "; " : "") + problems[i];
    throw Error(msg);
  }
  return o;
}

nlohmann::ordered_json attention_options_to_json(const AttentionOptions& o) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const AttentionOptionDecl& d : attention_option_decls()) {
    if (is_default(d, o)) continue;
    if (d.text) j[d.name] = o.*d.text;
    else j[d.name] = *(o.*d.number);
  }
  return j;
}

double ramp_alpha_for_layer(const AttentionOptions& o, int64_t layer, int64_t num_layers) {
  if (o.ramp_schedule == "by_layer") {
    CHECK(num_layers >= 1 && layer >= 0 && layer < num_layers, "ramp_schedule: by_layer: layer ", layer,
          " is outside the model's ", num_layers, " layers");
    return double(num_layers - layer) / double(num_layers);
  }
  return o.ramp_alpha.value_or(0.0);
}

}  // namespace attnlab
