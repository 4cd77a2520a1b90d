// Trainer construction: device, run folder, data, model, optimizer, resume; and checkpoints.
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/config/printer.h"
#include "core/log.h"
#include "core/models/scratch_decoder.h"
#include "core/models/scratch_decoder_config.h"
#include "train/model_setup.h"
#include "train/resume_check.h"

#include "train/trainer_impl.h"
#include "data/tokenizer_files.h"
#include "data/assets.h"

namespace attnlab::train {

namespace fs = std::filesystem;

namespace {

std::string human_count(double n) {
  char buf[32];
  if (n >= 1e9) std::snprintf(buf, sizeof buf, "%.2fB", n / 1e9);
  else if (n >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", n / 1e6);
  else if (n >= 1e3) std::snprintf(buf, sizeof buf, "%.1fk", n / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", n);
  return buf;
}

}  // namespace

void Trainer::Impl::say(const std::string& text) const {
  if (rank == 0 && progress) progress->message(text);
}

void Trainer::Impl::choose_device(int local_rank) {
  const CudaStatus st = cuda_status();
  Device dev = Device::cpu;
  if (cfg.run.device == config::DeviceChoice::cuda) {
    CHECK(st.usable, "run.device is cuda but CUDA is not usable here: ", st.reason,
          ". Fix: set run.device: auto (or cpu) to train on the CPU");
    dev = Device::cuda;
  } else if (cfg.run.device == config::DeviceChoice::auto_select && st.usable) {
    dev = Device::cuda;
  }
  dtype = cfg.run.dtype;
  const uint64_t seed = uint64_t(cfg.run.seed);
  if (dev == Device::cuda) {
    const int index = dist::cuda_device_for_local_rank(local_rank, st.device_count);
    ctx = Ctx::make_cuda(index, seed);
  } else {
    ctx = Ctx::make_cpu(seed);
    if (dtype == DType::bf16) dtype = DType::f32;  // announced in the summary; the config rule covers device: cpu
  }
  // A profiling window wants the layers' NVTX ranges even when profile.nvtx was left off.
  ctx.nvtx = cfg.profile.nvtx || cfg.profile.steps.has_value();
}

void Trainer::Impl::setup_data() {
  if (opt.data) {
    data = opt.data;
  } else {
    data::PrepareOptions prep;
    prep.quiet = rank != 0 || opt.console == nullptr;
    if (rank == 0) data = std::make_shared<const data::PreparedData>(data::prepare_data(dataset_config(cfg), prep));
    comm->barrier();
    if (rank != 0) data = std::make_shared<const data::PreparedData>(data::open_prepared_data(dataset_config(cfg)));
  }
  data::LoaderOptions lo = data::loader_options(dataset_config(cfg), rank, world);
  // The model is planned for [B, T] once: SFT rows are padded to seq_len rather than to the
  // batch's longest record.
  lo.pad_to_seq_len = true;
  train_loader = data::make_loader(*data, lo, data::Split::train);
  if (cfg.data.val_fraction > 0) val_loader = data::make_loader(*data, lo, data::Split::validation);
  const int32_t eos = data->shards->info().eos_id;
  pad_id = eos >= 0 ? eos : 0;
}

std::string Trainer::Impl::find_resume_checkpoint() const {
  const std::string root = checkpoint_root(run_dir);
  const config::CheckpointConfig& c = cfg.checkpoint;
  if (c.resume_never()) {
    const auto latest = latest_checkpoint(root);
    CHECK(!latest, "checkpoint.resume is never, but '", root, "' already holds checkpoints (the latest at step ",
          latest ? latest->step : 0, "); a new run would mix its checkpoints with them. Fix: choose another "
          "run.name, delete that folder, or set checkpoint.resume: auto to continue it");
    return "";
  }
  if (c.resume_auto()) {
    const auto latest = latest_checkpoint(root);
    // A folder without DONE newer than the one resumed is a save that died: passed over, said so.
    for (const CheckpointRef& bad : incomplete_checkpoints(root))
      if (!latest || bad.step > latest->step)
        say("note: skipping " + bad.path + ": it holds no " + kDoneMarker + " marker (the save did not finish); " +
            (latest ? "resuming from " + latest->path + " instead" : std::string("no complete checkpoint, so the run starts fresh")));
    return latest ? latest->path : "";
  }
  CHECK(fs::is_directory(c.resume), "checkpoint.resume '", c.resume, "' is not a folder (use auto, never, or a "
        "checkpoint folder such as ", root, "/", checkpoint_name(1000), ")");
  CHECK(is_complete_checkpoint(c.resume), "checkpoint.resume '", c.resume, "' holds no ", kDoneMarker,
        " marker: the save did not finish, so it is not a checkpoint to trust. Fix: resume from an older one");
  return c.resume;
}

std::string Trainer::Impl::resume_origin(const std::string& dir) const {
  return cfg.checkpoint.resume_auto()
             ? "this is an auto-resume (checkpoint.resume: auto) of the latest checkpoint in the run folder, " + dir
             : "this resumes checkpoint.resume " + dir;
}

void Trainer::Impl::check_resume_config(const std::string& dir) {
  const std::string state_path = (fs::path(dir) / kTrainerStateFile).string();
  std::vector<ConfigChange> changes;
  std::string unreadable;
  try {
    const nlohmann::json j = nlohmann::json::parse(read_file_text(state_path));
    const std::string saved_yaml = j.at("config_yaml").get<std::string>();
    const config::ExperimentConfig saved = config::load_experiment_text(saved_yaml, state_path + " (config_yaml)");
    changes = config_changes(saved.resolved, cfg.resolved);
  } catch (const std::exception& e) {
    unreadable = e.what();
  }
  std::vector<ConfigChange> forbidden = forbidden_changes(changes);
  // An explicit checkpoint.resume PATH continues that run into this run's folder: the name may differ.
  if (!cfg.checkpoint.resume_auto())
    forbidden.erase(std::remove_if(forbidden.begin(), forbidden.end(),
                                   [](const ConfigChange& c) { return c.path == "run.name"; }),
                    forbidden.end());
  if (!opt.continue_changed) {
    if (!unreadable.empty())
      FAIL_WITH("refusing to resume: ", resume_origin(dir), ", and the config it was trained with cannot be read back "
                "from ", state_path, " (", unreadable, "), so it cannot be shown to be this run. Fix: give this run its "
                "own run.name, or pass --continue-changed to resume it anyway");
    if (!forbidden.empty()) {
      std::string list;
      bool model_changed = false;
      for (const ConfigChange& c : forbidden) {
        list += "\n  " + c.text();
        model_changed = model_changed || c.path.rfind("model.", 0) == 0;
      }
      // Name what the checkpoint holds when the model differs (a from-scratch decoder's file says).
      const std::string scratch_file = scratch_decoder_file(dir);
      if (model_changed && fs::exists(scratch_file)) {
        try {
          const ScratchDecoderConfig held = read_scratch_decoder_config(scratch_file);
          list += "\n  (the checkpoint holds a " + std::string(held.differential ? "differential" : "standard") +
                  " decoder of the " + (held.preset == ScratchDecoderConfig::Preset::seed ? "seed" : "paper") +
                  " preset)";
        } catch (const Error&) {
        }
      }
      FAIL_WITH("refusing to resume: ", resume_origin(dir), ", and this config differs from the one that run was "
                "trained with in more than run length and logging:", list,
                "\nFix: give this experiment its own run.name (e.g. run.name=", cfg.run.name, "-2), or pass "
                "--continue-changed to continue the saved run with these settings");
    }
  }
  std::string list;
  for (const ConfigChange& c : changes) list += "\n  " + c.text();
  if (!unreadable.empty())
    say("warning: --continue-changed: the saved config cannot be read back (" + unreadable + "); resuming anyway");
  else if (!forbidden.empty())
    say("warning: --continue-changed: resuming " + dir + " with a changed config:" + list);
  else if (!changes.empty())
    say("note: resuming " + dir + " with a new run length or reporting:" + list);
}

void Trainer::Impl::setup_model(const std::string& resume_dir) {
  const bool scratch = is_scratch_decoder(cfg.model);
  const bool kv_only = cfg.task == config::Task::kv_only;
  CHECK(!scratch || !kv_only, "task kv_only trains the k_proj/v_proj weights of an HF model; model.from ", cfg.model.from,
        " is a from-scratch decoder. Fix: use task pretrain");
  if (!scratch) model_config = experiment_model_config(cfg);
  CHECK(!kv_only || model_config.arch != ModelArch::gpt2,
        "task kv_only trains the k_proj/v_proj weights, but GPT-2 fuses q, k and v into one c_attn matrix. Fix: "
        "use a Qwen2/Qwen3 model, or task sft with train.trainable globs");
  // Pretraining packs documents (separated by the shards' EOS); SFT pads its rows.
  const TokenRows rows{!data->sft, data->shards->info().eos_id};
  BuiltModel built = build_model(cfg, model_config, dtype, ctx, /*need_master_source=*/resume_dir.empty(), rows);
  model = std::move(built.model);
  if (kv_only) model->params().set_trainable(ctx, {"*.k_proj.*", "*.v_proj.*"});
  else if (cfg.train.trainable) model->params().set_trainable(ctx, *cfg.train.trainable);
  const uint32_t data_vocab = data->shards->info().vocab_size;
  CHECK(int64_t(data_vocab) <= model->vocab_size(), "the data's tokenizer has ", data_vocab,
        " token ids but the model's embedding has ", model->vocab_size(), " rows (",
        scratch ? "model.from " + cfg.model.from : model_config.source,
        "). Fix: use the model's own tokenizer (data.tokenizer), or set model.arch vocab_size");
  model->set_training(true);
  model->plan(ctx, B, T);
  // Gradient buckets (they pad the gradient arena, so before the optimizer takes its views), the
  // backward's per-block reports that launch them, and the optimizer (sharded under ZeRO-1).
  grad_sync = std::make_unique<GradSync>(model->params(), *comm, ctx, cfg.distributed.bucket_mb, cfg.distributed.zero1);
  model->set_grad_ready_hook([gs = grad_sync.get()](const Param& first) { gs->ready_from(gs->watermark_of(first)); });
  optimizer = std::make_unique<TrainOptimizer>(model->params(), cfg.optim, ctx,
                                               built.master_source ? &built.master_source->params() : nullptr,
                                               grad_sync.get(), comm);
  // log.grad_norms: every glob names at least one trainable parameter, and whole gradients exist.
  for (const std::string& glob : cfg.log.grad_norms) {
    bool any = false;
    for (const Param& p : model->params()) any = any || (p.grad.defined() && name_matches(glob, p.name));
    CHECK(any, "log.grad_norms: '", glob, "' matches no trainable parameter (e.g. \"*attn.gate_*\" for the two-pass ",
          "gates, \"*.q_proj.weight\"); fix the glob or remove it");
  }
  CHECK(cfg.log.grad_norms.empty() || !cfg.distributed.zero1,
        "log.grad_norms needs every parameter's whole gradient, but distributed.zero1 leaves each rank a shard; ",
        "turn one of them off");
}

void Trainer::Impl::restore(const std::string& dir) {
  try {
    model->load_weights(ctx, dir);
    optimizer->load(ctx, (fs::path(dir) / kOptimizerFile).string());
  } catch (const Error& e) {
    FAIL_WITH(resume_origin(dir), ", but its weights do not fit the model this config builds: ", e.what(),
              "\nFix: give this run its own run.name (or set checkpoint.resume: never to refuse resuming)");
  }
  const std::string state_path = (fs::path(dir) / kTrainerStateFile).string();
  nlohmann::json j = nlohmann::json::parse(read_file_text(state_path), nullptr, false);
  CHECK(!j.is_discarded(), state_path, ": not valid JSON");
  state = TrainerState::from_json(j, state_path);
  // A checkpoint of N ranks resumes on M: the loader continues the epoch at the global position
  // the N ranks had reached (loader.h); weights and optimizer state are rank-independent on disk.
  if (state.world_size != world)
    say("note: the checkpoint was written by " + std::to_string(state.world_size) + " rank" +
        (state.world_size == 1 ? "" : "s") + " and this run has " + std::to_string(world) +
        ": the data continues where those ranks stopped; the global batch is now " + std::to_string(world) +
        " x micro_batch x grad_accum sequences");
  train_loader->restore_state(state.loader_state);
  state.world_size = world;
  ctx.seed = state.rng_seed;
  ctx.rng_offset = state.rng_offset;
  resumed_from = dir;

  if (state.total_steps != schedule.total_steps)
    say("note: the run now has " + std::to_string(schedule.total_steps) + " optimizer steps (the checkpoint's run had " +
        std::to_string(state.total_steps) + "); the learning-rate schedule follows the new count");
}

void Trainer::Impl::setup_comm(const dist::LaunchEnv& env) {
  dist::Backend b = dist::Backend::auto_select;
  switch (cfg.distributed.backend) {
    case config::DistBackend::auto_select: b = dist::Backend::auto_select; break;
    case config::DistBackend::nccl: b = dist::Backend::nccl; break;
    case config::DistBackend::mpi: b = dist::Backend::mpi; break;
    case config::DistBackend::none:
      CHECK(env.world_size == 1, "distributed.backend is none but the launcher started ", env.world_size,
            " ranks (", env.describe(), "). Fix: set distributed.backend: auto (nccl on GPUs, mpi on CPUs)");
      b = dist::Backend::single;
      break;
  }
  dist::NcclOptions nccl;
  nccl.config_hash = config::config_hash(cfg.resolved);
  own_comm = dist::make_communicator(b, env, ctx, nccl);
  comm = own_comm.get();
}

void Trainer::Impl::setup() {
  // Ranks from the launcher's environment (or the communicator the caller made); the rank's GPU
  // is chosen before any CUDA or NCCL call.
  dist::LaunchEnv env;
  if (!opt.comm) env = dist::discover_launch_env();
  choose_device(opt.comm ? opt.comm->local_rank() : env.local_rank);
  if (opt.comm) comm = opt.comm;
  else setup_comm(env);
  rank = comm->rank();
  world = comm->world_size();
  set_log_rank(rank, world);
  progress = std::make_unique<Progress>(rank == 0 ? opt.console : nullptr, cfg.log.progress);
  if (world > 1)
    say("train: " + comm->describe() +
        (opt.comm ? std::string() : std::string("; ranks from ") + dist::launch_source_name(env.source)));
  run_dir = (fs::path(cfg.run.out_dir) / cfg.run.name).string();
  // Which checkpoint this run continues, and whether it is the same run, before any work.
  const std::string resume_dir = find_resume_checkpoint();
  if (!resume_dir.empty()) check_resume_config(resume_dir);
  if (rank == 0) {
    std::error_code ec;
    fs::create_directories(run_dir, ec);
    CHECK(!ec && fs::is_directory(run_dir), "cannot create the run folder '", run_dir, "': ", ec.message());
  }
  B = cfg.train.micro_batch;
  T = cfg.data.seq_len;
  accum = cfg.train.grad_accum;

  setup_data();
  setup_model(resume_dir);

  int64_t total = 0;
  const int64_t per_rank = int64_t(train_loader->items_per_rank_per_epoch());
  const int64_t per_step = B * accum;
  steps_per_epoch = std::max<int64_t>(1, (per_rank + per_step - 1) / per_step);
  if (cfg.train.steps) {
    total = *cfg.train.steps;
  } else {
    total = (*cfg.train.epochs * per_rank + per_step - 1) / per_step;
    CHECK(total >= 1, "train.epochs ", *cfg.train.epochs, " over ", per_rank, " training items per rank gives no step");
  }
  // eval.every_epochs becomes the step interval the loop reads (the end of training evaluates too).
  if (cfg.eval.every_epochs) cfg.eval.every_steps = *cfg.eval.every_epochs * steps_per_epoch;
  schedule = LrSchedule::from_config(cfg.schedule, cfg.optim.lr, total);
  if (cfg.schedule.warmup_steps >= total)
    say("note: schedule.warmup_steps (" + std::to_string(cfg.schedule.warmup_steps) + ") is not shorter than the run (" +
        std::to_string(total) + " steps): the learning rate stays in warmup and never reaches optim.lr");
  if (cfg.profile.steps && cfg.profile.end() > total)
    say("note: profile.steps [" + std::to_string(cfg.profile.start()) + ", " + std::to_string(cfg.profile.end()) +
        ") " + (cfg.profile.start() >= total ? "starts after" : "ends after") + " the run's last step (" +
        std::to_string(total) + ")" + (cfg.profile.start() >= total ? ": nothing is profiled" : ": the window is cut there"));

  state = TrainerState{};
  state.total_steps = total;
  state.rng_seed = ctx.seed;
  state.world_size = world;
  if (!resume_dir.empty()) restore(resume_dir);
  state.total_steps = total;
  state.config_yaml = config::print_resolved(cfg.resolved);
  state.config_hash = config::config_hash_hex(cfg.resolved);

  if (rank == 0) {
    write_file_synced((fs::path(run_dir) / "config.yaml").string(), state.config_yaml);
    metrics.open((fs::path(run_dir) / cfg.log.metrics_file).string(), resumed_from.empty() ? -1 : state.step);
  }
  host_ids.assign(size_t(accum * B * T), pad_id);
  host_targets.assign(size_t(accum * B * T), data::kIgnoreTarget);
  ids = Buffer(ctx.device, DType::i32, {accum * B, T}, "train_ids");
  targets = Buffer(ctx.device, DType::i32, {accum * B, T}, "train_targets");
  step_loss = Buffer(ctx.device, acc_dtype(dtype), {1}, "step_loss");
  reduce_buf = Buffer(comm->device(), DType::f64, {16}, "reduce_scratch");
  batches.resize(size_t(accum));

  setup_analysis();

  model_flops_per_token =
      flops_per_token(model->num_layers(), model->attention_width(), model->params().total_numel(), T);
  peak = device_peak(ctx, dtype);

  std::string s = std::string("train: task ") + (cfg.task == config::Task::pretrain ? "pretrain"
                                                 : cfg.task == config::Task::sft   ? "sft"
                                                                                   : "kv_only");
  s += " | " + model->describe() + " | " + human_count(double(model->params().total_numel())) + " params, " +
       human_count(double(optimizer->trainable_numel())) + " trainable";
  s += "\ntrain: " + std::string(device_name(ctx.device)) + " " + dtype_name(dtype) +
       (dtype != cfg.run.dtype ? " (run.dtype " + std::string(dtype_name(cfg.run.dtype)) + " needs cuda)" : "") +
       " | B=" + std::to_string(B) + " x T=" + std::to_string(T) + " x accum " + std::to_string(accum) + " x " +
       std::to_string(world) + " rank" + (world == 1 ? "" : "s") + " | " + std::to_string(total) + " steps | data: " +
       std::to_string(train_loader->items()) + (data->sft ? " train records" : " train sequences") +
       (val_loader ? ", " + std::to_string(val_loader->items()) + " validation" : "") + " | run folder " + run_dir;
  if (!resumed_from.empty()) s += "\ntrain: resumed from " + resumed_from + " at step " + std::to_string(state.step);
  say(s);
}

std::string Trainer::Impl::save_checkpoint(const std::string& name, bool with_optimizer) {
  std::string path;
  if (rank == 0) {
    state.rng_seed = ctx.seed;
    state.rng_offset = ctx.rng_offset;
    state.loader_state = train_loader->state_json();
    CheckpointWriter w(checkpoint_root(run_dir), name);
    model->save_weights(ctx, w.dir());
    // The tokenizer travels with the weights: generate/forward open the folder with no --tokenizer.
    data::write_tokenizer_files(cfg.data.tokenizer, w.dir());
    if (with_optimizer) optimizer->save(ctx, (fs::path(w.dir()) / kOptimizerFile).string());
    write_file_synced((fs::path(w.dir()) / kTrainerStateFile).string(), state.to_json().dump(2) + "\n");
    path = w.commit();
    if (with_optimizer) prune_checkpoints(checkpoint_root(run_dir), cfg.checkpoint.keep_last);
  } else if (with_optimizer && optimizer->sharded()) {
    optimizer->save(ctx, "", /*write=*/false);  // ZeRO-1: the shards meet on rank 0
  }
  comm->barrier();
  return path;
}

Trainer::Trainer(const config::ExperimentConfig& cfg, TrainerOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->self = this;
  impl_->cfg = cfg;
  impl_->opt = std::move(options);
  impl_->setup();
}

Trainer::~Trainer() = default;

TrainResult Trainer::run() { return impl_->run(); }
double Trainer::evaluate() { return impl_->evaluate(); }
TrainableModel& Trainer::model() { return *impl_->model; }
Ctx& Trainer::ctx() { return impl_->ctx; }
const TrainerState& Trainer::state() const { return impl_->state; }
const std::string& Trainer::run_dir() const { return impl_->run_dir; }
int64_t Trainer::total_steps() const { return impl_->schedule.total_steps; }
int64_t Trainer::trainable_numel() const { return impl_->optimizer->trainable_numel(); }

}  // namespace attnlab::train
