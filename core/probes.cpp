#include "core/probes.h"

#include <algorithm>
#include <set>

namespace attnlab {

struct ProbeSink::Pending {
  int64_t layer = 0, call = 0, B = 0, H = 0, T = 0, S = 0, nrows = 0, nspans = 0;
  std::vector<std::pair<std::string, Buffer>> outputs;  // what → device tensor
  Buffer rows, spans;
};

void ProbeSink::clear() {
  captures_.clear();
  calls_.clear();
}

std::vector<const Capture*> ProbeSink::find(const std::string& what, int64_t layer) const {
  std::vector<const Capture*> out;
  for (const Capture& c : captures_)
    if (c.what == what && (layer < 0 || c.layer == layer)) out.push_back(&c);
  return out;
}

bool ProbeSink::names_layer(const ProbeRequest& r, int64_t layer) const {
  return r.layers.empty() || std::find(r.layers.begin(), r.layers.end(), layer) != r.layers.end();
}

int64_t ProbeSink::next_call(int64_t layer, const std::string& kind) { return calls_[{layer, kind}]++; }

std::shared_ptr<ProbeSink::Pending> ProbeSink::begin_attention(Ctx& ctx, int64_t layer, int64_t B, int64_t H,
                                                                int64_t T, int64_t S, DType acc, bool distribution,
                                                                bool differential, AttentionCaptures* caps) {
  // The union of every request that names this layer.
  std::set<int32_t> rows;
  std::set<std::pair<int32_t, int32_t>> spans;
  bool scores = false, probs = false, entropy = false, kl = false, variance = false, any = false;
  for (const ProbeRequest& r : requests_) {
    if (!names_layer(r, layer)) continue;
    if (r.scores || r.probs) rows.insert(r.rows.begin(), r.rows.end());
    spans.insert(r.spans.begin(), r.spans.end());
    scores |= r.scores;
    probs |= r.probs;
    entropy |= r.entropy;
    kl |= r.kl;
    variance |= r.variance;
    any |= r.scores || r.probs || r.entropy || r.kl || r.variance || !r.spans.empty();
  }
  if (!any) return nullptr;
  CHECK(distribution || (!entropy && !kl), "probes: entropy and KL need a probability distribution; layer ", layer,
        " has ", differential ? "differential" : "unnormalised", " maps (ask for probs, variance or span mass)");
  auto p = std::make_shared<Pending>();
  p->layer = layer;
  p->call = next_call(layer, "attention");
  p->B = B, p->H = H, p->T = T, p->S = S;
  auto out = [&](const char* what, std::initializer_list<int64_t> dims) -> Tensor {
    p->outputs.emplace_back(what, Buffer(ctx.device, acc, dims, what));
    return p->outputs.back().second.t();
  };
  if (!rows.empty() && (scores || probs)) {
    std::vector<double> r(rows.begin(), rows.end());
    p->nrows = int64_t(r.size());
    p->rows = Buffer(ctx.device, DType::i32, {p->nrows}, "probe.rows");
    from_host_f64(ctx, p->rows.t(), r);
    caps->rows = p->rows.t();
    if (scores) caps->scores = out("scores", {B, H, p->nrows, S});
    if (scores && differential) caps->scores2 = out("scores2", {B, H, p->nrows, S});
    if (probs) caps->probs = out("probs", {B, H, p->nrows, S});
  }
  if (entropy) caps->entropy = out("entropy", {B, H, T});
  if (kl) caps->kl = out("kl", {B, H, T});
  if (variance) caps->variance = out("variance", {B, H, T});
  p->nspans = int64_t(spans.size());
  if (p->nspans > 0) {
    std::vector<double> s;
    for (const auto& [b, e] : spans) s.push_back(b), s.push_back(e);
    p->spans = Buffer(ctx.device, DType::i32, {p->nspans, 2}, "probe.spans");
    from_host_f64(ctx, p->spans.t(), s);
    caps->spans = p->spans.t();
    caps->span_mass = out("span_mass", {B, H, T, p->nspans});
  }
  return p;
}

void ProbeSink::finish_attention(Ctx& ctx, const std::shared_ptr<Pending>& p) {
  if (!p) return;
  for (auto& [what, buf] : p->outputs) {
    Capture c;
    c.what = what;
    c.layer = p->layer;
    c.call = p->call;
    for (int i = 0; i < buf.t().ndim; ++i) c.shape.push_back(buf.t().dim(i));
    c.values = to_host_f64(ctx, buf.t());
    captures_.push_back(std::move(c));
  }
}

bool ProbeSink::wants(int64_t layer, const std::string& what) const {
  for (const ProbeRequest& r : requests_) {
    if (!names_layer(r, layer) || r.positions.empty()) continue;
    if ((what == "hidden" && r.hidden) || (what == "attn_out" && r.attn_out) || (what == "q_proj" && r.q_proj))
      return true;
  }
  return false;
}

void ProbeSink::take_activation(Ctx& ctx, int64_t layer, const std::string& what, const Tensor& x) {
  std::set<int32_t> pos;
  for (const ProbeRequest& r : requests_)
    if (names_layer(r, layer)) pos.insert(r.positions.begin(), r.positions.end());
  CHECK(x.ndim == 3, "probes: activation '", what, "' must be [B, T, W], got ", x.shape_str());
  const int64_t B = x.dim(0), T = x.dim(1), W = x.dim(2);
  std::vector<int32_t> keep;
  for (int32_t t : pos)
    if (t >= 0 && t < T) keep.push_back(t);
  const std::vector<double> all = to_host_f64(ctx, x);
  Capture c;
  c.what = what;
  c.layer = layer;
  c.call = next_call(layer, what);
  c.shape = {B, int64_t(keep.size()), W};
  for (int64_t b = 0; b < B; ++b)
    for (int32_t t : keep)
      for (int64_t w = 0; w < W; ++w) c.values.push_back(all[size_t((b * T + t) * W + w)]);
  captures_.push_back(std::move(c));
}

bool ProbeSink::wants_controller(int64_t layer) const {
  for (const ProbeRequest& r : requests_)
    if (r.controller && names_layer(r, layer)) return true;
  return false;
}

void ProbeSink::take_controller(Ctx& ctx, int64_t layer, const Tensor& x) { take_whole(ctx, layer, "controller", x); }

bool ProbeSink::wants_gates(int64_t layer) const {
  for (const ProbeRequest& r : requests_)
    if (r.gates && names_layer(r, layer)) return true;
  return false;
}

void ProbeSink::take_gates(Ctx& ctx, int64_t layer, const Tensor& m) { take_whole(ctx, layer, "gate_magnitude", m); }

void ProbeSink::take_whole(Ctx& ctx, int64_t layer, const std::string& what, const Tensor& x) {
  Capture c;
  c.what = what;
  c.layer = layer;
  c.call = next_call(layer, what);
  c.shape.assign(x.shape.begin(), x.shape.begin() + x.ndim);
  c.values = to_host_f64(ctx, x);
  captures_.push_back(std::move(c));
}

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i)
    if (i == s.size() || s[i] == sep) {
      out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  return out;
}

bool parse_int(const std::string& s, int64_t* v) {
  if (s.empty()) return false;
  size_t used = 0;
  try {
    *v = std::stoll(s, &used);
  } catch (...) {
    return false;
  }
  return used == s.size();
}

}  // namespace

ProbeRequest parse_probe_request(const std::string& spec, int64_t T, int64_t num_layers) {
  const std::string usage = " (WHAT[@LAYERS][:SELECTION], e.g. probs@3:last, entropy, span_mass@all:0-4, hidden@2:last)";
  std::string what = spec, layers = "all", sel;
  if (const size_t colon = what.find(':'); colon != std::string::npos) {
    sel = what.substr(colon + 1);
    what = what.substr(0, colon);
  }
  if (const size_t at = what.find('@'); at != std::string::npos) {
    layers = what.substr(at + 1);
    what = what.substr(0, at);
  }
  ProbeRequest r;
  if (layers != "all")
    for (const std::string& l : split(layers, ',')) {
      int64_t v = 0;
      INPUT_CHECK(parse_int(l, &v) && v >= 0 && v < num_layers, "capture '", spec, "': layer '", l,
                  "' is not a layer index of this model (0 to ", num_layers - 1, ", or all)", usage);
      r.layers.push_back(v);
    }
  auto positions = [&](std::vector<int32_t>& out) {
    INPUT_CHECK(!sel.empty(), "capture '", spec, "': ", what, " needs positions after ':' (e.g. ", what, "@0:last)",
                usage);
    for (const std::string& p : split(sel, ',')) {
      int64_t v = 0;
      if (p == "last") v = T - 1;
      else INPUT_CHECK(parse_int(p, &v), "capture '", spec, "': '", p, "' is not a position (an index, last, or -k)",
                       usage);
      if (v < 0) v += T;
      INPUT_CHECK(v >= 0 && v < T, "capture '", spec, "': position ", p, " is outside the ", T, " tokens");
      out.push_back(int32_t(v));
    }
  };
  if (what == "scores" || what == "probs") {
    (what == "scores" ? r.scores : r.probs) = true;
    positions(r.rows);
  } else if (what == "entropy" || what == "kl" || what == "variance") {
    INPUT_CHECK(sel.empty(), "capture '", spec, "': ", what, " is captured for every row; drop ':", sel, "'", usage);
    (what == "entropy" ? r.entropy : what == "kl" ? r.kl : r.variance) = true;
  } else if (what == "span_mass") {
    INPUT_CHECK(!sel.empty(), "capture '", spec, "': span_mass needs key spans after ':' (e.g. span_mass:0-4,4-9)",
                usage);
    for (const std::string& p : split(sel, ',')) {
      const auto ends = split(p, '-');
      int64_t b = 0, e = 0;
      INPUT_CHECK(ends.size() == 2 && parse_int(ends[0], &b) && parse_int(ends[1], &e) && 0 <= b && b < e,
                  "capture '", spec, "': '", p, "' is not a key span B-E with 0 ≤ B < E", usage);
      r.spans.push_back({int32_t(b), int32_t(e)});
    }
  } else if (what == "hidden" || what == "attn_out" || what == "q_proj") {
    (what == "hidden" ? r.hidden : what == "attn_out" ? r.attn_out : r.q_proj) = true;
    positions(r.positions);
  } else if (what == "controller" || what == "gate_magnitude") {
    INPUT_CHECK(sel.empty(), "capture '", spec, "': ", what, " is captured for every row; drop ':", sel, "'", usage);
    (what == "controller" ? r.controller : r.gates) = true;
  } else {
    FAIL_WITH("capture '", spec, "': unknown capture '", what,
              "'; use scores, probs, entropy, kl, variance, span_mass, hidden, attn_out, q_proj, controller or "
              "gate_magnitude",
              usage);
  }
  return r;
}

}  // namespace attnlab
