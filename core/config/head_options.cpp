#include "core/config/head_options.h"

#include <cmath>
#include <sstream>

#include "core/error.h"

namespace attnlab {

using ojson = nlohmann::ordered_json;
using O = BackwardHeadOptions;

const std::vector<std::string>& head_kind_choices() {
  static const std::vector<std::string> k = {"lm_head", "lm_head_untied", "backward_head"};
  return k;
}

const std::vector<HeadOptionDecl>& backward_head_option_decls() {
  static const std::vector<HeadOptionDecl> d = {
      {"latent", "backward_head: width r of the latent projection of the normalised embeddings; 0 = off (r = D)",
       &O::latent, 0, 1 << 16},
      {"dk", "backward_head: key/query width; 0 = r", &O::dk, 0, 1 << 16},
      {"dv", "backward_head: value width; 0 = r", &O::dv, 0, 1 << 16},
      {"heads", "backward_head: heads H (mixture of H softmaxes); divides dk and dv", &O::heads, 1, 1024},
      {"top_k", "backward_head: average the values over GPT-2's top-k tokens only; 0 = all V", &O::top_k, 0,
       1 << 24},
      {"tau", "backward_head: temperature of GPT-2's weights softmax(z/tau)", &O::tau, 1e-3, 1e3},
      {"tile", "backward_head: vocabulary rows per tile (memory: rows x tile scores)", &O::tile, 1, 1 << 24},
      {"learn_beta", "backward_head: learn the score scale beta (false: beta = 1)", &O::learn_beta, 0, 1},
  };
  return d;
}

std::vector<std::string> backward_head_option_problems(const O& o, int64_t hidden, const std::string& prefix) {
  std::vector<std::string> out;
  const int64_t r = o.latent > 0 ? o.latent : hidden;
  const int64_t dk = o.dk > 0 ? o.dk : r, dv = o.dv > 0 ? o.dv : r;
  if (o.heads < 1) return {prefix + "heads must be >= 1"};
  if (dk % o.heads || dv % o.heads) {
    std::ostringstream os;
    os << prefix << "heads (" << o.heads << ") must divide dk (" << dk << ") and dv (" << dv
       << "); fix: choose heads among the common divisors, or set " << prefix << "dk / " << prefix << "dv";
    out.push_back(os.str());
  }
  return out;
}

std::string head_kind_from_json(const ojson& block, const std::string& source) {
  if (block.is_null()) return "lm_head";
  INPUT_CHECK(block.is_object() && block.contains("kind") && block["kind"].is_string(), "config '", source,
              "': attnlab.head must be an object with a \"kind\" (lm_head, lm_head_untied or backward_head), got ",
              block.dump());
  return block["kind"].get<std::string>();
}

O backward_head_options_from_json(const ojson& block, const std::string& source) {
  O o;
  if (block.is_null()) return o;
  std::vector<std::string> bad;
  for (auto it = block.begin(); it != block.end(); ++it) {
    if (it.key() == "kind") continue;
    const HeadOptionDecl* decl = nullptr;
    for (const auto& d : backward_head_option_decls())
      if (d.name == it.key()) decl = &d;
    if (!decl) {
      bad.push_back("unknown option '" + it.key() + "'");
      continue;
    }
    const ojson& v = it.value();
    std::visit(
        [&](auto m) {
          using M = std::remove_reference_t<decltype(o.*m)>;
          if constexpr (std::is_same_v<M, bool>) {
            if (!v.is_boolean()) bad.push_back("'" + it.key() + "' must be true or false");
            else o.*m = v.get<bool>();
          } else if constexpr (std::is_same_v<M, int64_t>) {
            if (!v.is_number_integer()) bad.push_back("'" + it.key() + "' must be an integer");
            else o.*m = v.get<int64_t>();
          } else {
            if (!v.is_number()) bad.push_back("'" + it.key() + "' must be a number");
            else o.*m = v.get<double>();
          }
          if constexpr (!std::is_same_v<M, bool>) {
            if (v.is_number() && (double(o.*m) < decl->lo || double(o.*m) > decl->hi))
              bad.push_back("'" + it.key() + "' must lie in [" + std::to_string(decl->lo) + ", " +
                            std::to_string(decl->hi) + "]");
          }
        },
        decl->member);
  }
  INPUT_CHECK(bad.empty(), "config '", source, "': attnlab.head (backward_head): ", [&] {
    std::string s;
    for (const auto& b : bad) s += (s.empty() ? "" : "; ") + b;
    return s;
  }(), ". Options: latent, dk, dv, heads, top_k, tau, tile, learn_beta");
  return o;
}

ojson head_options_to_json(const std::string& kind, const O& o) {
  ojson j;
  j["kind"] = kind;
  if (kind != "backward_head") return j;
  const O def;
  for (const auto& d : backward_head_option_decls())
    std::visit(
        [&](auto m) {
          if (o.*m != def.*m) j[d.name] = o.*m;
        },
        d.member);
  return j;
}

}  // namespace attnlab
