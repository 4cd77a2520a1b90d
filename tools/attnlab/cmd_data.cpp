// attnlab data synth|prepare: seeded synthetic data in upstream schemas, and the token shards of
// an experiment's data section (data/dataset.h).
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/config/experiment.h"
#include "core/log.h"
#include "data/dataset.h"
#include "train/data_config.h"
#include "data/input_check.h"
#include "data/synth.h"
#include "tools/attnlab/command.h"
#include "tools/attnlab/exit_codes.h"

namespace attnlab::cli {
namespace {

struct SynthCli {
  std::string kind;
  uint64_t n = 1000;
  uint64_t seed = 0;
  std::string out;
  std::string format;
};

void run_synth(const SynthCli& o) {
  data::SynthOptions s;
  s.kind = data::parse_synth_kind(o.kind);
  s.n = o.n;
  s.seed = o.seed;
  s.format = o.format;
  std::optional<data::SentimentLexicon> lex;
  const bool sst = s.kind == data::SynthKind::sst2 || s.kind == data::SynthKind::sst5;
  if (sst) lex = data::load_sentiment_lexicon();
  const std::filesystem::path out(o.out);
  if (out.has_parent_path()) std::filesystem::create_directories(out.parent_path());
  // Written beside the target and renamed, so a failed run leaves no half file under the name.
  const std::string tmp = o.out + ".tmp";
  uint64_t written = 0;
  {
    std::ofstream f(tmp, std::ios::binary);
    INPUT_CHECK(f.good(), tmp, ": cannot create");
    written = data::write_synth(f, s, lex ? &*lex : nullptr);
    f.flush();
    INPUT_CHECK(f.good(), tmp, ": write failed");
  }
  std::filesystem::rename(tmp, o.out);
  std::printf("wrote %llu synthetic %s records to %s (seed %llu)\n", (unsigned long long)written,
              data::synth_kind_name(s.kind), o.out.c_str(), (unsigned long long)o.seed);
  if (sst) {
    std::printf("labels follow from word valences in %s\n", lex->source.c_str());
    if (lex->source.rfind("AFINN", 0) != 0)
      std::printf("(AFINN-111 is not in the asset cache; `attnlab assets fetch` brings it)\n");
  }
}

struct PrepareCli {
  std::string file;
  std::vector<std::string> overrides;
  int threads = 0;
  int world = 1;
};

void run_prepare(const PrepareCli& o) {
  config::ExperimentConfig cfg;
  try {
    cfg = config::load_experiment(o.file, o.overrides);
  } catch (const config::ConfigError& e) {
    for (const auto& p : e.problems()) std::fprintf(stderr, "%s\n", p.text().c_str());
    exit_with(kExitBadInput);
  }
  data::PrepareOptions prep;
  prep.threads = o.threads;
  prep.quiet = false;
  const data::DatasetConfig dc = train::dataset_config(cfg);
  const data::PreparedData d = data::prepare_data(dc, prep);
  const data::ShardInfo& info = d.shards->info();
  std::printf("shards: %s (%s)\n", d.shard_dir.c_str(),
              d.prepared.reused ? "reused: same data and tokenizer" : "tokenised now");
  std::printf("  %u shard file%s, %llu %s, %llu tokens stored as u%u, vocabulary %u, eos %d\n", d.prepared.shard_count,
              d.prepared.shard_count == 1 ? "" : "s", (unsigned long long)d.prepared.doc_count,
              d.sft ? "records" : "documents", (unsigned long long)d.prepared.token_count, info.token_bytes * 8,
              info.vocab_size, info.eos_id);
  std::printf("  dataset hash %s\n", data::hash_hex(d.prepared.hash).c_str());
  data::LoaderOptions lo = data::loader_options(dc, 0, o.world);
  for (data::Split split : {data::Split::train, data::Split::validation}) {
    if (split == data::Split::validation && cfg.data.val_fraction == 0) {
      std::printf("validation: none (data.val_fraction is 0)\n");
      continue;
    }
    const char* name = split == data::Split::train ? "train" : "validation";
    auto loader = data::make_loader(d, lo, split);
    if (d.sft) {
      // The loader logs kept/dropped itself (the trainer shows the same line); print it when the
      // log level hides it.
      auto* s = static_cast<data::SftLoader*>(loader.get());
      if (log_level() > LogLevel::info)
        std::printf("%s: %llu of %llu records kept, %llu dropped as longer than seq_len %lld\n", name,
                    (unsigned long long)s->kept(), (unsigned long long)s->records_in_split(),
                    (unsigned long long)s->dropped_too_long(), (long long)cfg.data.seq_len);
    } else {
      auto* p = static_cast<data::PretrainLoader*>(loader.get());
      std::printf("%s: %llu documents, %llu tokens with EOS, %llu sequences of %lld+1 tokens\n", name,
                  (unsigned long long)p->documents(), (unsigned long long)p->stream_tokens(),
                  (unsigned long long)p->items(), (long long)cfg.data.seq_len);
    }
    if (o.world > 1)
      std::printf("  %llu per rank per epoch on %d ranks\n", (unsigned long long)loader->items_per_rank_per_epoch(),
                  o.world);
  }
}

void setup(CLI::App& root) {
  auto* c = root.add_subcommand(
      "data",
      "Data: synthetic records in upstream schemas, and token shards for an experiment.\n"
      "Corpora (data.format): text files/folders (*.txt, recursive, sorted), wikitext-raw, jsonl, tsv.\n"
      "SFT records (data.sft_format): openr1, openmath, gsm8k (jsonl), sst (jsonl or tsv).");
  c->require_subcommand(1);

  auto so = std::make_shared<SynthCli>();
  auto* synth = c->add_subcommand(
      "synth",
      "Write seeded synthetic records in the exact upstream schema (the same --n/--seed give the same bytes):\n"
      "  gsm8k     JSONL {question, answer}; answers with <<a*b=c>> annotations and a final '#### N' (exact)\n"
      "  sst2      TSV 'sentence<TAB>label' with GLUE's header row (--format jsonl: {sentence, label, idx})\n"
      "  sst5      JSONL {text, label, label_text} like SetFit/sst5 (--format tsv: text, label, label_text)\n"
      "  openmath  JSONL {problem, generated_solution, expected_answer, problem_source}\n"
      "  openr1    JSONL like OpenR1-Math-220k: problem, solution, answer, generations (2-4 <think> traces),\n"
      "            correctness_math_verify (aligned), uuid, messages, ...\n"
      "SST labels follow from word valences: AFINN-111 from the asset cache, else a built-in word list.\n"
      "Example: attnlab data synth gsm8k --n 500 --seed 1 --out data/gsm8k_train.jsonl");
  synth->add_option("kind", so->kind, "gsm8k, sst2, sst5, openmath or openr1")
      ->required()
      ->check(CLI::IsMember({"gsm8k", "sst2", "sst5", "openmath", "openr1"}));
  synth->add_option("--n", so->n, "number of records")->check(CLI::Range(uint64_t(1), uint64_t(1) << 40));
  synth->add_option("--seed", so->seed, "seed");
  synth->add_option("--out", so->out, "output file (folders are created)")->required();
  synth->add_option("--format", so->format, "sst only: tsv or jsonl (default: the upstream layout)")
      ->check(CLI::IsMember({"tsv", "jsonl"}));
  synth->callback([so] { run_synth(*so); });

  auto po = std::make_shared<PrepareCli>();
  auto* prep = c->add_subcommand(
      "prepare",
      "Tokenise the data section of an experiment YAML into token shards (data.shard_dir, else\n"
      "<run.out_dir>/<run.name>/shards) and print the counts: documents or records, tokens, training and\n"
      "validation sequences (or SFT records kept/dropped by data.seq_len). Shards whose hash matches the\n"
      "tokenizer and the source files are reused, so running it again costs a hash of the files.\n"
      "Example: attnlab data prepare experiments/quickstart.yaml data.seq_len=512 data.shard_dir=/tmp/shards");
  prep->add_option("file", po->file, "experiment YAML file")->required();
  prep->add_option("overrides", po->overrides, "key.path=value overrides (e.g. data.path=corpus/)");
  prep->add_option("--threads", po->threads, "tokenising threads (default: all cores)")->check(CLI::NonNegativeNumber);
  prep->add_option("--world", po->world, "also print the per-rank share for this many ranks")->check(CLI::PositiveNumber);
  prep->callback([po] { run_prepare(*po); });
}
ATTNLAB_COMMAND(setup);

}  // namespace
}  // namespace attnlab::cli
