#include "studies/two_pass/gate_report.h"

#include <cstdio>
#include <map>

#include "core/error.h"

namespace attnlab::two_pass {

GateReport gate_report_from_captures(const ProbeSink& sink, int64_t layers, int64_t first_call, int64_t row,
                                     const std::vector<int32_t>& ids, const std::vector<std::string>& tokens,
                                     const std::string& model) {
  CHECK(ids.size() == tokens.size(), "gate report: ", ids.size(), " ids for ", tokens.size(), " token texts");
  CHECK(layers >= 1 && first_call >= 0 && row >= 0, "gate report: bad layers/first_call/row");
  const std::vector<const Capture*> all = sink.find("gate_magnitude");
  INPUT_CHECK(!all.empty(), "--analyze-gates: no gate_magnitude capture was produced: the model '", model,
              "' has no two-pass gates (its attention variant is not two_pass). Fix: chat with a two_pass model "
              "(a folder whose config.json says attnlab.attention.variant: two_pass, e.g. one trained from "
              "experiments/two-pass/), or add --attention variant=two_pass to gate this one (freshly added gates "
              "start at zero), or drop --analyze-gates");
  GateReport r;
  r.layers = layers;
  r.ids = ids;
  r.tokens = tokens;
  const int64_t N = int64_t(ids.size());
  std::map<std::pair<int64_t, int64_t>, const Capture*> by_call;
  for (const Capture* c : all) by_call[{c->layer, c->call}] = c;
  r.magnitude.assign(size_t(N), std::vector<double>(size_t(layers), 0.0));
  for (int64_t l = 0; l < layers; ++l)
    for (int64_t i = 0; i < N; ++i) {
      const auto it = by_call.find({l, first_call + i});
      CHECK(it != by_call.end(), "gate report: layer ", l, " has no gate_magnitude capture for call ", first_call + i,
            " (generated token ", i, ")");
      const Capture& c = *it->second;
      CHECK(c.shape.size() == 2 && c.shape[1] == 1 && row < c.shape[0], "gate report: layer ", l, " call ", c.call,
            " captured ", c.shape.size(), "-d values; a decode step gives [B, 1] with B > ", row);
      r.magnitude[size_t(i)][size_t(l)] = c.values[size_t(row)];
    }
  r.per_layer_mean.assign(size_t(layers), 0.0);
  if (N == 0) return r;
  for (int64_t i = 0; i < N; ++i) {
    double token_mean = 0;
    for (int64_t l = 0; l < layers; ++l) {
      r.per_layer_mean[size_t(l)] += r.magnitude[size_t(i)][size_t(l)] / double(N);
      token_mean += r.magnitude[size_t(i)][size_t(l)] / double(layers);
    }
    r.overall_mean += token_mean / double(N);
    if (r.max_index < 0 || token_mean > r.max_value) {
      r.max_index = i;
      r.max_value = token_mean;
    }
  }
  return r;
}

nlohmann::ordered_json gate_report_json(const GateReport& r) {
  nlohmann::ordered_json j;
  j["tokens"] = r.tokens;
  j["ids"] = r.ids;
  j["layers"] = r.layers;
  j["magnitude"] = r.magnitude;
  j["per_layer_mean"] = r.per_layer_mean;
  j["overall_mean"] = r.overall_mean;
  if (r.max_index >= 0)
    j["max_token"] = {{"index", r.max_index},
                      {"id", r.ids[size_t(r.max_index)]},
                      {"token", r.tokens[size_t(r.max_index)]},
                      {"magnitude", r.max_value}};
  else
    j["max_token"] = nullptr;
  return j;
}

namespace {

// A token's text on one console line: quoted, newlines and tabs escaped.
std::string shown(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else out += c;
  }
  return out + "'";
}

}  // namespace

std::string gate_report_table(const GateReport& r) {
  std::string out = "gate magnitude (‖adj_q‖+‖adj_k‖+‖adj_v‖)/3 per generated token and layer:\n";
  char buf[64];
  out += "     #  token               ";
  for (int64_t l = 0; l < r.layers; ++l) {
    std::snprintf(buf, sizeof buf, " %9s", ("L" + std::to_string(l)).c_str());
    out += buf;
  }
  out += "      mean\n";
  for (size_t i = 0; i < r.magnitude.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%6zu  %-20s", i, shown(r.tokens[i]).c_str());
    out += buf;
    double mean = 0;
    for (double m : r.magnitude[i]) {
      std::snprintf(buf, sizeof buf, " %9.5f", m);
      out += buf;
      mean += m / double(r.layers);
    }
    std::snprintf(buf, sizeof buf, " %9.5f\n", mean);
    out += buf;
  }
  out += "per-layer mean:              ";
  for (double m : r.per_layer_mean) {
    std::snprintf(buf, sizeof buf, " %9.5f", m);
    out += buf;
  }
  std::snprintf(buf, sizeof buf, " %9.5f\n", r.overall_mean);
  out += buf;
  if (r.max_index >= 0) {
    std::snprintf(buf, sizeof buf, "%.5f", r.max_value);
    out += "largest: token #" + std::to_string(r.max_index) + " " + shown(r.tokens[size_t(r.max_index)]) +
           " (layer mean " + buf + ")\n";
  } else {
    out += "no generated tokens\n";
  }
  return out;
}

}  // namespace attnlab::two_pass
