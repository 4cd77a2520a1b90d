#include "core/train/optimizer.h"

#include <map>

#include "core/io/safetensors.h"
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

}  // namespace

TrainOptimizer::TrainOptimizer(Model& model, const config::OptimConfig& cfg, Ctx& ctx, const Model* master_source)
    : model_(model), cfg_(cfg) {
  CHECK(cfg.name == config::OptimizerKind::adamw,
        "optim.name sgd: the trainer implements AdamW only so far (set optim.name: adamw)");
  CHECK(cfg.betas.size() == 2, "optim.betas needs two values, got ", cfg.betas.size());
  separate_master_ = model.dtype() == DType::bf16;
  const Device dev = model.device();
  size_t bytes = 0;
  for (Param& p : model.params()) {
    if (!p.grad.defined()) continue;
    entries_.push_back({&p, {}, {}, {}});
    bytes += Arena::aligned(size_t(p.stored_numel()) * 4) * (separate_master_ ? 3 : 2);
  }
  CHECK(!entries_.empty(), "no parameter is trainable: check train.trainable (every glob matched nothing?)");
  state_ = Arena(dev, bytes);
  std::vector<ParamSlot> slots;
  // Padding rows (Model's padded vocabulary) are left out of every slot: they have no state, are
  // never updated (so they stay zero whatever their gradient) and are not in the state file, which
  // therefore does not depend on the padding.
  for (Entry& e : entries_) {
    const int64_t n = e.param->stored_numel();
    const char* nm = e.param->name.c_str();
    e.m = state_.alloc(DType::f32, {n}, nm);
    e.v = state_.alloc(DType::f32, {n}, nm);
    zero_tensor(ctx, e.m);
    zero_tensor(ctx, e.v);
    ParamSlot s;
    s.grad = flat(e.param->unpadded(e.param->grad), nm);
    s.m = e.m;
    s.v = e.v;
    s.decay = decays(e.param->name, cfg.no_decay);
    if (separate_master_) {
      e.master = state_.alloc(DType::f32, {n}, nm);
      if (master_source) {
        Ctx cpu = Ctx::make_cpu();
        const Param* src = master_source->params().find(e.param->name);
        from_host_f64(ctx, e.master, to_host_f64(cpu, src->unpadded(src->value)));
      } else {
        from_host_f64(ctx, e.master, to_host_f64(ctx, e.param->unpadded(e.param->value)));
      }
      s.param = e.master;
      s.param_bf16 = flat(e.param->unpadded(e.param->value), nm);
    } else {
      CHECK(e.param->value.dtype == DType::f32, "the optimizer updates f32 or bf16 models, not ",
            dtype_name(e.param->value.dtype));
      s.param = flat(e.param->unpadded(e.param->value), nm);
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

void TrainOptimizer::step(Ctx& ctx, double lr) {
  GradNormArgs g;
  g.norm = norm_.t();
  g.clip_scale = clip_scale_.t();
  g.nonfinite = nonfinite_.t();
  g.max_norm = cfg_.grad_clip;
  attnlab::grad_norm(ctx, table_, g);
  AdamWArgs a;
  a.hyper.lr = lr;
  a.hyper.beta1 = cfg_.betas[0];
  a.hyper.beta2 = cfg_.betas[1];
  a.hyper.eps = cfg_.eps;
  a.hyper.weight_decay = cfg_.weight_decay;
  a.hyper.step = applied_steps_ + 1;
  a.grad_scale = clip_scale_.t();
  a.skip = nonfinite_.t();
  adamw_step(ctx, a, table_);
}

void TrainOptimizer::save(Ctx& ctx, const std::string& path) const {
  // Host copies (the CPU's tensors are written in place); masters first, all f32.
  std::vector<std::vector<float>> storage;
  std::vector<NamedTensor> tensors;
  storage.reserve(entries_.size() * 3);
  auto add = [&](const std::string& name, const Tensor& t) {
    Tensor host = t;
    if (!t.on_cpu()) {
      storage.emplace_back(size_t(t.numel()));
      host = make_tensor_view(storage.back().data(), DType::f32, Device::cpu, {t.numel()}, t.name);
      copy_tensor(ctx, host, t);
    }
    tensors.push_back({name, host});
  };
  for (const Entry& e : entries_) {
    if (separate_master_) add("master." + e.param->name, e.master);
    add("m." + e.param->name, e.m);
    add("v." + e.param->name, e.v);
  }
  write_safetensors(path, tensors,
                    {{"format", "attnlab-adamw"}, {"applied_steps", std::to_string(applied_steps_)}});
}

void TrainOptimizer::load(Ctx& ctx, const std::string& path) {
  SafetensorsFile f = SafetensorsFile::open(path);
  std::vector<ExpectedTensor> expected;
  for (const Entry& e : entries_) {
    const std::vector<int64_t> shape{e.param->stored_numel()};
    if (separate_master_) expected.push_back({"master." + e.param->name, shape});
    expected.push_back({"m." + e.param->name, shape});
    expected.push_back({"v." + e.param->name, shape});
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
  std::vector<float> staging;
  auto read = [&](const std::string& name, const Tensor& dst) {
    if (dst.on_cpu()) return read_tensor_into(f, name, dst);
    staging.resize(size_t(dst.numel()));
    Tensor host = make_tensor_view(staging.data(), DType::f32, Device::cpu, {dst.numel()}, dst.name);
    read_tensor_into(f, name, host);
    copy_tensor(ctx, dst, host);
  };
  for (Entry& e : entries_) {
    read("m." + e.param->name, e.m);
    read("v." + e.param->name, e.v);
    if (separate_master_) {
      read("master." + e.param->name, e.master);
      // The working copy is by definition the rounded master.
      from_host_f64(ctx, e.param->unpadded(e.param->value), to_host_f64(ctx, e.master));
    }
  }
}

}  // namespace attnlab::train
