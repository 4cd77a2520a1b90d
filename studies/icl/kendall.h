#pragma once
// Kendall's tau for seed 001 (METHODS §2.10): the tau-b of SciPy's kendalltau, the ORIGINAL
// pipeline's pieces (FT-side inner products, ICL-side head-summed probabilities, per-layer means
// with NaNs skipped, the transposed random baseline), and the PAPER variant (softmaxed maps,
// token- and example-level tau and top-k recall, LMOps understand_icl).
//
// tau-b as SciPy's kendalltau computes it (variant 'b', nan_policy 'propagate'), over pairs i < j:
//   tot = n(n-1)/2; xtie, ytie = pairs tied in x, in y (joint ties included); ntie = pairs tied
//   in both; Q = discordant pairs;
//   tau = (tot - xtie - ytie + ntie - 2Q) / sqrt(tot - xtie) / sqrt(tot - ytie), clipped to [-1, 1]
//   (= (P - Q) / sqrt((P + Q + T_x)(P + Q + T_y)) with T_x, T_y the pairs tied in x only, y only).
// NaN when n < 2, when x or y is constant (all pairs tied), or when any value is NaN.
// O(n log n): sort by (x, y), count the strict inversions of y by merge sort.
#include <cstdint>
#include <span>
#include <vector>

namespace attnlab::icl {

class PyRandom;

double kendall_tau_b(std::span<const double> x, std::span<const double> y);
double kendall_tau_b(std::span<const float> x, std::span<const float> y);

// ---- ORIGINAL (default) --------------------------------------------------------------------
// FT side, step 3: ip = Qd q, Qd row-major [Ld x dim] (the q_proj outputs of the demonstration
// tokens), q [dim] (the q_proj output of the test prompt's last token). Accumulated in double.
std::vector<double> query_inner_products(std::span<const float> Qd, int64_t Ld, int64_t dim, std::span<const float> q);

// ICL side, step 4: probs row-major [heads x S] (the last query token's post-softmax attention of
// one layer), summed over heads for the first Ld key positions.
std::vector<double> heads_summed_prefix(std::span<const float> probs, int64_t heads, int64_t S, int64_t Ld);

struct KendallSummary {
  std::vector<double> per_layer;  // mean tau over the examples of each layer
  double mean = 0.0;              // mean of per_layer
  int64_t nan_count = 0;          // NaN taus met
};
// taus[layer][example]. skip_nan (ORIGINAL): NaN taus are left out of their layer's mean, and a
// layer with none left counts 0 (as the original's `np.mean(batch_taus) if batch_taus else 0`).
// Without skip_nan (PAPER) a NaN makes its layer's mean and the overall mean NaN.
KendallSummary summarize_kendall(const std::vector<std::vector<double>>& taus, bool skip_nan);

// The ORIGINAL random baseline of one layer: a row-major [examples x Ld] (every example's ICL
// weights) against u ~ U[0,1) of the same shape drawn with rng.random() row by row; the original
// transposes, so tau is taken per key position p between the columns a[:, p] and u[:, p] (length
// `examples`), and the taus of the Ld columns are averaged with NaNs skipped (0 if none left).
double kendall_random_original(std::span<const double> a, int64_t examples, int64_t Ld, PyRandom& rng);
// CHOICE: tau(a_t, u) for one example, u ~ U[0,1) of a_t's length drawn with rng.random().
double kendall_random_per_example(std::span<const double> a, PyRandom& rng);

// ---- PAPER (--kendall-paper) ---------------------------------------------------------------
struct KendallPaperOptions {
  int64_t topk_tokens = 100;   // token-level top-k recall
  int64_t topk_examples = 5;   // example-level top-k recall
};

// One test example at one layer.
struct KendallPaperScores {
  double token_tau = 0, example_tau = 0;              // tau(ICL map, FT map)
  double token_recall = 0, example_recall = 0;        // |topk(ICL) ∩ topk(FT)| / k
  double token_random_tau = 0, example_random_tau = 0;        // tau(ICL map, U[0,1) noise)
  double token_random_recall = 0, example_random_recall = 0;  // k uniform indices in topk(FT), / k
};

// icl_scores: the ICL prompt's pre-softmax scores of the last token, summed over heads, at the n
// demonstration tokens the FT pass trained on (the caller slices them out); ft_scores: q_train ·
// q_test for the same n tokens in the same order; example_lengths: the tokens of each
// demonstration (sum n). Both sides are softmaxed over the n tokens (double), the example level
// sums each demonstration's probabilities. Top-k: the k largest values, ties to the lower index
// (numpy's argsort is unstable there); k is cut to the vector length. The random draws come from
// rng: the noise maps with random() (token level, then example level), the random recall indices
// with randbelow(n) (k per level).
KendallPaperScores kendall_paper(std::span<const double> icl_scores, std::span<const double> ft_scores,
                                 std::span<const int64_t> example_lengths, const KendallPaperOptions& opt,
                                 PyRandom& rng);

// Helpers of kendall_paper, exposed for tests and probes.
std::vector<double> softmax(std::span<const double> x);
std::vector<int64_t> topk_indices(std::span<const double> x, int64_t k);  // descending, ties to lower index
std::vector<double> segment_sums(std::span<const double> x, std::span<const int64_t> lengths);

}  // namespace attnlab::icl
