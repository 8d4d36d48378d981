#pragma once
// trainer: the training loop every attnres experiment shares — sample a batch, forward and
// backward (with gradient accumulation), clip, AdamW step on a warmup + cosine schedule, log,
// evaluate, checkpoint. Same seed, same result; a resumed run continues bit-identically.
//
// A checkpoint is a directory with two safetensors files, each written atomically:
//   model.safetensors        the weights with DESIGN.md names and the config as metadata (a
//                            plain model file: `attnres eval/generate` and PyTorch read it)
//   train_state.safetensors  AdamW moments, the step, the data sampler's state, the options
// Both carry "train.step"; a pair that disagrees (a crash between the two writes) is refused.

#include <attnres/core/error.hpp>
#include <attnres/generate/decode_loss.hpp>
#include <attnres/io/safetensors.hpp>
#include <attnres/train/adamw.hpp>
#include <attnres/train/data.hpp>
#include <attnres/train/grad_clip.hpp>
#include <attnres/train/metrics_log.hpp>
#include <attnres/train/schedule.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <numbers>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace attnres::train {

struct train_options {
  index_t batch = 8;
  index_t seq = 256;
  std::int64_t steps = 200;
  double lr = 1e-3;            // peak learning rate
  std::int64_t warmup = -1;    // steps of linear warmup; -1: min(100, steps / 10)
  double min_lr_ratio = 0.1;   // cosine decays to min_lr_ratio · lr
  double weight_decay = 0.1;
  double beta1 = 0.9, beta2 = 0.95;
  double grad_clip = 1.0;      // global-norm clipping; 0 disables
  int accum = 1;               // micro-batches per optimizer step
  std::uint64_t seed = 1;      // data order (the model's initialisation has its own seed)
  std::int64_t eval_every = 0;     // 0: only at the end
  index_t eval_windows = 16;       // validation windows of `seq` bytes
  std::int64_t log_every = 10;

  void validate() const {
    expects<config_error>(batch >= 1 && seq >= 1, "train: batch and seq must be positive");
    expects<config_error>(steps >= 1, "train: steps must be positive, got ", steps);
    expects<config_error>(lr > 0 && std::isfinite(lr), "train: lr must be positive, got ", lr);
    expects<config_error>(accum >= 1, "train: accum must be at least 1, got ", accum);
    expects<config_error>(grad_clip >= 0, "train: grad_clip must be ≥ 0, got ", grad_clip);
    expects<config_error>(eval_windows >= 1, "train: eval_windows must be at least 1");
  }
  std::int64_t warmup_steps() const { return warmup >= 0 ? warmup : std::min<std::int64_t>(100, steps / 10); }
};

// What one logged step reports (also a row of metrics.csv).
struct step_report {
  std::int64_t step = 0;  // 1-based: optimizer steps done
  double lr = 0, loss = 0, grad_norm = 0, tokens_per_second = 0, elapsed_seconds = 0;
  double val_loss = std::numeric_limits<double>::quiet_NaN();
};

struct train_summary {
  std::int64_t steps = 0;
  double final_loss = 0;      // mean training loss over the last log_every steps
  double val_loss = 0, val_bits_per_byte = 0;
  double tokens_per_second = 0, seconds = 0;
};

template <class Model>
class trainer {
 public:
  using T = typename Model::scalar;
  using space = typename backend_traits<typename Model::backend>::memory_space;
  // Clipping on the host stays on backend::cpu (whatever the model's host backend); device
  // gradients are clipped where they are, by the model's backend.
  using clip_backend =
      std::conditional_t<std::is_same_v<space, host_space>, backend::cpu, typename Model::backend>;

  trainer(Model& model, train_options opt, byte_corpus train_data, byte_corpus validation_data)
      : model_(model),
        opt_((opt.validate(), opt)),
        params_(model.parameters()),
        optimizer_({.lr = opt.lr, .beta1 = opt.beta1, .beta2 = opt.beta2, .weight_decay = opt.weight_decay}, params_),
        schedule_{opt.lr, opt.warmup_steps(), opt.steps, opt.min_lr_ratio},
        train_(std::move(train_data)),
        val_(std::move(validation_data)),
        sampler_(train_, opt.batch, opt.seq, opt.seed) {
    schedule_.validate();
    expects<config_error>(val_.size() >= static_cast<std::size_t>(opt.seq) + 1, "train: the validation split has ",
                          val_.size(), " bytes, fewer than one window of ", opt.seq + 1);
  }

  std::int64_t step() const { return step_; }
  const train_options& options() const { return opt_; }

  // Runs until options().steps optimizer steps are done. on_step sees every step (for
  // progress bars); rows go to the metrics log when one is given.
  train_summary run(const std::function<void(const step_report&)>& on_step = {}, metrics_log* log = nullptr,
                    const std::filesystem::path& checkpoint_dir = {}, std::int64_t save_every = 0) {
    const auto start = std::chrono::steady_clock::now();
    const std::int64_t first = step_;
    std::vector<std::int32_t> tokens, targets;
    double recent = 0;
    std::int64_t recent_n = 0;
    while (step_ < opt_.steps) {
      model_.zero_grad();
      double loss = 0;
      for (int a = 0; a < opt_.accum; ++a) {
        sampler_.next(tokens, targets);
        loss += model_.forward_backward(tokens, targets, opt_.batch, opt_.seq, 1.0 / opt_.accum) / opt_.accum;
      }
      const double norm = opt_.grad_clip > 0 ? clip_grad_norm(params_, opt_.grad_clip, clip_backend{})
                                             : global_grad_norm(params_, clip_backend{});
      const double lr = schedule_.at(step_);
      optimizer_.step(params_, lr);
      ++step_;

      step_report r;
      r.step = step_;
      r.lr = lr;
      r.loss = loss;
      r.grad_norm = norm;
      r.elapsed_seconds = seconds_since(start);
      r.tokens_per_second =
          static_cast<double>((step_ - first) * opt_.batch * opt_.seq * opt_.accum) / std::max(r.elapsed_seconds, 1e-9);
      if ((opt_.eval_every > 0 && step_ % opt_.eval_every == 0) || step_ == opt_.steps) r.val_loss = evaluate();
      if (step_ > opt_.steps - std::max<std::int64_t>(opt_.log_every, 1)) {
        recent += loss;
        ++recent_n;
      }
      if (log && (step_ % std::max<std::int64_t>(opt_.log_every, 1) == 0 || step_ == opt_.steps || !std::isnan(r.val_loss)))
        log->row({static_cast<double>(r.step), r.lr, r.loss, r.grad_norm, r.tokens_per_second, r.elapsed_seconds,
                  r.val_loss});
      if (on_step) on_step(r);
      if (!checkpoint_dir.empty() && save_every > 0 && step_ % save_every == 0 && step_ < opt_.steps)
        save_checkpoint(checkpoint_dir);
      last_ = r;
    }
    train_summary s;
    s.steps = step_;
    s.final_loss = recent_n ? recent / static_cast<double>(recent_n) : last_.loss;
    s.val_loss = std::isnan(last_.val_loss) ? evaluate() : last_.val_loss;
    s.val_bits_per_byte = s.val_loss / std::numbers::ln2;
    s.seconds = seconds_since(start);
    s.tokens_per_second = static_cast<double>((step_ - first) * opt_.batch * opt_.seq * opt_.accum) /
                          std::max(s.seconds, 1e-9);
    if (!checkpoint_dir.empty()) save_checkpoint(checkpoint_dir);
    return s;
  }

  // Mean next-byte loss over the validation windows (deterministic: the same windows each time).
  double evaluate() { return evaluate_loss(model_, val_, opt_.seq, opt_.eval_windows, opt_.batch); }

  // by_decoding: the loss through the KV cache with these decode weights (generate/decode_loss.hpp)
  // instead of forward passes.
  static double evaluate_loss(Model& model, const byte_corpus& data, index_t seq, index_t max_windows, index_t batch,
                              std::optional<decode_weights> by_decoding = std::nullopt) {
    const auto windows = evaluation_windows(data, seq, max_windows);
    double total = 0;
    index_t count = 0;
    std::vector<std::int32_t> tok, tgt;
    for (std::size_t first = 0; first < windows.size(); first += static_cast<std::size_t>(batch)) {
      const std::size_t n = std::min(windows.size() - first, static_cast<std::size_t>(batch));
      tok.clear();
      tgt.clear();
      for (std::size_t w = first; w < first + n; ++w) {
        tok.insert(tok.end(), windows[w].first.begin(), windows[w].first.end());
        tgt.insert(tgt.end(), windows[w].second.begin(), windows[w].second.end());
      }
      const double loss = by_decoding ? decode_loss(model, tok, tgt, static_cast<index_t>(n), seq, *by_decoding)
                                      : model.loss(tok, tgt, static_cast<index_t>(n), seq);
      total += loss * static_cast<double>(n);
      count += static_cast<index_t>(n);
    }
    return total / static_cast<double>(count);
  }

  void save_checkpoint(const std::filesystem::path& dir) {
    std::filesystem::create_directories(dir);
    io::safetensors_writer state;
    optimizer_.save_state(state);
    state.set_metadata("train.step", std::to_string(step_));
    state.set_metadata("train.sampler_seed", std::to_string(sampler_.state().seed));
    state.set_metadata("train.sampler_draws", std::to_string(sampler_.state().draws));
    state.set_metadata("train.batch", std::to_string(opt_.batch));
    state.set_metadata("train.seq", std::to_string(opt_.seq));
    state.set_metadata("train.accum", std::to_string(opt_.accum));
    // The state first, the model last: a crash in between leaves the old model with a newer
    // state, which resume() detects through train.step.
    state.save(dir / "train_state.safetensors");
    model_.save(dir / "model.safetensors", {{"train.step", std::to_string(step_)}});
  }

  // Continues a run saved by save_checkpoint (the model's weights are loaded too).
  void resume(const std::filesystem::path& dir) {
    const auto model_file = io::safetensors_file::load(dir / "model.safetensors");
    const auto state = io::safetensors_file::load(dir / "train_state.safetensors");
    const std::string step = state.metadata_value("train.step");
    expects<io_error>(model_file.metadata().count("train.step") && model_file.metadata_value("train.step") == step,
                      dir.string(), ": model.safetensors and train_state.safetensors are from different steps "
                                    "(an interrupted save?)");
    for (const char* key : {"train.batch", "train.seq", "train.accum"}) {
      const std::string want = key == std::string("train.batch")  ? std::to_string(opt_.batch)
                               : key == std::string("train.seq") ? std::to_string(opt_.seq)
                                                                  : std::to_string(opt_.accum);
      expects<config_error>(state.metadata_value(key) == want, dir.string(), ": the checkpoint was trained with ", key,
                            " = ", state.metadata_value(key), ", but this run uses ", want,
                            " (a bit-identical resume needs the same)");
    }
    model_.load(model_file);
    optimizer_.load_state(state, params_);
    step_ = std::stoll(step);
    sampler_.set_state({std::stoull(state.metadata_value("train.sampler_seed")),
                        std::stoull(state.metadata_value("train.sampler_draws"))});
    expects<config_error>(step_ <= opt_.steps, dir.string(), ": the checkpoint is at step ", step_,
                          ", beyond --steps ", opt_.steps);
  }

 private:
  static double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  Model& model_;
  train_options opt_;
  param_list<T, space> params_;
  adamw<T, typename Model::backend> optimizer_;
  lr_schedule schedule_;
  byte_corpus train_, val_;
  batch_sampler sampler_;
  std::int64_t step_ = 0;
  step_report last_;
};

}  // namespace attnres::train
