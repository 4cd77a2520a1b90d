#include "core/config/decoder_options.h"

#include <algorithm>

#include "core/error.h"

namespace attnlab {

const std::vector<DecoderOptionDecl>& decoder_option_decls() {
  static const std::vector<DecoderOptionDecl> decls = [] {
    std::vector<DecoderOptionDecl> d;
    DecoderOptionDecl rope;
    rope.name = "rope";
    rope.doc = "from-scratch decoders: rotary positions (theta 10000; rotate-half for the standard baseline, "
               "interleaved for differential, per sub-head) instead of the learned position table (METHODS 3.5 --rope)";
    rope.flag = &DecoderOptions::rope;
    d.push_back(rope);
    DecoderOptionDecl ffn;
    ffn.name = "ffn";
    ffn.doc = "from-scratch decoders: gelu (Linear-GELU-Dropout-Linear with biases) or swiglu (LLaMA-style gated FFN, "
              "no biases; hidden size model.arch.intermediate_size, else 8/3*D rounded up to a multiple of 64; "
              "METHODS 3.5 --ffn swiglu)";
    ffn.choices = {"gelu", "swiglu"};
    ffn.def = "gelu";
    ffn.text = &DecoderOptions::ffn;
    d.push_back(ffn);
    return d;
  }();
  return decls;
}

bool decoder_option_is_default(const DecoderOptionDecl& d, const DecoderOptions& o) {
  return d.text ? o.*d.text == d.def : !(o.*d.flag);
}

nlohmann::ordered_json decoder_options_to_json(const DecoderOptions& o) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const DecoderOptionDecl& d : decoder_option_decls()) {
    if (decoder_option_is_default(d, o)) continue;
    if (d.text) j[d.name] = o.*d.text;
    else j[d.name] = o.*d.flag;
  }
  return j;
}

DecoderOptions decoder_options_from_json(const nlohmann::ordered_json& j, const std::string& source) {
  DecoderOptions o;
  if (j.is_null()) return o;
  CHECK(j.is_object(), "'", source, "': the decoder options must be a JSON object, got ", j.dump());
  std::string problems;
  auto problem = [&](const std::string& p) { problems += (problems.empty() ? "" : "; ") + p; };
  for (auto it = j.begin(); it != j.end(); ++it) {
    const auto& decls = decoder_option_decls();
    const auto decl = std::find_if(decls.begin(), decls.end(), [&](const auto& d) { return d.name == it.key(); });
    if (decl == decls.end()) {
      problem("unknown decoder option '" + it.key() + "' (the options are rope, ffn)");
      continue;
    }
    const auto& v = it.value();
    if (decl->flag) {
      if (v.is_boolean()) o.*decl->flag = v.get<bool>();
      else problem("decoder option " + decl->name + " is " + v.dump() + "; use true or false");
    } else if (v.is_string() && std::find(decl->choices.begin(), decl->choices.end(), v.get<std::string>()) !=
                                    decl->choices.end()) {
      o.*decl->text = v.get<std::string>();
    } else {
      std::string choices;
      for (const auto& c : decl->choices) choices += (choices.empty() ? "" : ", ") + c;
      problem("decoder option " + decl->name + " is " + v.dump() + "; use " + choices);
    }
  }
  if (!problems.empty())
    FAIL_WITH("'", source, "': ", problems, ". Fix: the file was written by another attnlab version or edited; "
              "save it again with this one");
  return o;
}

std::string decoder_options_words(const DecoderOptions& o) {
  std::string s;
  if (o.rope) s += "RoPE";
  if (o.ffn != "gelu") s += (s.empty() ? "" : ", ") + o.ffn + " FFN";
  return s;
}

}  // namespace attnlab
