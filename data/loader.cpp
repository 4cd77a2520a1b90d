#include "data/loader.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/log.h"
#include "data/input_check.h"
#include "data/seeded_rng.h"

namespace attnlab::data {

namespace {

// Streams of seeded_permutation: the validation split, and one per epoch of training order.
constexpr uint64_t kValSplitStream = 0x56414c5350ull;  // "VALSP"
constexpr uint64_t kEpochStreamBase = 0x4550ull << 32;  // "EP" << 32, + epoch

const char* split_name(Split s) { return s == Split::train ? "train" : "validation"; }

}  // namespace

std::vector<uint64_t> seeded_permutation(uint64_t n, uint64_t seed, uint64_t stream) {
  std::vector<uint64_t> p(n);
  for (uint64_t i = 0; i < n; ++i) p[i] = i;
  SeededRng rng(seed, stream);
  for (uint64_t i = n; i > 1; --i) std::swap(p[i - 1], p[rng.below(i)]);
  return p;
}

DocSplit split_documents(uint64_t n, double val_fraction, uint64_t seed) {
  INPUT_CHECK(val_fraction >= 0 && val_fraction < 1, "val_fraction ", val_fraction, " must be in [0, 1)");
  uint64_t k = 0;
  if (val_fraction > 0 && n >= 2) k = std::clamp<uint64_t>(uint64_t(std::llround(val_fraction * double(n))), 1, n - 1);
  DocSplit s;
  std::vector<uint8_t> is_val(n, 0);
  if (k) {
    const std::vector<uint64_t> p = seeded_permutation(n, seed, kValSplitStream);
    for (uint64_t i = 0; i < k; ++i) is_val[p[i]] = 1;
  }
  for (uint64_t i = 0; i < n; ++i) (is_val[i] ? s.validation : s.train).push_back(i);
  return s;
}

EpochSampler::EpochSampler(uint64_t items, uint64_t seed, bool shuffle, int rank, int world,
                           RemainderPolicy remainder)
    : items_(items), seed_(seed), shuffle_(shuffle), remainder_(remainder), rank_(rank), world_(world) {
  CHECK(world >= 1 && rank >= 0 && rank < world, "rank ", rank, " of world ", world);
  per_rank_ = per_rank(0);
}

uint64_t EpochSampler::per_rank(uint64_t offset) const {
  const uint64_t w = uint64_t(world_), r = uint64_t(rank_);
  const uint64_t left = offset < items_ ? items_ - offset : 0;
  switch (remainder_) {
    case RemainderPolicy::pad: return left ? (left + w - 1) / w : 0;
    case RemainderPolicy::drop: return left / w;
    case RemainderPolicy::uneven: return r < left ? (left - r + w - 1) / w : 0;
  }
  return 0;
}

uint64_t EpochSampler::item(uint64_t epoch, uint64_t position, uint64_t offset) {
  CHECK(position < per_rank(offset), "position ", position, " past the ", per_rank(offset), " items of this rank");
  uint64_t p = offset + position * uint64_t(world_) + uint64_t(rank_);
  if (p >= items_) p %= items_;  // pad: the last round wraps to the start of the order
  if (!shuffle_) return p;
  if (epoch != cached_epoch_) {
    order_ = seeded_permutation(items_, seed_, kEpochStreamBase + epoch);
    cached_epoch_ = epoch;
  }
  return order_[p];
}

BatchLoader::BatchLoader(std::shared_ptr<const ShardSet> shards, const LoaderOptions& opt, Split split,
                         uint64_t items, const char* kind)
    : shards_(std::move(shards)),
      opt_(opt),
      split_(split),
      kind_(kind),
      sampler_(items, opt.seed, split == Split::train && opt.shuffle, opt.rank, opt.world,
               split == Split::train ? opt.remainder : RemainderPolicy::uneven) {
  if (split == Split::train)
    INPUT_CHECK(sampler_.per_rank() > 0, kind, " training data: ", items, " items for ", opt.world,
                " ranks leaves rank ", opt.rank, " nothing to read (remainder policy drop); use more data");
}

bool BatchLoader::next(Batch& out, int64_t batch_size) {
  CHECK(batch_size >= 1, "batch size ", batch_size);
  std::vector<uint64_t> items;
  items.reserve(size_t(batch_size));
  while (int64_t(items.size()) < batch_size) {
    if (cursor_.position >= sampler_.per_rank(cursor_.offset)) {
      if (split_ == Split::validation) break;
      ++cursor_.epoch;
      cursor_.position = 0;
      cursor_.offset = 0;
    }
    items.push_back(sampler_.item(cursor_.epoch, cursor_.position++, cursor_.offset));
  }
  if (items.empty()) return false;
  out.rows = int64_t(items.size());
  fill(out, items);
  out.items = std::move(items);
  out.target_count = 0;
  for (int32_t t : out.targets) out.target_count += t != kIgnoreTarget;
  return true;
}

std::string BatchLoader::state_json() const {
  nlohmann::json j;
  j["kind"] = kind_;
  j["split"] = split_name(split_);
  j["epoch"] = cursor_.epoch;
  j["position"] = cursor_.position;
  j["offset"] = cursor_.offset;
  j["seed"] = opt_.seed;
  j["world"] = opt_.world;
  j["items"] = sampler_.items();
  j["seq_len"] = opt_.seq_len;
  j["shuffle"] = opt_.shuffle;
  j["val_fraction"] = opt_.val_fraction;
  j["data_hash"] = hash_hex(shards_->info().hash);
  return j.dump();
}

void BatchLoader::restore_state(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  INPUT_CHECK(j.is_object() && j.contains("epoch") && j.contains("position"), "data loader state is not valid: ", text);
  nlohmann::json now = nlohmann::json::parse(state_json());
  for (const char* key : {"kind", "split", "seed", "items", "seq_len", "shuffle", "val_fraction", "data_hash"})
    INPUT_CHECK(j.contains(key) && j[key] == now[key], "cannot resume the ", kind_, " data loader: the saved state has ",
                key, " = ", j.contains(key) ? j[key].dump() : "nothing", " but this run has ", now[key].dump(),
                "; resume with the same data, tokenizer, seed and sequence length");
  INPUT_CHECK(j.contains("world") && j["world"].is_number_unsigned() && j["world"].get<uint64_t>() >= 1,
              "data loader state has no valid world size: ", text);
  LoaderCursor c{j["epoch"].get<uint64_t>(), j["position"].get<uint64_t>(), j.value("offset", uint64_t(0))};
  const uint64_t saved_world = j["world"].get<uint64_t>();
  if (saved_world != uint64_t(opt_.world)) {
    // The saved ranks consumed positions [0, g) of the epoch together; these ranks go on from g.
    const uint64_t g = c.offset + c.position * saved_world;
    c = g >= sampler_.items() ? LoaderCursor{c.epoch + 1, 0, 0} : LoaderCursor{c.epoch, 0, g};
  }
  INPUT_CHECK(c.position <= sampler_.per_rank(c.offset), "cannot resume the data loader: position ", c.position,
              " is past the ", sampler_.per_rank(c.offset), " items of an epoch");
  cursor_ = c;
}

// ---- pretraining -----------------------------------------------------------------------------

namespace {

uint64_t sequences_of(uint64_t stream_tokens, int64_t seq_len) {
  return stream_tokens >= uint64_t(seq_len) + 1 ? (stream_tokens - 1) / uint64_t(seq_len) : 0;
}

}  // namespace

PretrainLoader::PretrainLoader(std::shared_ptr<const ShardSet> shards, const LoaderOptions& opt, Split split)
    : PretrainLoader(shards, opt, split, [&] {
        INPUT_CHECK(shards != nullptr, "no token shards");
        INPUT_CHECK(opt.seq_len >= 1, "seq_len ", opt.seq_len, " must be at least 1");
        INPUT_CHECK(!shards->info().has_mask, "these shards hold SFT records (they have a loss mask); pretraining ",
                    "reads corpus shards");
        const DocSplit ds = split_documents(shards->doc_count(), opt.val_fraction, opt.seed);
        const std::vector<uint64_t>& chosen = split == Split::train ? ds.train : ds.validation;
        const uint64_t sep = shards->info().eos_id >= 0 ? 1 : 0;
        Packing p;
        p.prefix.push_back(0);
        for (uint64_t d : chosen) {
          const uint64_t len = shards->doc_length(d);
          if (len == 0) continue;
          p.docs.push_back(d);
          p.prefix.push_back(p.prefix.back() + len + sep);
        }
        const uint64_t n = sequences_of(p.prefix.back(), opt.seq_len);
        INPUT_CHECK(n > 0, "the ", split_name(split), " split has ", p.docs.size(), " documents and ", p.prefix.back(),
                    " tokens (with EOS), fewer than seq_len + 1 = ", opt.seq_len + 1,
                    split == Split::validation ? "; raise data.val_fraction or lower data.seq_len"
                                               : "; use a larger corpus or a smaller data.seq_len");
        return p;
      }()) {}

PretrainLoader::PretrainLoader(std::shared_ptr<const ShardSet> shards, const LoaderOptions& opt, Split split,
                               Packing packing)
    : BatchLoader(shards, opt, split, sequences_of(packing.prefix.back(), opt.seq_len), "pretrain"),
      docs_(std::move(packing.docs)),
      prefix_(std::move(packing.prefix)),
      eos_(shards->info().eos_id) {}

void PretrainLoader::read_window(uint64_t k, int32_t* out) const {
  const uint64_t T = uint64_t(opt_.seq_len);
  CHECK(k < sampler_.items(), "sequence ", k, " of ", sampler_.items());
  uint64_t pos = k * T, need = T + 1;
  size_t i = size_t(std::upper_bound(prefix_.begin(), prefix_.end(), pos) - prefix_.begin()) - 1;
  while (need) {
    CHECK(i < docs_.size(), "packed stream overrun");
    auto [shard, local] = shards_->locate(docs_[i]);
    const uint64_t len = shard->doc_length(local);
    uint64_t off = pos - prefix_[i];
    if (off < len) {
      const uint64_t n = std::min(len - off, need);
      shard->copy_tokens(shard->doc_begin(local) + off, shard->doc_begin(local) + off + n, out);
      out += n;
      need -= n;
      pos += n;
      off += n;
    }
    if (need && off == len && eos_ >= 0) {
      *out++ = eos_;
      --need;
      ++pos;
    }
    if (pos >= prefix_[i + 1]) ++i;
  }
}

void PretrainLoader::fill(Batch& out, const std::vector<uint64_t>& items) const {
  const int64_t T = opt_.seq_len;
  out.cols = T;
  out.inputs.resize(size_t(out.rows * T));
  out.targets.resize(size_t(out.rows * T));
  out.lengths.assign(size_t(out.rows), int32_t(T));
  std::vector<int32_t> window(size_t(T) + 1);
  for (size_t r = 0; r < items.size(); ++r) {
    read_window(items[r], window.data());
    std::copy(window.begin(), window.end() - 1, out.inputs.begin() + int64_t(r) * T);
    std::copy(window.begin() + 1, window.end(), out.targets.begin() + int64_t(r) * T);
  }
}

// ---- SFT ---------------------------------------------------------------------------------------

SftLoader::SftLoader(std::shared_ptr<const ShardSet> shards, const LoaderOptions& opt, Split split)
    : SftLoader(shards, opt, split, [&] {
        INPUT_CHECK(shards != nullptr, "no token shards");
        INPUT_CHECK(opt.seq_len >= 2, "seq_len ", opt.seq_len, " must be at least 2 for SFT");
        INPUT_CHECK(shards->info().has_mask, "these shards hold pretraining documents (no loss mask); SFT reads ",
                    "record shards (data.sft_format)");
        const DocSplit ds = split_documents(shards->doc_count(), opt.val_fraction, opt.seed);
        Selection sel;
        for (uint64_t r : split == Split::train ? ds.train : ds.validation) {
          const uint64_t len = shards->doc_length(r);
          if (len == 0) continue;
          ++sel.in_split;
          if (len > uint64_t(opt.seq_len)) ++sel.dropped;
          else sel.kept.push_back(r);
        }
        INPUT_CHECK(!sel.kept.empty(), "SFT ", split_name(split), " split: none of its ", sel.in_split,
                    " records fits in data.seq_len = ", opt.seq_len, " tokens",
                    sel.in_split ? "; raise data.seq_len" : "; raise data.val_fraction or add records");
        log_info("SFT ", split_name(split), " split: ", sel.kept.size(), " of ", sel.in_split, " records kept, ",
                 sel.dropped, " dropped as longer than ", opt.seq_len, " tokens");
        return sel;
      }()) {}

SftLoader::SftLoader(std::shared_ptr<const ShardSet> shards, const LoaderOptions& opt, Split split, Selection sel)
    : BatchLoader(shards, opt, split, sel.kept.size(), "sft"),
      records_(std::move(sel.kept)),
      in_split_(sel.in_split),
      dropped_too_long_(sel.dropped),
      pad_id_(opt.pad_id >= 0 ? opt.pad_id : std::max(shards->info().eos_id, 0)) {
  INPUT_CHECK(uint32_t(pad_id_) < shards_->info().vocab_size, "pad id ", pad_id_, " is outside the vocabulary of ",
              shards_->info().vocab_size);
}

void SftLoader::fill(Batch& out, const std::vector<uint64_t>& items) const {
  int64_t cols = 0;
  for (uint64_t it : items) cols = std::max<int64_t>(cols, int64_t(shards_->doc_length(records_[it])));
  if (opt_.pad_to_seq_len) cols = opt_.seq_len;
  out.cols = cols;
  out.inputs.assign(size_t(out.rows * cols), pad_id_);
  out.targets.assign(size_t(out.rows * cols), kIgnoreTarget);
  out.lengths.resize(items.size());
  for (size_t r = 0; r < items.size(); ++r) {
    auto [shard, local] = shards_->locate(records_[items[r]]);
    const uint64_t begin = shard->doc_begin(local), len = shard->doc_length(local);
    int32_t* in = out.inputs.data() + int64_t(r) * cols;
    int32_t* tg = out.targets.data() + int64_t(r) * cols;
    shard->copy_tokens(begin, begin + len, in);
    // Target t is token t+1 when that token carries loss.
    for (uint64_t t = 0; t + 1 < len; ++t)
      if (!opt_.loss_on_targets_only || shard->mask(begin + t + 1)) tg[t] = in[t + 1];
    out.lengths[r] = int32_t(len);
  }
}

}  // namespace attnlab::data
