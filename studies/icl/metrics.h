#pragma once
// The ICL-vs-FT metrics of seed 001 on plain vectors (METHODS §2.7-2.9). The model probes hand
// in fp32 vectors one example at a time; everything is accumulated in double.
//
//   Rec2FTP (§2.7)  Z, I, F = the validation idx predicted correctly by zero-shot, ICL and FT.
//                   PAPER (default): |(F∖Z) ∩ (I∖Z)| / |F∖Z| (NaN when F∖Z is empty).
//                   ORIGINAL "Rec2FT": |(F∖Z) ∩ (I∖Z)| / (|F∖I| + 1e-5) (its denominator is a
//                   BUG of the original, kept under its own name).
//   SimAOU (§2.8)   per example and layer: ĥ = h/(‖h‖ + eps) for the ZSL, ICL and FT vectors,
//                   c = cos(ĥ_ICL − ĥ_ZSL, ĥ_FT − ĥ_ZSL); random baseline cos(ĥ_ICL − ĥ_ZSL, r).
//                   Per layer: mean over examples; SimAOU: mean over layers, leaving out layer 0
//                   (the embedding output) for hidden states unless include_embedding_layer.
//   SimAM (§2.9)    per example, layer and head: cos(f_h, c_h[query part]) (FT) and
//                   cos(z_h, c_h[query part]) (ZSL); per layer the mean over examples and heads,
//                   overall the mean over layers.
// cos is P15: a·b / (max(‖a‖, 1e-8) · max(‖b‖, 1e-8)).
#include <cstdint>
#include <span>
#include <vector>

#include "studies/icl/py_random.h"

namespace attnlab::icl {

double cosine_similarity(std::span<const double> a, std::span<const double> b);
double cosine_similarity(std::span<const float> a, std::span<const float> b);

// ---- Rec2FTP ---------------------------------------------------------------------------------
struct Rec2Ft {
  double paper = 0;             // Rec2FTP, a fraction (x100 for percent)
  double original = 0;          // the seed's "Rec2FT"
  int64_t ft_gain = 0;          // |F∖Z|
  int64_t icl_gain = 0;         // |I∖Z|
  int64_t shared_gain = 0;      // |(F∖Z) ∩ (I∖Z)|
  int64_t ft_not_icl = 0;       // |F∖I|
};
// Each argument: the idx values predicted correctly (any order; duplicates count once).
Rec2Ft rec2ft(std::span<const int64_t> zsl_correct, std::span<const int64_t> icl_correct,
              std::span<const int64_t> ft_correct);

// ---- per-layer means -------------------------------------------------------------------------
// Mean over examples of each layer's values.
class LayerMeans {
 public:
  explicit LayerMeans(int64_t layers);
  void add(int64_t layer, double value);
  int64_t layers() const { return int64_t(sum_.size()); }
  int64_t count(int64_t layer) const;
  std::vector<double> per_layer() const;  // NaN for a layer that got no value
  double mean(int64_t first_layer = 0) const;  // mean of per_layer()[first_layer:]

 private:
  std::vector<double> sum_;
  std::vector<int64_t> count_;
};

// ---- SimAOU ----------------------------------------------------------------------------------
enum class SimAouSource { hidden, attn_out };  // ORIGINAL residual hidden states / PAPER attention outputs
enum class RandomDraw { normal, uniform };     // ORIGINAL torch.randn_like / PAPER np.random.random

struct SimAouOptions {
  SimAouSource source = SimAouSource::hidden;
  bool include_embedding_layer = false;  // hidden: keep layer 0 in the mean (the original number)
  double norm_eps = 1e-5;                 // ORIGINAL 1e-5; PAPER 1e-20
  RandomDraw random = RandomDraw::normal;
  int64_t seed = 0;                       // the random vectors: PyRandom(seed).gauss() / .random()
};

struct SimAouResult {
  std::vector<double> per_layer, random_per_layer;
  double mean = 0, random_mean = 0;  // over layers first_layer..L-1
  int64_t first_layer = 0;           // 1 when the embedding layer is left out
};

// cos(Δ_ICL, Δ_FT) of one example at one layer (vectors of one length).
double simaou_cos(std::span<const float> zsl, std::span<const float> icl, std::span<const float> ft, double norm_eps);
// cos(Δ_ICL, r).
double simaou_random_cos(std::span<const float> zsl, std::span<const float> icl, std::span<const double> r,
                         double norm_eps);

class SimAou {
 public:
  // layers: the vectors per example (L+1 hidden states, or L attention outputs).
  SimAou(int64_t layers, const SimAouOptions& opt);
  // One example's last-token vectors at `layer`. The random vector is drawn here, in call order.
  void add(int64_t layer, std::span<const float> zsl, std::span<const float> icl, std::span<const float> ft);
  SimAouResult result() const;

 private:
  SimAouOptions opt_;
  LayerMeans ft_, random_;
  PyRandom rng_;
  std::vector<double> r_;
};

// ---- SimAM -----------------------------------------------------------------------------------
struct SimAmResult {
  std::vector<double> per_layer, zsl_per_layer;  // SimAM(FT) and SimAM(before FT) per layer
  double mean = 0, zsl_mean = 0;
};

class SimAm {
 public:
  explicit SimAm(int64_t layers);
  // One example at `layer`: z, f row-major [heads x Lq] (ZSL before FT, ZSL prompt after FT), c
  // row-major [heads x Lc] (ICL before FT). The query part of c is c[:, query_start : query_start
  // + Lq]; ORIGINAL: query_start = Lc − Lq (original_query_start), PAPER: the context length.
  void add(int64_t layer, int64_t heads, std::span<const float> z, std::span<const float> c, std::span<const float> f,
           int64_t query_start);
  SimAmResult result() const;

 private:
  LayerMeans ft_, zsl_;
};

// ORIGINAL alignment: the last Lq scores of the ICL row.
inline int64_t original_query_start(int64_t Lc, int64_t Lq) { return Lc - Lq; }

}  // namespace attnlab::icl
