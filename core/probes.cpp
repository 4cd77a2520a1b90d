#include "core/probes.h"

#include <algorithm>
#include <exception>
#include <set>

namespace attnlab {

// The union of every request naming one layer (requests do not change between add() calls), with
// the query rows and key spans uploaded once for every call of the layer.
struct ProbeSink::LayerPlan {
  bool any = false, scores = false, probs = false, entropy = false, kl = false, variance = false;
  std::vector<int32_t> rows;
  std::vector<std::pair<int32_t, int32_t>> spans;
  Buffer rows_dev, spans_dev;
  Device device = Device::cpu;
};

struct ProbeSink::Stage {
  Buffer buf;
  int64_t capacity = 0, used = 0;
};

namespace {
constexpr int64_t kStageAlign = 16;           // elements: 64-byte aligned slots for vector loads
constexpr int64_t kStageMin = int64_t(1) << 16;  // elements a stage starts with
}  // namespace

ProbeSink::ProbeSink() = default;
ProbeSink::~ProbeSink() = default;

void ProbeSink::add(const ProbeRequest& r) {
  requests_.push_back(r);
  plans_.clear();
}

void ProbeSink::clear() {
  captures_.clear();
  calls_.clear();
  discard_staged();
}

const std::vector<Capture>& ProbeSink::captures() const {
  CHECK(staged_.empty(), "probes: ", staged_.size(), " captures are still staged on the device; read them after the "
        "ProbeScope ends or after flush(ctx)");
  return captures_;
}

std::vector<const Capture*> ProbeSink::find(const std::string& what, int64_t layer) const {
  std::vector<const Capture*> out;
  for (const Capture& c : captures())
    if (c.what == what && (layer < 0 || c.layer == layer)) out.push_back(&c);
  return out;
}

bool ProbeSink::names_layer(const ProbeRequest& r, int64_t layer) const {
  return r.layers.empty() || std::find(r.layers.begin(), r.layers.end(), layer) != r.layers.end();
}

int64_t ProbeSink::next_call(int64_t layer, const std::string& kind) { return calls_[{layer, kind}]++; }

const ProbeSink::LayerPlan& ProbeSink::plan(Ctx& ctx, int64_t layer) {
  auto& slot = plans_[layer];
  if (slot && slot->device == ctx.device) return *slot;
  slot = std::make_unique<LayerPlan>();
  LayerPlan& p = *slot;
  p.device = ctx.device;
  std::set<int32_t> rows;
  std::set<std::pair<int32_t, int32_t>> spans;
  for (const ProbeRequest& r : requests_) {
    if (!names_layer(r, layer)) continue;
    if (r.scores || r.probs) rows.insert(r.rows.begin(), r.rows.end());
    spans.insert(r.spans.begin(), r.spans.end());
    p.scores |= r.scores;
    p.probs |= r.probs;
    p.entropy |= r.entropy;
    p.kl |= r.kl;
    p.variance |= r.variance;
    p.any |= r.scores || r.probs || r.entropy || r.kl || r.variance || !r.spans.empty();
  }
  p.rows.assign(rows.begin(), rows.end());
  p.spans.assign(spans.begin(), spans.end());
  if (!p.rows.empty()) {
    p.rows_dev = Buffer(ctx.device, DType::i32, {int64_t(p.rows.size())}, "probe.rows");
    from_host_f64(ctx, p.rows_dev.t(), std::vector<double>(p.rows.begin(), p.rows.end()));
  }
  if (!p.spans.empty()) {
    std::vector<double> flat;
    for (const auto& [b, e] : p.spans) flat.push_back(b), flat.push_back(e);
    p.spans_dev = Buffer(ctx.device, DType::i32, {int64_t(p.spans.size()), 2}, "probe.spans");
    from_host_f64(ctx, p.spans_dev.t(), flat);
  }
  return p;
}

ProbeSink::Staged ProbeSink::staged_entry(const std::string& what, int64_t layer, int64_t call,
                                          std::vector<int64_t> shape) {
  Staged e;
  e.meta.what = what;
  e.meta.layer = layer;
  e.meta.call = call;
  e.meta.shape = std::move(shape);
  return e;
}

Tensor ProbeSink::stage(Ctx& ctx, DType dt, const std::vector<int64_t>& dims, Staged entry) {
  CHECK(!dims.empty() && dims.size() <= size_t(Tensor::kMaxDims), "probes: a capture of ", dims.size(), " dims");
  int64_t count = 1;
  for (int64_t d : dims) count *= d;
  auto& slot = stages_[dt];
  if (!slot) slot = std::make_unique<Stage>();
  Stage* st = slot.get();
  const int64_t need = (count + kStageAlign - 1) / kStageAlign * kStageAlign;
  const bool other_device = st->capacity > 0 && st->buf.t().device != ctx.device;
  if (st->used + need > st->capacity || other_device) {
    flush(ctx);  // everything staged goes to the host; the stage starts over
    if (need > st->capacity || other_device) {
      st->capacity = std::max({need, 2 * st->capacity, kStageMin});
      st->buf = Buffer(ctx.device, dt, {st->capacity}, "probe.stage");
    }
  }
  entry.dtype = dt;
  entry.offset = st->used;
  entry.count = count;
  st->used += need;
  Tensor t = st->buf.t();
  t.data = static_cast<char*>(t.data) + size_t(entry.offset) * dtype_size(dt);
  t.ndim = int(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) t.shape[i] = dims[i];
  t.name = "probe.capture";
  staged_.push_back(std::move(entry));
  return t;
}

void ProbeSink::discard_staged() {
  staged_.clear();
  for (auto& [dt, st] : stages_) st->used = 0;
}

void ProbeSink::flush(const Ctx& ctx) {
  if (staged_.empty()) return;
  std::map<DType, std::vector<double>> host;
  for (auto& [dt, st] : stages_)
    if (st->used > 0) {
      Tensor used = st->buf.t();
      used.shape[0] = st->used;
      host[dt] = to_host_f64(ctx, used);  // one synchronising copy per dtype
      st->used = 0;
    }
  for (Staged& e : staged_) {
    const std::vector<double>& h = host.at(e.dtype);
    Capture c = std::move(e.meta);
    if (e.T > 0) {  // an activation [B, T, W]: keep the requested positions
      const int64_t B = c.shape[0], W = c.shape[2];
      c.values.reserve(size_t(B) * e.keep.size() * size_t(W));
      for (int64_t b = 0; b < B; ++b)
        for (int32_t t : e.keep) {
          const auto first = h.begin() + e.offset + (b * e.T + t) * W;
          c.values.insert(c.values.end(), first, first + W);
        }
    } else {
      c.values.assign(h.begin() + e.offset, h.begin() + e.offset + e.count);
    }
    captures_.push_back(std::move(c));
  }
  staged_.clear();
}

bool ProbeSink::begin_attention(Ctx& ctx, int64_t layer, int64_t B, int64_t H, int64_t T, int64_t S, DType acc,
                                bool distribution, bool differential, AttentionCaptures* caps) {
  const LayerPlan& p = plan(ctx, layer);
  if (!p.any) return false;
  CHECK(distribution || (!p.entropy && !p.kl), "probes: entropy and KL need a probability distribution; layer ", layer,
        " has ", differential ? "differential" : "unnormalised", " maps (ask for probs, variance or span mass)");
  const int64_t call = next_call(layer, "attention");
  auto out = [&](const char* what, std::vector<int64_t> dims) -> Tensor {
    return stage(ctx, acc, dims, staged_entry(what, layer, call, dims));
  };
  const int64_t nrows = int64_t(p.rows.size());
  if (nrows > 0 && (p.scores || p.probs)) {
    caps->rows = p.rows_dev.t();
    if (p.scores) caps->scores = out("scores", {B, H, nrows, S});
    if (p.scores && differential) caps->scores2 = out("scores2", {B, H, nrows, S});
    if (p.probs) caps->probs = out("probs", {B, H, nrows, S});
    // The op leaves the slots of rows beyond this call's T untouched: they read NaN, not stale values.
    if (p.rows.back() >= T)
      for (const Tensor* t : {&caps->scores, &caps->scores2, &caps->probs})
        if (t->defined()) poison_tensor(ctx, *t);
  }
  if (p.entropy) caps->entropy = out("entropy", {B, H, T});
  if (p.kl) caps->kl = out("kl", {B, H, T});
  if (p.variance) caps->variance = out("variance", {B, H, T});
  if (!p.spans.empty()) {
    caps->spans = p.spans_dev.t();
    caps->span_mass = out("span_mass", {B, H, T, int64_t(p.spans.size())});
  }
  return true;
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
  Staged e = staged_entry(what, layer, next_call(layer, what), {B, int64_t(keep.size()), W});
  e.keep = std::move(keep);
  e.T = T;
  const Tensor dst = stage(ctx, x.dtype, {B, T, W}, std::move(e));
  copy_tensor_async(ctx, dst, x);
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
  const std::vector<int64_t> dims(x.shape.begin(), x.shape.begin() + x.ndim);
  const Tensor dst = stage(ctx, x.dtype, dims, staged_entry(what, layer, next_call(layer, what), dims));
  copy_tensor_async(ctx, dst, x);
}

ProbeScope::ProbeScope(Ctx& ctx, ProbeSink* sink)
    : ctx_(ctx), sink_(sink && !sink->empty() ? sink : nullptr), before_(ctx.probes),
      exceptions_(std::uncaught_exceptions()) {
  if (sink_) ctx_.probes = sink_;
}

ProbeScope::~ProbeScope() noexcept(false) {
  if (!sink_) return;
  ctx_.probes = before_;
  if (std::uncaught_exceptions() > exceptions_) {
    sink_->discard_staged();  // unwinding: the op may not have written them
    return;
  }
  sink_->flush(ctx_);
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
