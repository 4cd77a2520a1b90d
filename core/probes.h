#pragma once
// Probes: what an analysis asks the layers to capture, and where the captures land (DESIGN.md §6).
//
//   ProbeSink sink;
//   ProbeRequest r;  r.layers = {3};  r.rows = {T - 1};  r.probs = true;  r.entropy = true;
//   sink.add(r);
//   { ProbeScope scope(ctx, &sink);  model.forward(...); }   // attached for the scope, then flushed
//   for (const Capture& c : sink.captures()) ...   // keyed by (what, layer, call); values [B, H, ...]
//
// Attention statistics come from the attention op's own captures (row reductions in the kernels: no
// probability map is stored for them); activations (hidden states, attention outputs, q_proj
// outputs) are copied at the chosen positions. Nothing is captured, and nothing costs, when no sink
// is attached (ctx.probes == nullptr) or no request names the layer: the layers then pass no
// capture tensors at all, so their outputs are bit-identical with or without a sink.
//
// It works in training forwards, plain forwards and cached generation (every forward_cached call is
// one call); each (layer) counts its calls from 0 until clear(). Captures are staged on the device:
// the op writes them into a staging buffer the sink reuses from call to call (no allocation, no
// host synchronisation per layer and call), and flush() — at the end of a ProbeScope, or when the
// staging buffer is full — copies everything staged to the host at once (one copy per dtype).
// Reading captures while some are still staged is refused (flush first).
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/ctx.h"
#include "core/memory.h"
#include "core/ops/attention.h"

namespace attnlab {

struct ProbeRequest {
  std::vector<int64_t> layers;  // layers it applies to; empty: every layer
  // Attention, per head:
  std::vector<int32_t> rows;    // query rows (positions within the call) for `scores` / `probs`;
                                // a row beyond a call's last query reads NaN in that call
  bool scores = false;          // pre-softmax score rows x = Sc·τ + a (before the mask)  [B, H, rows, S]
  bool probs = false;           // probability rows                                        [B, H, rows, S]
  bool entropy = false;         // −Σ P log P per row                                      [B, H, T]
  bool kl = false;              // KL(softmax(Sc) ‖ P) per row                              [B, H, T]
  bool variance = false;        // variance of P over the visible keys per row             [B, H, T]
  std::vector<std::pair<int32_t, int32_t>> spans;  // key spans [begin, end): mass on each  [B, H, T, nspans]
  // Activations at chosen positions (within the call), [B, npos, width]:
  std::vector<int32_t> positions;
  bool hidden = false;          // the residual stream after the block
  bool attn_out = false;        // the attention layer's output (before the residual add)
  bool q_proj = false;          // the q projection's output (before RoPE)
  // Score controllers (option "controller"): the controller's output per row, the whole call
  // (information density: the adjustment a; temperature: tanh(z), τ = exp of it)   [B, H, T]
  bool controller = false;
  // Two-pass gated attention (variant "two_pass"): per token, (‖adj_q‖ + ‖adj_k‖ + ‖adj_v‖)/3 of the
  // gated pass's adjustments (METHODS §1.8), the whole call                                 [B, T]
  bool gates = false;
};

struct Capture {
  std::string what;             // "scores", "scores2", "probs", "entropy", "kl", "variance", "span_mass",
                                // "hidden", "attn_out", "q_proj", "controller",
                                // "gate_magnitude"
  int64_t layer = 0;
  int64_t call = 0;             // the layer's forward count since clear()
  std::vector<int64_t> shape;
  std::vector<double> values;
};

// A request from its command-line spelling WHAT[@LAYERS][:SELECTION] (attnlab forward --capture):
//   WHAT       scores | probs | entropy | kl | variance | span_mass | hidden | attn_out | q_proj |
//              controller | gate_magnitude
//   LAYERS     comma-separated layer indices, or all (the default)
//   SELECTION  scores/probs: query rows; hidden/attn_out/q_proj: positions (indices; last; −k counts
//              from the end); span_mass: key spans B-E (end exclusive), comma-separated
// e.g. probs@3:last, entropy, kl@0,1, span_mass@all:0-4,4-9, hidden@2:0,last. T resolves last/−k.
// Throws naming the spelling and the fix.
ProbeRequest parse_probe_request(const std::string& spec, int64_t T, int64_t num_layers);

class ProbeSink {
 public:
  ProbeSink();
  ~ProbeSink();
  ProbeSink(const ProbeSink&) = delete;
  ProbeSink& operator=(const ProbeSink&) = delete;

  void add(const ProbeRequest& r);
  bool empty() const { return requests_.empty(); }
  const std::vector<Capture>& captures() const;
  // Forgets the captures (staged ones too) and the call counters (not the requests).
  void clear();
  // The captures of one kind (in the order taken).
  std::vector<const Capture*> find(const std::string& what, int64_t layer = -1) const;
  // Copies every staged capture to the host (one device-to-host copy per staged dtype).
  void flush(const Ctx& ctx);
  // Whether captures wait on the device for flush().
  bool staged() const { return !staged_.empty(); }

  // ---- for layers ----
  // Attention captures of one call of `layer`: fills `caps` with staging tensors (or leaves it
  // empty and returns false when no request names the layer). `distribution`: whether entropy/KL
  // exist for this layer's maps. `acc`: the op's accumulation dtype (acc_dtype of the compute dtype).
  // The op then writes the captures in place; nothing else is needed after it.
  bool begin_attention(Ctx& ctx, int64_t layer, int64_t B, int64_t H, int64_t T, int64_t S, DType acc,
                       bool distribution, bool differential, AttentionCaptures* caps);
  // Whether `layer` wants the activation `what` ("hidden", "attn_out", "q_proj"), and taking it:
  // x is [B, T, W]; the rows at the requested positions are kept (positions ≥ T are skipped).
  bool wants(int64_t layer, const std::string& what) const;
  void take_activation(Ctx& ctx, int64_t layer, const std::string& what, const Tensor& x);
  // Whether `layer` wants its controller's output, and taking it whole (x: [B, H, T]).
  bool wants_controller(int64_t layer) const;
  void take_controller(Ctx& ctx, int64_t layer, const Tensor& x);
  // Whether `layer` wants its gate magnitudes, and taking them whole (m: [B, T]).
  bool wants_gates(int64_t layer) const;
  void take_gates(Ctx& ctx, int64_t layer, const Tensor& m);

 private:
  struct LayerPlan;  // the union of the requests naming one layer, with its device row/span lists
  struct Stage;      // one staging buffer (per dtype)
  struct Staged {    // a capture whose values wait in a stage
    Capture meta;    // what, layer, call, shape (values empty)
    DType dtype = DType::f32;
    int64_t offset = 0, count = 0;
    std::vector<int32_t> keep;  // activations: the positions kept of [B, T, W] (meta.shape is [B, npos, W])
    int64_t T = 0;              // activations: T of the staged [B, T, W]; 0 for everything staged whole
  };
  bool names_layer(const ProbeRequest& r, int64_t layer) const;
  const LayerPlan& plan(Ctx& ctx, int64_t layer);
  // What, layer, call and host shape of a capture (values empty; `keep`/`T` for activations).
  static Staged staged_entry(const std::string& what, int64_t layer, int64_t call, std::vector<int64_t> shape);
  // A staging tensor of `dims` in `dt` for `entry` (flushes first when the stage is full).
  Tensor stage(Ctx& ctx, DType dt, const std::vector<int64_t>& dims, Staged entry);
  void discard_staged();
  friend class ProbeScope;
  void take_whole(Ctx& ctx, int64_t layer, const std::string& what, const Tensor& x);
  int64_t next_call(int64_t layer, const std::string& kind);
  std::vector<ProbeRequest> requests_;
  std::vector<Capture> captures_;
  std::map<std::pair<int64_t, std::string>, int64_t> calls_;
  std::map<int64_t, std::unique_ptr<LayerPlan>> plans_;
  std::map<DType, std::unique_ptr<Stage>> stages_;
  std::vector<Staged> staged_;
};

// Attaches `sink` to ctx (ctx.probes) for a scope and restores what was attached before when it
// ends; on a normal exit it flushes the sink, so its captures can be read after the scope. An
// exception leaving the scope drops what was staged. A null or empty sink attaches nothing.
class ProbeScope {
 public:
  ProbeScope(Ctx& ctx, ProbeSink* sink);
  ~ProbeScope() noexcept(false);
  ProbeScope(const ProbeScope&) = delete;
  ProbeScope& operator=(const ProbeScope&) = delete;

 private:
  Ctx& ctx_;
  ProbeSink* sink_;
  ProbeSink* before_;
  int exceptions_;
};

}  // namespace attnlab
