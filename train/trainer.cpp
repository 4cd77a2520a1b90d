// The step loop, evaluation, logging and the stop/resume points of the trainer.
#include <cmath>
#include <csignal>
#include <filesystem>

#include "core/ops/residual.h"
#include "train/signals.h"
#include "train/trainer_impl.h"

#if ATTNLAB_WITH_CUDA
#include <cuda_profiler_api.h>
#endif

namespace attnlab::train {

namespace fs = std::filesystem;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

void profiler_range(const Ctx& ctx, bool start) {
#if ATTNLAB_WITH_CUDA
  if (ctx.is_cuda()) {
    if (start) cudaProfilerStart();
    else cudaProfilerStop();
  }
#endif
}

double read_scalar(const Ctx& ctx, const Tensor& t) { return to_host_f64(ctx, t)[0]; }

}  // namespace

void Trainer::Impl::all_reduce(std::vector<double>& values) {
  CHECK(values.size() <= size_t(reduce_buf.t().numel()), "all_reduce: ", values.size(), " values, scratch holds ",
        reduce_buf.t().numel());
  Tensor buf = reduce_buf.t().slice0(0, int64_t(values.size()));
  from_host_f64(ctx, buf, values);
  comm->all_reduce_sum(buf);
  values = to_host_f64(ctx, buf);
}

void Trainer::Impl::place_batch(const data::Batch& b, int64_t row0, int64_t rows) {
  CHECK(b.cols <= T, "a batch of ", b.cols, " columns does not fit the planned T=", T);
  for (int64_t r = 0; r < rows; ++r) {
    int32_t* in = host_ids.data() + (row0 + r) * T;
    int32_t* tg = host_targets.data() + (row0 + r) * T;
    std::fill(in, in + T, pad_id);
    std::fill(tg, tg + T, data::kIgnoreTarget);
    if (r >= b.rows) continue;  // a padding row (the end of the validation split)
    std::copy_n(b.inputs.data() + r * b.cols, b.cols, in);
    std::copy_n(b.targets.data() + r * b.cols, b.cols, tg);
  }
}

Trainer::Impl::StepStats Trainer::Impl::train_step(bool& stop_requested) {
  StepStats s;
  const double lr = schedule.lr_at(state.step);
  // 1. Every micro-batch first: the loss denominator is the step's global target count.
  int64_t local_targets = 0, local_tokens = 0;
  for (int64_t k = 0; k < accum; ++k) {
    data::Batch& b = batches[size_t(k)];
    train_loader->next(b, B);
    place_batch(b, k * B, B);
    local_targets += b.target_count;
    for (int32_t len : b.lengths) local_tokens += len;
  }
  std::vector<double> counts{double(local_targets), double(local_tokens)};
  all_reduce(counts);
  const double global_targets = counts[0];
  s.tokens = int64_t(counts[1]);
  s.targets = int64_t(global_targets);
  copy_tensor(ctx, ids.t(), Tensor(host_ids.data(), DType::i32, Device::cpu, {accum * B, T}, "host_ids"));
  copy_tensor(ctx, targets.t(), Tensor(host_targets.data(), DType::i32, Device::cpu, {accum * B, T}, "host_targets"));

  // 2. Forward and backward per micro-batch; parameter gradients add up.
  model->params().zero_grads(ctx);
  zero_tensor(ctx, step_loss.t());
  if (global_targets > 0) {
    for (int64_t k = 0; k < accum; ++k) {
      const Tensor ids_k = ids.t().slice0(k * B, (k + 1) * B);
      const Tensor targets_k = targets.t().slice0(k * B, (k + 1) * B);
      const Tensor loss = model->forward(ctx, ids_k, targets_k, global_targets);
      // step_loss += loss on the device (the residual stream's accumulate is exactly that).
      residual_backward(ctx, {loss, step_loss.t(), Tensor()});
      // The last backward launches the gradient buckets as its blocks finish (grad_sync.h).
      if (k + 1 == accum) grad_sync->arm();
      model->backward(ctx);
    }
  }
  // 3. Gradients summed over the ranks (the loss was already divided by the global count): the
  // buckets not yet launched, then the wait. ZeRO-1: each rank holds the sum of its shares.
  grad_sync->finish();
  if (opt.after_backward) opt.after_backward(*self, state.step);
  // 4. Clip norm, NaN/Inf flag and AdamW, all on the device.
  if (global_targets > 0) optimizer->step(ctx, lr);
  // 5. The one read-back of the step; a stop request on any rank stops every rank after it.
  std::vector<double> summary{read_scalar(ctx, step_loss.t()), StopSignals::received() ? 1.0 : 0.0};
  all_reduce(summary);
  s.loss = global_targets > 0 ? summary[0] : std::nan("");
  stop_requested = summary[1] > 0;
  s.grad_norm = read_scalar(ctx, optimizer->grad_norm());
  const bool flagged = global_targets <= 0 || to_host_f64(ctx, optimizer->nonfinite())[0] != 0;
  if (global_targets > 0) optimizer->record_outcome(!flagged);
  s.applied = !flagged && std::isfinite(s.loss);
  return s;
}

double Trainer::Impl::evaluate() {
  CHECK(val_loader, "evaluation needs a validation split (data.val_fraction > 0)");
  model->set_training(false);
  val_loader->rewind();
  double loss_sum = 0, count = 0;
  data::Batch b;
  for (int64_t i = 0; i < cfg.eval.batches && val_loader->next(b, B); ++i) {
    if (b.target_count == 0) continue;
    place_batch(b, 0, B);
    copy_tensor(ctx, ids.t().slice0(0, B), Tensor(host_ids.data(), DType::i32, Device::cpu, {B, T}, "host_ids"));
    copy_tensor(ctx, targets.t().slice0(0, B), Tensor(host_targets.data(), DType::i32, Device::cpu, {B, T}, "host_targets"));
    const double n = double(b.target_count);
    const Tensor loss = model->forward(ctx, ids.t().slice0(0, B), targets.t().slice0(0, B), n);
    loss_sum += read_scalar(ctx, loss) * n;
    count += n;
  }
  model->set_training(true);
  std::vector<double> v{loss_sum, count};
  all_reduce(v);
  CHECK(v[1] > 0, "the validation split has no target tokens to evaluate (", val_loader->items(), " items)");
  return v[0] / v[1];
}

void Trainer::Impl::log_grad_norms(nlohmann::ordered_json& record) const {
  if (cfg.log.grad_norms.empty()) return;
  for (const Param& p : model->params()) {
    if (!p.grad.defined()) continue;
    bool wanted = false;
    for (const std::string& glob : cfg.log.grad_norms) wanted = wanted || name_matches(glob, p.name);
    if (!wanted) continue;
    double sq = 0;
    for (double g : to_host_f64(ctx, p.unpadded(p.grad))) sq += g * g;
    record["grads_norm/" + p.name] = std::sqrt(sq);
  }
}

TrainResult Trainer::Impl::run() {
  TrainResult res;
  res.run_dir = run_dir;
  res.resumed_from = resumed_from;
  res.start_step = state.step;
  res.total_steps = schedule.total_steps;
  StopSignals signals;
  StopSignals::reset();

  const Clock::time_point session_start = Clock::now();
  const double elapsed_before = state.elapsed_s;
  const int64_t total = schedule.total_steps;
  const int64_t log_every = std::max<int64_t>(1, cfg.log.every_steps);
  const bool eval_on = cfg.eval.every_steps > 0 && val_loader != nullptr;
  const bool keep_best = cfg.eval.best_metric == config::BestMetric::val_loss;
  const bool profiling = cfg.profile.steps.has_value();
  if (profiling && !ctx.is_cuda()) say("note: profile.steps brackets cudaProfilerStart/Stop; on the CPU it does nothing");

  // Logging interval: the loss sums live in the state (checkpointed), throughput restarts here.
  int64_t interval_tokens = 0, interval_steps = 0;
  Clock::time_point interval_start = Clock::now();
  int64_t last_eval_step = -1, last_save_step = resumed_from.empty() ? -1 : state.step;
  bool first = true, interrupted = false;
  int64_t first_bad_step = -1;

  auto run_eval = [&]() {
    const double v = evaluate();
    state.last_val_loss = v;
    last_eval_step = state.step;
    if (!res.first_val_loss) res.first_val_loss = v;
    bool best = false;
    if (keep_best && (!state.best_val_loss || v < *state.best_val_loss)) {
      state.best_val_loss = v;
      state.best_step = state.step;
      best = true;
      save_checkpoint(kBestName, /*with_optimizer=*/false);
    }
    state.elapsed_s = elapsed_before + seconds_since(session_start);
    if (rank == 0) {
      nlohmann::ordered_json j;
      j["kind"] = "eval";
      j["step"] = state.step;
      j["val_loss"] = v;
      j["best"] = best;
      j["elapsed_s"] = state.elapsed_s;
      metrics.write(j);
    }
    std::string line = "eval step " + std::to_string(state.step) + ": val_loss " + fixed(v, 4);
    if (state.best_val_loss)
      line += " (best " + fixed(*state.best_val_loss, 4) + " at step " + std::to_string(*state.best_step) + ")";
    say(line);
    analysis_after_eval(v, best);
  };

  if (state.step >= total) say("train: the run is already complete (" + std::to_string(state.step) + " steps)");
  while (state.step < total) {
    if (profiling && state.step == cfg.profile.start()) profiler_range(ctx, true);
    bool stop = false;
    const StepStats s = train_step(stop);
    state.step += 1;
    state.tokens += s.tokens;
    interval_tokens += s.tokens;
    interval_steps += 1;
    if (profiling && state.step == cfg.profile.end()) profiler_range(ctx, false);
    if (first) {
      res.first_loss = s.loss;
      first = false;
    }
    if (s.applied) {
      state.consecutive_bad = 0;
      first_bad_step = -1;
      state.log_loss_sum += s.loss;
      state.log_loss_count += 1;
    } else {
      state.skipped_steps += 1;
      state.consecutive_bad += 1;
      if (first_bad_step < 0) first_bad_step = state.step;
      say("step " + std::to_string(state.step) + ": " +
          (s.targets == 0 ? std::string("no target tokens in the step's batches")
                          : "non-finite loss or gradient (loss " + fixed(s.loss, 4) + ", grad norm " +
                                fixed(s.grad_norm, 4) + ")") +
          "; the update was skipped (" + std::to_string(state.consecutive_bad) + " in a row, " +
          std::to_string(state.skipped_steps) + " in all)");
      if (state.consecutive_bad >= cfg.train.max_bad_steps) {
        const auto latest = latest_checkpoint(checkpoint_root(run_dir));
        FAIL_WITH("training stopped: ", state.consecutive_bad, " steps in a row (", first_bad_step, " to ", state.step,
                  ") had a NaN/Inf loss or gradient and were skipped (train.max_bad_steps is ", cfg.train.max_bad_steps,
                  "). ", latest ? "The latest checkpoint is " + latest->path + ". " : std::string(),
                  "Fix: lower optim.lr, keep optim.grad_clip on, and check the data and model.from weights for NaN");
      }
    }
    state.elapsed_s = elapsed_before + seconds_since(session_start);

    // Progress and metrics.
    const bool log_step = state.step % log_every == 0 || state.step == total || state.step == 1;
    const double interval_s = seconds_since(interval_start);
    ProgressLine pl;
    pl.step = state.step;
    pl.total_steps = total;
    pl.loss = state.log_loss_count ? state.log_loss_sum / double(state.log_loss_count) : s.loss;
    pl.lr = schedule.lr_at(state.step - 1);
    pl.grad_norm = s.grad_norm;
    pl.tokens_per_s = interval_s > 0 ? double(interval_tokens) / interval_s : 0;
    if (peak.flops_per_s > 0) pl.mfu = pl.tokens_per_s * model_flops_per_token / (peak.flops_per_s * world);
    pl.eta_s = interval_steps > 0 ? interval_s / double(interval_steps) * double(total - state.step) : -1;
    pl.skipped = state.skipped_steps;
    progress->update(pl, log_step);
    if (log_step) {
      res.last_loss = pl.loss;
      if (rank == 0) {
        nlohmann::ordered_json j;
        j["kind"] = "train";
        j["step"] = state.step;
        j["loss"] = pl.loss;
        j["lr"] = pl.lr;
        j["grad_norm"] = s.grad_norm;
        j["tokens"] = state.tokens;
        j["tokens_per_s"] = pl.tokens_per_s;
        if (pl.mfu >= 0) j["mfu"] = pl.mfu;
        j["elapsed_s"] = state.elapsed_s;
        j["skipped_steps"] = state.skipped_steps;
        log_grad_norms(j);
        metrics.write(j);
      }
      state.log_loss_sum = 0;
      state.log_loss_count = 0;
      interval_tokens = interval_steps = 0;
      interval_start = Clock::now();
    }

    if (eval_on && state.step % cfg.eval.every_steps == 0) run_eval();
    run_analysis_if_due();
    const bool token_budget_done = cfg.train.max_tokens && state.tokens >= *cfg.train.max_tokens;
    if (opt.stop_at_step && state.step >= *opt.stop_at_step && state.step < total) stop = true;
    if (stop && state.step < total) {
      interrupted = true;
      break;
    }
    if (cfg.checkpoint.every_steps > 0 && state.step % cfg.checkpoint.every_steps == 0 && state.step < total) {
      res.last_checkpoint = save_checkpoint(checkpoint_name(state.step), true);
      last_save_step = state.step;
    }
    if (token_budget_done) {
      say("train: train.max_tokens (" + std::to_string(*cfg.train.max_tokens) + ") reached at step " +
          std::to_string(state.step));
      break;
    }
  }
  if (profiling && state.step >= cfg.profile.start() && state.step < cfg.profile.end()) profiler_range(ctx, false);

  if (!interrupted && eval_on && last_eval_step != state.step && state.step > res.start_step) run_eval();
  state.elapsed_s = elapsed_before + seconds_since(session_start);
  if (last_save_step != state.step) res.last_checkpoint = save_checkpoint(checkpoint_name(state.step), true);
  else if (res.last_checkpoint.empty() && !resumed_from.empty()) res.last_checkpoint = resumed_from;
  progress->finish();

  res.steps_done = state.step;
  res.interrupted = interrupted;
  res.stop_signal = StopSignals::received();
  res.skipped_steps = state.skipped_steps;
  res.last_val_loss = state.last_val_loss;
  res.best_val_loss = state.best_val_loss;
  res.wall_s = seconds_since(session_start);
  if (interrupted) {
    const char* why = res.stop_signal == SIGINT ? "SIGINT" : res.stop_signal == SIGTERM ? "SIGTERM" : "a stop request";
    say(std::string("train: stopped by ") + why + " after step " + std::to_string(state.step) + " of " +
        std::to_string(total) + "; checkpoint saved to " + res.last_checkpoint +
        ". Run the same command again to resume (checkpoint.resume: auto)");
  } else {
    say("train: done, " + std::to_string(state.step) + " steps" +
        (state.last_val_loss ? ", val_loss " + fixed(*state.last_val_loss, 4) : std::string()) +
        (state.best_val_loss ? " (best " + fixed(*state.best_val_loss, 4) + ")" : std::string()) + "; checkpoint " +
        res.last_checkpoint + "; metrics " + metrics.path());
  }
  return res;
}

}  // namespace attnlab::train
