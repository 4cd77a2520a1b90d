// Synthetic SST-2 / SST-5 sentences whose labels follow from word valences (synth.h).
#include <algorithm>
#include <nlohmann/json.hpp>
#include <fstream>
#include <sstream>

#include "data/assets.h"
#include "data/input_check.h"
#include "data/seeded_rng.h"
#include "data/synth.h"

namespace attnlab::data {

namespace {

constexpr uint64_t kSstStream = 0x53535400000000ull;

bool plain_word(const std::string& w) {
  return !w.empty() && std::all_of(w.begin(), w.end(), [](char c) { return c >= 'a' && c <= 'z'; });
}

// Sentence frames; a fragment is used only when none of its words is in the lexicon, so the
// label is decided by the sentiment words alone.
const std::vector<std::string> kOpeners = {"the film",  "this movie", "the story",         "its plot",
                                           "the script", "the cast",   "the director 's new film", "the ending"};
const std::vector<std::string> kVerbs = {"is", "feels", "seems", "remains", "looks", "sounds"};
const std::vector<std::string> kJoiners = {",", "and", "yet", "and also"};
const std::vector<std::string> kEndings = {".", "", "overall .", "throughout ."};
const std::vector<std::string> kNeutralFacts = {"about a family in a small town", "set in the seventies",
                                                "two hours long", "based on a novel", "shot in black and white",
                                                "told in three parts"};

std::vector<std::string> without_lexicon_words(const std::vector<std::string>& fragments, const SentimentLexicon& lex) {
  std::vector<std::string> out;
  for (const std::string& f : fragments) {
    std::istringstream ss(f);
    std::string w;
    bool clean = true;
    while (ss >> w) clean &= !lex.valence.count(w);
    if (clean) out.push_back(f);
  }
  return out;
}

// Words that read as adjectives in "the film is X": most AFINN entries are verbs and nouns
// ("abandon", "criminals"); preferring these suffixes makes the sentences read better without
// changing how labels follow from valences.
bool adjective_like(const std::string& w) {
  static const std::vector<std::string> suffixes = {"ful", "ous", "ive", "ing", "able", "ible", "less", "ic", "y", "ed"};
  for (const std::string& s : suffixes)
    if (w.size() > s.size() + 2 && w.compare(w.size() - s.size(), s.size(), s) == 0) return true;
  return false;
}

// AFINN lists profanity, slurs and violence too; generated sentences leave those words out (the
// labels still use the whole lexicon, so nothing else changes).
bool offensive(const std::string& w) {
  static const std::vector<std::string> parts = {"fuck", "fuk",   "shit",  "piss",   "damn",  "bitch",  "cunt",  "cock",
                                                 "dick", "whore", "slut",  "nigg",   "fag",   "retard", "rape",  "douche",
                                                 "wank", "twat",  "bastard", "crap", "suck",  "asshole", "assfuck", "jackass",
                                                 "kill", "murder", "terror", "tortur", "slave", "racis",  "suicid", "dead"};
  for (const std::string& p : parts)
    if (w.find(p) != std::string::npos) return true;
  return w == "ass";
}

int label_of(SynthKind kind, int valence) {
  if (kind == SynthKind::sst2) return valence > 0 ? 1 : valence < 0 ? 0 : -1;
  return sst5_label_of_valence(valence);
}

struct SstSentenceMaker {
  SynthKind kind;
  const SentimentLexicon& lex;
  std::vector<std::string> positive, negative, openers, verbs, joiners, endings, facts;

  SstSentenceMaker(SynthKind k, const SentimentLexicon& l) : kind(k), lex(l) {
    for (auto& [w, v] : lex.valence)
      if (adjective_like(w) && !offensive(w)) (v > 0 ? positive : negative).push_back(w);
    if (positive.size() < 10 || negative.size() < 10) {  // a small lexicon: use every word
      positive.clear();
      negative.clear();
      for (auto& [w, v] : lex.valence)
        if (!offensive(w)) (v > 0 ? positive : negative).push_back(w);
    }
    openers = without_lexicon_words(kOpeners, lex);
    verbs = without_lexicon_words(kVerbs, lex);
    joiners = without_lexicon_words(kJoiners, lex);
    endings = without_lexicon_words(kEndings, lex);
    facts = without_lexicon_words(kNeutralFacts, lex);
    INPUT_CHECK(!positive.empty() && !negative.empty() && !openers.empty() && !verbs.empty() && !joiners.empty() &&
                    !endings.empty() && !facts.empty(),
                "the sentiment lexicon (", lex.source, ") leaves no usable words or sentence frames");
  }

  // A sentence whose label is `label`: draw candidates until the valence lands in its class.
  std::string make(SeededRng& r, int label) const {
    const int classes = kind == SynthKind::sst2 ? 2 : 5;
    const bool wants_positive = label * 2 > classes - 1;
    for (int attempt = 0; attempt < 10000; ++attempt) {
      const bool neutral = classes == 5 && label == 2;
      const int words = neutral ? int(r.range(0, 2)) : int(r.range(1, 3));
      std::string s = r.pick(openers) + " " + r.pick(verbs);
      if (words == 0) s += " " + r.pick(facts);
      for (int i = 0; i < words; ++i) {
        const bool positive_word = neutral ? r.chance(0.5) : (r.chance(0.85) == wants_positive);
        if (i) s += " " + r.pick(joiners);
        s += " " + r.pick(positive_word ? positive : negative);
      }
      const std::string& ending = r.pick(endings);
      if (!ending.empty()) s += " " + ending;
      if (label_of(kind, sentence_valence(lex, s)) == label) return s;
    }
    FAIL_WITH("could not build an SST sentence of class ", label, " from the lexicon ", lex.source);
  }
};

}  // namespace

SentimentLexicon parse_afinn_csv(const std::string& text, const std::string& source) {
  SentimentLexicon lex;
  lex.source = source;
  std::istringstream in(text);
  std::string line;
  uint64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (number == 1 && line == "word,valence")) continue;
    const size_t comma = line.rfind(',');
    INPUT_CHECK(comma != std::string::npos && comma > 0, source, ":", number, ": expected \"word,valence\"");
    const std::string word = line.substr(0, comma), value = line.substr(comma + 1);
    int v = 0;
    try {
      size_t used = 0;
      v = std::stoi(value, &used);
      INPUT_CHECK(used == value.size(), "");
    } catch (...) {
      FAIL_WITH(source, ":", number, ": valence \"", value, "\" is not an integer");
    }
    INPUT_CHECK(v >= -5 && v <= 5, source, ":", number, ": valence ", v, " is outside -5..5");
    if (v != 0 && plain_word(word)) lex.valence[word] = v;  // phrases and odd spellings are skipped
  }
  INPUT_CHECK(!lex.valence.empty(), source, ": no words with a valence");
  return lex;
}

SentimentLexicon builtin_sentiment_lexicon() {
  SentimentLexicon lex;
  lex.source = "the built-in word list";
  lex.valence = {{"wonderful", 4}, {"brilliant", 4}, {"superb", 4},     {"masterful", 3},  {"charming", 3},
                 {"delightful", 3}, {"beautiful", 3}, {"lovely", 3},    {"impressive", 3}, {"moving", 2},
                 {"funny", 2},     {"clever", 2},    {"engaging", 2},   {"touching", 2},   {"gripping", 2},
                 {"enjoyable", 2}, {"fresh", 1},     {"warm", 1},       {"solid", 1},      {"smart", 1},
                 {"awful", -4},    {"terrible", -4}, {"dreadful", -4},  {"horrible", -4},  {"boring", -3},
                 {"stupid", -3},   {"painful", -3},  {"dull", -2},      {"tedious", -2},   {"clumsy", -2},
                 {"pointless", -2}, {"lifeless", -2}, {"weak", -2},     {"annoying", -2},  {"disappointing", -2},
                 {"bland", -1},    {"messy", -1},    {"flat", -1},      {"forgettable", -1}, {"lazy", -1}};
  return lex;
}

SentimentLexicon load_sentiment_lexicon() {
  const std::string rel = "text/afinn-111.csv";
  if (!asset_exists(rel)) return builtin_sentiment_lexicon();
  const std::string path = asset_path(rel);
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  SentimentLexicon lex = parse_afinn_csv(ss.str(), path);
  lex.source = "AFINN-111 (" + path + ")";
  return lex;
}

int sentence_valence(const SentimentLexicon& lex, const std::string& sentence) {
  std::istringstream ss(sentence);
  std::string w;
  int sum = 0;
  while (ss >> w) {
    auto it = lex.valence.find(w);
    if (it != lex.valence.end()) sum += it->second;
  }
  return sum;
}

int sst5_label_of_valence(int v) {
  if (v <= -4) return 0;
  if (v < 0) return 1;
  if (v == 0) return 2;
  if (v < 4) return 3;
  return 4;
}

uint64_t write_synth_sst(std::ostream& out, const SynthOptions& opt, const SentimentLexicon& lex) {
  const bool sst2 = opt.kind == SynthKind::sst2;
  CHECK(sst2 || opt.kind == SynthKind::sst5, "not an SST kind");
  const std::string format = !opt.format.empty() ? opt.format : sst2 ? "tsv" : "jsonl";
  INPUT_CHECK(format == "tsv" || format == "jsonl", "SST is written as tsv or jsonl, not ", format);
  static const std::vector<std::string> setfit_label_text = {"very negative", "negative", "neutral", "positive",
                                                             "very positive"};
  SstSentenceMaker maker(opt.kind, lex);
  if (format == "tsv") out << (sst2 ? "sentence\tlabel\n" : "text\tlabel\tlabel_text\n");
  for (uint64_t i = 0; i < opt.n; ++i) {
    SeededRng r(opt.seed, kSstStream + i);
    const int label = int(r.below(sst2 ? 2 : 5));
    // GLUE's SST-2 sentences end with a space; SetFit's SST-5 texts do not.
    const std::string sentence = maker.make(r, label) + (sst2 ? " " : "");
    if (format == "tsv") {
      out << sentence << '\t' << label;
      if (!sst2) out << '\t' << setfit_label_text[size_t(label)];
      out << '\n';
      continue;
    }
    nlohmann::ordered_json j;
    j[sst2 ? "sentence" : "text"] = sentence;
    j["label"] = label;
    if (sst2) j["idx"] = i;
    else j["label_text"] = setfit_label_text[size_t(label)];
    out << j.dump() << '\n';
  }
  INPUT_CHECK(out.good(), "writing the synthetic records failed (disk full?)");
  return opt.n;
}

}  // namespace attnlab::data
