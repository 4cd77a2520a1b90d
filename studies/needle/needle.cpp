#include "studies/needle/needle.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <sstream>

#include "core/error.h"
#include "data/seeded_rng.h"
#include "data/tokenizer.h"

namespace attnlab::analysis {

const char* const kNeedleFillerSentence = "This is a document about various cities and their numbers.";
const char* const kNeedleQuestion = "What is the magic number for City_0?";

namespace {

std::vector<std::string> filler_words() {
  std::istringstream in(kNeedleFillerSentence);
  std::vector<std::string> w;
  for (std::string s; in >> s;) w.push_back(s);
  return w;
}

std::string needle(int city, int number) {
  return "The magic number for City_" + std::to_string(city) + " is " + std::to_string(number);
}

// One context: the target at every slot of `slots`, three distractors elsewhere.
NeedleContext make_context(data::SeededRng& rng, int64_t n_words, const std::vector<int64_t>& slots) {
  static const std::vector<std::string> fillers = filler_words();
  NeedleContext c;
  c.n_words = n_words;
  std::vector<std::string> words(static_cast<size_t>(n_words));
  for (auto& w : words) w = rng.pick(fillers);
  c.magic_number = int(rng.range(100, 999));
  c.target_needle = needle(0, c.magic_number);
  std::set<int64_t> used(slots.begin(), slots.end());
  for (int64_t s : slots) words[size_t(s)] = c.target_needle;
  CHECK(n_words >= int64_t(used.size()) + 3, "needle context: ", n_words, " words cannot hold ", used.size(),
        " targets and 3 distractors; raise the context length");
  for (int k = 1; k <= 3; ++k) {
    int64_t s = 0;
    do s = int64_t(rng.below(uint64_t(n_words)));
    while (used.count(s));
    used.insert(s);
    c.distractor_slots.push_back(s);
    words[size_t(s)] = needle(k, int(rng.range(100, 999)));
  }
  std::vector<CharSpan> word_spans;
  for (size_t i = 0; i < words.size(); ++i) {
    if (i) c.text += ' ';
    word_spans.push_back({c.text.size(), c.text.size() + words[i].size()});
    c.text += words[i];
  }
  c.question = {c.text.size(), c.text.size() + std::string(kNeedleQuestion).size()};
  c.text += kNeedleQuestion;
  c.target_slots = slots;
  for (int64_t s : slots) c.target_spans.push_back(word_spans[size_t(s)]);
  return c;
}

}  // namespace

std::vector<NeedleContext> generate_needle_contexts(const NeedleOptions& opt) {
  CHECK(opt.context_length >= 4 && opt.samples > 0 && !opt.depths.empty(),
        "needle contexts: need context_length ≥ 4, samples > 0 and at least one depth");
  const int64_t n_words = opt.context_length / 4;
  std::vector<int64_t> slots;
  for (double d : opt.depths) {
    CHECK(d >= 0 && d < 1, "needle depth ", d, " is outside [0, 1)");
    slots.push_back(int64_t(std::floor(d * double(n_words))));
  }
  std::vector<NeedleContext> out;
  for (int64_t s = 0; s < opt.samples; ++s) {
    if (opt.all_depths) {
      data::SeededRng rng(opt.seed, uint64_t(s));
      std::vector<int64_t> distinct = slots;
      std::sort(distinct.begin(), distinct.end());
      distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
      NeedleContext c = make_context(rng, n_words, distinct);
      c.sample = s;
      c.depth = opt.depths[0];
      out.push_back(std::move(c));
      continue;
    }
    for (size_t k = 0; k < opt.depths.size(); ++k) {
      // One stream per (sample, depth): a context does not change when depths are added or removed.
      const uint64_t depth_key = uint64_t(std::llround(opt.depths[k] * 1e6));
      data::SeededRng rng(opt.seed ^ (depth_key * 0x9E3779B97F4A7C15ull), uint64_t(s));
      NeedleContext c = make_context(rng, n_words, {slots[k]});
      c.sample = s;
      c.depth = opt.depths[k];
      out.push_back(std::move(c));
    }
  }
  return out;
}

std::vector<CharSpan> token_char_ranges(const std::vector<size_t>& starts, size_t text_size) {
  std::vector<CharSpan> r(starts.size());
  for (size_t i = 0; i < starts.size(); ++i) r[i] = {starts[i], i + 1 < starts.size() ? starts[i + 1] : text_size};
  return r;
}

TokenRange tokens_overlapping(const std::vector<CharSpan>& ranges, CharSpan chars) {
  TokenRange t{-1, -1};
  for (size_t i = 0; i < ranges.size(); ++i) {
    if (ranges[i].begin < chars.end && ranges[i].end > chars.begin) {
      if (t.begin < 0) t.begin = int64_t(i);
      t.end = int64_t(i) + 1;
    }
  }
  return t.begin < 0 ? TokenRange{0, 0} : t;
}

NeedleTokens tokenize_needle_context(const data::Tokenizer& tok, const NeedleContext& c) {
  NeedleTokens t;
  std::vector<size_t> starts;
  t.ids = tok.encode_with_offsets(c.text, starts);
  const auto ranges = token_char_ranges(starts, c.text.size());
  CHECK(!c.target_spans.empty(), "needle context without a target");
  t.span = tokens_overlapping(ranges, c.target_spans[0]);
  t.question = tokens_overlapping(ranges, c.question);
  CHECK(t.span.size() > 0 && t.question.size() > 0, "needle context: the target or the question has no tokens");
  t.context = t.question.begin;
  CHECK(t.span.end <= t.context, "needle context: the target's tokens run into the question's");
  return t;
}

NeedleMasses needle_masses(const std::vector<std::vector<double>>& rows, TokenRange span, int64_t context) {
  CHECK(!rows.empty(), "needle_masses: no rows");
  CHECK(span.begin >= 0 && span.size() > 0 && span.end <= context && context > span.size(),
        "needle_masses: the span [", span.begin, ", ", span.end, ") must be non-empty and inside a context of ",
        context, " tokens that also holds noise");
  NeedleMasses m;
  for (const auto& row : rows) {
    CHECK(int64_t(row.size()) >= context, "needle_masses: a row of ", row.size(), " keys is shorter than the context");
    double answer = 0, all = 0;
    for (int64_t j = 0; j < context; ++j) {
      all += row[size_t(j)];
      if (j >= span.begin && j < span.end) answer += row[size_t(j)];
    }
    m.answer_mass += answer;
    m.noise_mass += all - answer;
  }
  m.answer_mass /= double(rows.size());
  m.noise_mass /= double(rows.size());
  m.answer_per_token = m.answer_mass / double(span.size());
  m.noise_per_token = m.noise_mass / double(context - span.size());
  m.anr = m.answer_per_token / m.noise_per_token;
  m.mass_ratio = m.answer_mass / m.noise_mass;
  return m;
}

std::vector<DepthStats> aggregate_by_depth(const std::vector<double>& depths, const std::vector<NeedleMasses>& masses) {
  CHECK(depths.size() == masses.size(), "aggregate_by_depth: ", depths.size(), " depths for ", masses.size(),
        " results");
  std::vector<DepthStats> out;
  std::map<double, size_t> index;
  std::vector<std::vector<const NeedleMasses*>> groups;
  for (size_t i = 0; i < depths.size(); ++i) {
    auto [it, fresh] = index.emplace(depths[i], out.size());
    if (fresh) {
      out.push_back({});
      out.back().depth = depths[i];
      groups.emplace_back();
    }
    groups[it->second].push_back(&masses[i]);
  }
  auto mean_std = [](const std::vector<double>& v, double* mean, double* sd) {
    double s = 0;
    for (double x : v) s += x;
    *mean = s / double(v.size());
    double q = 0;
    for (double x : v) q += (x - *mean) * (x - *mean);
    *sd = v.size() > 1 ? std::sqrt(q / double(v.size() - 1)) : 0.0;
  };
  for (size_t g = 0; g < out.size(); ++g) {
    DepthStats& d = out[g];
    std::vector<double> anr, apt, npt, ratio;
    for (const NeedleMasses* m : groups[g]) {
      d.answers.push_back(m->answer_mass);
      d.noises.push_back(m->noise_mass);
      anr.push_back(m->anr);
      apt.push_back(m->answer_per_token);
      npt.push_back(m->noise_per_token);
      ratio.push_back(m->mass_ratio);
    }
    d.n = int64_t(groups[g].size());
    double unused = 0;
    mean_std(d.answers, &d.mean_answer, &d.std_answer);
    mean_std(d.noises, &d.mean_noise, &d.std_noise);
    mean_std(anr, &d.mean_anr, &d.std_anr);
    mean_std(apt, &d.mean_answer_per_token, &unused);
    mean_std(npt, &d.mean_noise_per_token, &unused);
    mean_std(ratio, &d.mean_mass_ratio, &unused);
  }
  return out;
}

std::vector<double> seed_minmax(const std::vector<double>& map, bool differential) {
  CHECK(!map.empty(), "seed_minmax: empty map");
  constexpr double eps = 1e-8;
  auto scale = [&](const std::vector<double>& v, double lo, double hi) {
    const auto [mn, mx] = std::minmax_element(v.begin(), v.end());
    const double a = *mn, b = *mx;
    std::vector<double> r(v.size());
    for (size_t i = 0; i < v.size(); ++i) r[i] = lo + (hi - lo) * (v[i] - a) / (b - a + eps);
    return r;
  };
  if (!differential) return scale(map, 0.0, 1.0);
  return scale(scale(map, -1.0, 1.0), 0.0, 1.0);
}

NeedleMasses seed_answer_noise(const std::vector<double>& map, int64_t T, int64_t span_start, int64_t span_len) {
  CHECK(T > 0 && int64_t(map.size()) == T * T, "seed_answer_noise: the map must be T×T with T = ", T);
  CHECK(span_start >= 0 && span_len > 0, "seed_answer_noise: span start ", span_start, " length ", span_len);
  const int64_t b = std::min(span_start, T), e = std::min(span_start + span_len, T);
  NeedleMasses m;
  double answer = 0, noise = 0;
  for (int64_t r = 0; r < T; ++r)
    for (int64_t j = 0; j < T; ++j) {
      const double v = map[size_t(r * T + j)];
      if (j >= b && j < e) answer += v;
      else noise += v;
    }
  // ORIGINAL: the answer mean is over the span columns only; the noise mean over the whole map
  // with the span columns zeroed (its denominator counts those zeros).
  m.answer_mass = e > b ? answer / double(T * (e - b)) : 0.0;
  m.noise_mass = noise / double(T * T);
  m.mass_ratio = m.noise_mass > 0 ? m.answer_mass / m.noise_mass : 0.0;
  m.answer_per_token = m.answer_mass;
  m.noise_per_token = m.noise_mass;
  m.anr = m.mass_ratio;
  return m;
}

}  // namespace attnlab::analysis
