// Tokenising a source into a shard folder, or reusing the shards already there (token_shard.h).
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <exception>
#include <filesystem>
#include <optional>
#include <thread>

#include "core/log.h"
#include "data/input_check.h"
#include "data/sha256.h"
#include "data/token_shard.h"

namespace attnlab::data {
namespace fs = std::filesystem;

namespace {

// Bumped when the way documents become tokens changes, so old shards are not reused.
constexpr const char* kPipelineVersion = "attnlab-shards/1";

DatasetHash dataset_hash(const ShardSpec& spec, const Tokenizer& tokenizer) {
  Sha256 s;
  s.update(kPipelineVersion);
  s.update("\ntokenizer ");
  s.update(tokenizer_fingerprint(tokenizer));
  s.update(spec.with_mask ? "\nmask\n" : "\nno mask\n");
  s.update(spec.identity);
  return s.finish();
}

// The existing shards, when they are whole, agree with each other and carry `hash`.
std::optional<ShardSet> reusable(const std::string& dir, const DatasetHash& hash, bool check_tokens) {
  std::error_code ec;
  if (!fs::exists(fs::path(dir) / shard_file_name(0), ec)) return std::nullopt;
  try {
    ShardSet set = ShardSet::open(dir, check_tokens);
    if (set.info().hash == hash) return set;
    log_info("token shards in ", dir, " were made from other data or another tokenizer; re-tokenising");
  } catch (const Error& e) {
    log_warn("token shards in ", dir, " are not usable (", e.what(), "); re-tokenising");
  }
  return std::nullopt;
}

void remove_old_shards(const std::string& dir) {
  std::error_code ec;
  for (auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("shard_", 0) == 0 && (name.find(".bin") != std::string::npos)) fs::remove(entry.path(), ec);
  }
}

// Runs a batch of tasks on `threads` threads, results in task order.
std::vector<TokenizedDoc> run_tasks(std::vector<TokenizeTask>& tasks, int threads) {
  std::vector<TokenizedDoc> out(tasks.size());
  std::atomic<size_t> next{0};
  std::exception_ptr failure;
  std::atomic<bool> failed{false};
  auto worker = [&] {
    for (size_t i; !failed && (i = next.fetch_add(1)) < tasks.size();) {
      try {
        out[i] = tasks[i]();
      } catch (...) {
        if (!failed.exchange(true)) failure = std::current_exception();
      }
    }
  };
  const int n = std::max(1, std::min<int>(threads, int(tasks.size())));
  std::vector<std::thread> pool;
  for (int t = 1; t < n; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  if (failure) std::rethrow_exception(failure);
  return out;
}

// Accumulates documents into shard files with temporary names; `finish` stamps the shard count
// into every header and renames them into place.
struct ShardAccumulator {
  std::string dir;
  ShardInfo base;
  uint64_t max_tokens;
  std::vector<int32_t> tokens;
  std::vector<uint8_t> mask;
  std::vector<uint64_t> starts{0};
  std::vector<std::pair<std::string, ShardInfo>> written;  // temporary path, info
  uint64_t total_docs = 0, total_tokens = 0;

  void add(TokenizedDoc&& d) {
    CHECK(!base.has_mask || d.mask.size() == d.ids.size(), "a tokenised record has ", d.mask.size(),
          " mask bytes for ", d.ids.size(), " tokens");
    tokens.insert(tokens.end(), d.ids.begin(), d.ids.end());
    if (base.has_mask) mask.insert(mask.end(), d.mask.begin(), d.mask.end());
    starts.push_back(tokens.size());
    ++total_docs;
    total_tokens += d.ids.size();
    if (tokens.size() >= max_tokens) flush();
  }
  void flush() {
    if (starts.size() == 1 && !written.empty()) return;  // nothing since the last shard
    ShardInfo info = base;
    info.shard_index = uint32_t(written.size());
    info.shard_count = info.shard_index + 1;  // patched in finish()
    info.token_count = tokens.size();
    info.doc_count = starts.size() - 1;
    const std::string tmp =
        (fs::path(dir) / (shard_file_name(info.shard_index) + ".tmp." + std::to_string(::getpid()))).string();
    write_shard_in_place(tmp, info, tokens, starts, mask);
    written.push_back({tmp, info});
    tokens.clear();
    mask.clear();
    starts.assign(1, 0);
  }
  void finish() {
    flush();
    const uint32_t count = uint32_t(written.size());
    for (auto& [tmp, info] : written) {
      info.shard_count = count;
      const std::string final_path = (fs::path(dir) / shard_file_name(info.shard_index)).string();
      rewrite_shard_header(tmp, info);
      INPUT_CHECK(::rename(tmp.c_str(), final_path.c_str()) == 0, final_path, ": cannot rename from ", tmp, ": ",
                  std::strerror(errno));
    }
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
      ::fsync(fd);
      ::close(fd);
    }
  }
};

}  // namespace

std::string tokenizer_fingerprint(const Tokenizer& tokenizer) {
  Sha256 s;
  const int32_t n = tokenizer.vocab_size();
  s.update("vocab " + std::to_string(n) + "\n");
  for (int32_t id = 0; id < n; ++id) {
    const std::string& t = tokenizer.token_string(id);
    const uint32_t len = uint32_t(t.size());
    s.update(&len, sizeof len);
    s.update(t);
  }
  for (const AddedToken& a : tokenizer.added_tokens())
    s.update("added " + std::to_string(a.id) + " " + a.content + " " + std::to_string(a.special) +
             std::to_string(a.normalized) + std::to_string(a.lstrip) + std::to_string(a.rstrip) + "\n");
  s.update(tokenizer.uses_nfc() ? "nfc\n" : "no normaliser\n");
  for (const std::string& p : tokenizer.split_patterns()) s.update("split " + p + "\n");
  s.update("merges " + std::to_string(tokenizer.merge_count()) + "\n");
  // The merges themselves are not exposed; their order shows in how a probe text is encoded.
  const char* probe =
      "The quick brown fox jumps over the lazy dog's 1234 bytes; naïve café — 東京 ok?!\n\tindentation   "
      "<|endoftext|> ``quotes'' reasoning, unbelievable antidisestablishmentarianism 3.14159";
  for (int32_t id : tokenizer.encode(probe)) s.update(std::to_string(id) + " ");
  return s.finish_hex();
}

std::string files_identity(const std::string& root, const std::vector<std::string>& files) {
  std::string out;
  std::error_code ec;
  const bool folder = fs::is_directory(root, ec);
  for (const std::string& f : files) {
    uint64_t bytes = 0;
    const std::string digest = sha256_file_hex(f, &bytes);
    const std::string name = folder ? fs::relative(f, root, ec).string() : fs::path(f).filename().string();
    out += "file " + name + " " + std::to_string(bytes) + " " + digest + "\n";
  }
  return out;
}

PrepareResult prepare_shards(const ShardSpec& spec, const Tokenizer& tokenizer, const std::string& shard_dir,
                             const PrepareOptions& opt) {
  PrepareResult r;
  r.dir = shard_dir;
  r.hash = dataset_hash(spec, tokenizer);
  if (auto set = reusable(shard_dir, r.hash, opt.check_tokens_on_reuse)) {
    r.reused = true;
    r.shard_count = uint32_t(set->shards().size());
    r.doc_count = set->doc_count();
    r.token_count = set->token_count();
    return r;
  }
  std::error_code ec;
  fs::create_directories(shard_dir, ec);
  INPUT_CHECK(!ec, shard_dir, ": cannot create the shard folder: ", ec.message());
  remove_old_shards(shard_dir);

  ShardAccumulator acc;
  acc.dir = shard_dir;
  acc.max_tokens = std::max<uint64_t>(opt.max_tokens_per_shard, 1);
  acc.base.vocab_size = uint32_t(tokenizer.vocab_size());
  acc.base.token_bytes = tokenizer.vocab_size() <= 65535 ? 2 : 4;
  acc.base.eos_id = tokenizer.token_id("<|endoftext|>").value_or(-1);
  acc.base.has_mask = spec.with_mask;
  acc.base.hash = r.hash;

  const int threads = opt.threads > 0 ? opt.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  const size_t batch_size = size_t(threads) * 64;
  std::vector<TokenizeTask> batch;
  auto drain = [&] {
    for (TokenizedDoc& d : run_tasks(batch, threads)) acc.add(std::move(d));
    batch.clear();
    if (!opt.quiet) log_info("tokenised ", acc.total_docs, spec.with_mask ? " records, " : " documents, ", acc.total_tokens, " tokens");
  };
  try {
    spec.produce([&](TokenizeTask&& t) {
      batch.push_back(std::move(t));
      if (batch.size() >= batch_size) drain();
    });
    drain();
    acc.finish();
  } catch (...) {
    for (auto& [tmp, info] : acc.written) fs::remove(tmp, ec);
    throw;
  }
  r.shard_count = uint32_t(acc.written.size());
  r.doc_count = acc.total_docs;
  r.token_count = acc.total_tokens;
  return r;
}

PrepareResult prepare_shards(const CorpusOptions& source, const Tokenizer& tokenizer, const std::string& shard_dir,
                             const PrepareOptions& opt) {
  ShardSpec spec;
  spec.identity = std::string("corpus format=") + corpus_format_name(source.format) + " field=" + source.field +
                  " tsv_header=" + std::to_string(source.tsv_header) + " unit=" + document_unit_name(source.unit) +
                  " detokenize=" + std::to_string(source.wikitext_detokenize) +
                  " keep_empty=" + std::to_string(source.keep_empty) + "\n" +
                  files_identity(source.path, corpus_files(source.path, source.format));
  spec.with_mask = false;
  spec.produce = [&](const std::function<void(TokenizeTask&&)>& emit) {
    for_each_document(source, [&](Document&& d) {
      emit([&tokenizer, text = std::move(d.text)] {
        EncodeOptions eo;
        eo.match_added_tokens = false;
        return TokenizedDoc{tokenizer.encode(text, eo), {}};
      });
    });
  };
  return prepare_shards(spec, tokenizer, shard_dir, opt);
}

}  // namespace attnlab::data
