#include "train/optimizer.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "dist/communicator.h"
#include "core/io/safetensors.h"
#include "train/grad_sync.h"
#include "optim/adamw.h"
#include "optim/grad_norm.h"

namespace attnlab::train {

bool decays(const std::string& name, const std::vector<std::string>& no_decay_globs) {
  for (const std::string& g : no_decay_globs)
    if (name_matches(g, name)) return false;
  return true;
}

namespace {

Tensor flat(const Tensor& t, const char* name) { return make_tensor_view(t.data, t.dtype, t.device, {t.numel()}, name); }

Tensor flat_range(const Tensor& t, int64_t begin, int64_t count, const char* name) {
  return flat(t, name).slice0(begin, begin + count);
}

}  // namespace

TrainOptimizer::TrainOptimizer(ParamStore& params, const config::OptimConfig& cfg, Ctx& ctx,
                               const ParamStore* master_source, GradSync* sync, dist::Communicator* comm)
    : params_(params), cfg_(cfg), sync_(sync), comm_(comm) {
  CHECK(cfg.name == config::OptimizerKind::adamw,
        "optim.name sgd: the trainer implements AdamW only so far (set optim.name: adamw)");
  CHECK(cfg.betas.size() == 2, "optim.betas needs two values, got ", cfg.betas.size());
  separate_master_ = params.dtype() == DType::bf16;
  sharded_ = sync != nullptr && sync->zero1();
  CHECK(!sharded_ || comm != nullptr, "ZeRO-1 needs the communicator");
  const Device dev = params.device();

  // The pieces: whole parameters, or each parameter's overlap with this rank's shares. Padding
  // rows of a padded vocabulary (Param::pad_rows, the last rows) are in no piece: they have no
  // state and are never updated, so the state file does not depend on the padding.
  for (Param& p : params) {
    if (!p.grad.defined()) continue;
    const int64_t n = p.stored_numel();
    trainable_numel_ += n;
    if (!sharded_) {
      pieces_.push_back({&p, 0, n, 0, {}, {}, {}});
      continue;
    }
    const int64_t off = params.grad_offset(p);
    for (const ElementRange& r : sync->shard_ranges()) {
      const int64_t lo = std::max(off, r.begin), hi = std::min(off + n, r.end());
      if (lo < hi) pieces_.push_back({&p, lo - off, hi - lo, lo, {}, {}, {}});
    }
  }
  CHECK(trainable_numel_ > 0, "no parameter is trainable: check train.trainable (every glob matched nothing?)");
  size_t bytes = Arena::kAlign;
  for (const Piece& pc : pieces_) bytes += Arena::aligned(size_t(pc.count) * 4) * (separate_master_ ? 3 : 2);
  state_ = Arena(dev, bytes);
  if (sharded_) {
    staging_ = Buffer(dev, params.dtype(), {sync->arena_numel()}, "zero1 parameter staging");
    zero_tensor(ctx, staging_.t());
    copy_staging(ctx, /*into_params=*/false);
    reduce_ = Buffer(comm->device(), DType::f64, {2}, "zero1 norm reduce");
    sumsq_ = Buffer(dev, DType::f64, {1}, "zero1 shard sum of squares");
  }

  std::map<const Param*, std::vector<double>> master_values;  // host f32 values per parameter
  std::vector<ParamSlot> slots;
  for (Piece& pc : pieces_) {
    const char* nm = pc.param->name.c_str();
    pc.m = state_.alloc(DType::f32, {pc.count}, nm);
    pc.v = state_.alloc(DType::f32, {pc.count}, nm);
    zero_tensor(ctx, pc.m);
    zero_tensor(ctx, pc.v);
    ParamSlot s;
    s.grad = sharded_ ? params.grad_arena().slice0(pc.arena, pc.arena + pc.count)
                      : flat_range(pc.param->grad, pc.begin, pc.count, nm);
    s.m = pc.m;
    s.v = pc.v;
    s.decay = decays(pc.param->name, cfg.no_decay);
    const Tensor value = sharded_ ? staging_.t().slice0(pc.arena, pc.arena + pc.count)
                                  : flat_range(pc.param->value, pc.begin, pc.count, nm);
    if (separate_master_) {
      pc.master = state_.alloc(DType::f32, {pc.count}, nm);
      auto it = master_values.find(pc.param);
      if (it == master_values.end()) {
        Ctx cpu = Ctx::make_cpu();
        std::vector<double> v = master_source ? to_host_f64(cpu, master_source->find(pc.param->name)->value)
                                              : to_host_f64(ctx, pc.param->value);
        it = master_values.emplace(pc.param, std::move(v)).first;
      }
      from_host_f64(ctx, pc.master,
                    std::vector<double>(it->second.begin() + pc.begin, it->second.begin() + pc.begin + pc.count));
      s.param = pc.master;
      s.param_bf16 = value;
    } else {
      CHECK(pc.param->value.dtype == DType::f32, "the optimizer updates f32 or bf16 models, not ",
            dtype_name(pc.param->value.dtype));
      s.param = value;
    }
    slots.push_back(s);
  }
  table_ = ParamTable(ctx, std::move(slots));
  norm_ = Buffer(dev, DType::f32, {1}, "grad_norm");
  clip_scale_ = Buffer(dev, DType::f32, {1}, "clip_scale");
  nonfinite_ = Buffer(dev, DType::i32, {1}, "nonfinite");
  zero_tensor(ctx, norm_.t());
  zero_tensor(ctx, nonfinite_.t());
}

void TrainOptimizer::copy_staging(Ctx& ctx, bool into_params) {
  if (!sharded_) return;
  for (Param& p : params_) {
    if (!p.grad.defined()) continue;
    const int64_t off = params_.grad_offset(p);
    const Tensor staged = staging_.t().slice0(off, off + p.numel()), value = flat(p.value, p.name.c_str());
    if (into_params) copy_tensor(ctx, value, staged);
    else copy_tensor(ctx, staged, value);
  }
}

void TrainOptimizer::step(Ctx& ctx, double lr) {
  GradNormArgs g;
  g.norm = norm_.t();
  g.clip_scale = clip_scale_.t();
  g.nonfinite = nonfinite_.t();
  g.max_norm = cfg_.grad_clip;
  if (sharded_) g.sumsq = sumsq_.t();
  if (table_.size() > 0) {
    attnlab::grad_norm(ctx, table_, g);
  } else {
    zero_tensor(ctx, norm_.t());  // a rank whose shares hold no trainable element
    zero_tensor(ctx, nonfinite_.t());
    if (sharded_) zero_tensor(ctx, sumsq_.t());
  }
  if (sharded_) {
    // ‖g‖² = Σ over ranks of the shards' sums of squares (in double, never rounded to f32 on the
    // way, so one rank gets the bits of the unsharded norm); a non-finite square on any rank
    // flags the step.
    const double local = to_host_f64(ctx, sumsq_.t())[0];
    const double flagged = to_host_f64(ctx, nonfinite_.t())[0];
    from_host_f64(ctx, reduce_.t(), {local, flagged});
    comm_->all_reduce_sum(reduce_.t());
    const std::vector<double> sum = to_host_f64(ctx, reduce_.t());
    const double norm = std::sqrt(sum[0]);
    const bool bad = sum[1] > 0 || !std::isfinite(norm);
    from_host_f64(ctx, norm_.t(), {norm});
    from_host_f64(ctx, clip_scale_.t(), {grad_clip_scale(norm, cfg_.grad_clip)});
    from_host_f64(ctx, nonfinite_.t(), {bad ? 1.0 : 0.0});
  }
  AdamWArgs a;
  a.hyper.lr = lr;
  a.hyper.beta1 = cfg_.betas[0];
  a.hyper.beta2 = cfg_.betas[1];
  a.hyper.eps = cfg_.eps;
  a.hyper.weight_decay = cfg_.weight_decay;
  a.hyper.step = applied_steps_ + 1;
  a.grad_scale = clip_scale_.t();
  a.skip = nonfinite_.t();
  if (table_.size() > 0) adamw_step(ctx, a, table_);
  if (sharded_) {
    sync_->all_gather(staging_.t());
    copy_staging(ctx, /*into_params=*/true);
  }
}

const Tensor& TrainOptimizer::state_of(const Piece& pc, int which) { return which == 0 ? pc.m : which == 1 ? pc.v : pc.master; }

void TrainOptimizer::gather_state(Ctx& ctx, int which, const Tensor& full) const {
  zero_tensor(ctx, full);
  for (const Piece& pc : pieces_) copy_tensor(ctx, full.slice0(pc.arena, pc.arena + pc.count), state_of(pc, which));
  sync_->all_gather(full);
}

void TrainOptimizer::save(Ctx& ctx, const std::string& path, bool write) const {
  // kinds[which][i]: the host copy of state `which` of the i-th trainable parameter (f32; the
  // CPU's unsharded tensors are written in place).
  std::vector<std::vector<float>> storage;
  std::vector<std::vector<Tensor>> kinds(3);
  auto to_host = [&](const Tensor& t) {
    if (t.on_cpu() && !sharded_) return t;  // ZeRO-1's views point into `full`, reused per kind
    storage.emplace_back(size_t(t.numel()));
    Tensor host = make_tensor_view(storage.back().data(), DType::f32, Device::cpu, {t.numel()}, t.name);
    copy_tensor(ctx, host, t);
    return host;
  };
  Buffer full;
  if (sharded_) full = Buffer(params_.device(), DType::f32, {sync_->arena_numel()}, "zero1 gathered state");
  for (int which = 0; which < 3; ++which) {
    if (which == 2 && !separate_master_) continue;
    if (sharded_) {
      gather_state(ctx, which, full.t());  // collective: every rank
      if (!write) continue;
      for (const Param& p : params_) {
        if (!p.grad.defined()) continue;
        const int64_t off = params_.grad_offset(p);
        kinds[size_t(which)].push_back(to_host(full.t().slice0(off, off + p.stored_numel())));
      }
    } else if (write) {
      for (const Piece& pc : pieces_) kinds[size_t(which)].push_back(to_host(state_of(pc, which)));
    }
  }
  if (!write) return;
  std::vector<NamedTensor> tensors;
  size_t i = 0;
  for (const Param& p : params_) {
    if (!p.grad.defined()) continue;
    if (separate_master_) tensors.push_back({"master." + p.name, kinds[2][i]});
    tensors.push_back({"m." + p.name, kinds[0][i]});
    tensors.push_back({"v." + p.name, kinds[1][i]});
    ++i;
  }
  write_safetensors(path, tensors,
                    {{"format", "attnlab-adamw"}, {"applied_steps", std::to_string(applied_steps_)}});
}

void TrainOptimizer::load(Ctx& ctx, const std::string& path) {
  SafetensorsFile f = SafetensorsFile::open(path);
  std::vector<ExpectedTensor> expected;
  for (Param& p : params_) {
    if (!p.grad.defined()) continue;
    const std::vector<int64_t> shape{p.stored_numel()};
    if (separate_master_) expected.push_back({"master." + p.name, shape});
    expected.push_back({"m." + p.name, shape});
    expected.push_back({"v." + p.name, shape});
  }
  try {
    expect_tensors(f, expected, false);
  } catch (const Error& err) {
    FAIL_WITH("optimizer state '", path, "' does not fit this run's trainable parameters (",
              separate_master_ ? "bf16 with f32 masters" : "f32", "): ", err.what(),
              ". Fix: resume with the same model, dtype and train.trainable, or start a new run");
  }
  const auto& meta = f.metadata();
  auto it = meta.find("applied_steps");
  CHECK(it != meta.end(), "optimizer state '", path, "' has no applied_steps metadata (not written by attnlab?)");
  applied_steps_ = std::stoll(it->second);
  // Each parameter's full tensor is read once; its pieces (this rank's shares) are copied out.
  const char* prefixes[3] = {"m.", "v.", "master."};
  std::vector<float> host;
  for (int which = 0; which < 3; ++which) {
    if (which == 2 && !separate_master_) continue;
    const Param* loaded = nullptr;
    for (Piece& pc : pieces_) {
      if (loaded != pc.param) {
        host.resize(size_t(pc.param->stored_numel()));
        read_tensor_into(f, prefixes[which] + pc.param->name,
                         make_tensor_view(host.data(), DType::f32, Device::cpu, {pc.param->stored_numel()},
                                          "optimizer state"));
        loaded = pc.param;
      }
      copy_tensor(ctx, state_of(pc, which),
                  make_tensor_view(host.data() + pc.begin, DType::f32, Device::cpu, {pc.count}, "optimizer state"));
    }
  }
  // The working copy is by definition the rounded master (the checkpoint's weights already are;
  // this keeps the two consistent even for a hand-edited file). Other ranks' shares hold the
  // checkpoint's weights, which are the same rounded masters.
  if (separate_master_)
    for (Piece& pc : pieces_)
      from_host_f64(ctx, flat_range(pc.param->value, pc.begin, pc.count, pc.param->name.c_str()),
                    to_host_f64(ctx, pc.master));
  copy_staging(ctx, /*into_params=*/false);
}

}  // namespace attnlab::train
