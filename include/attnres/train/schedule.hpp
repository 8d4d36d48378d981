#pragma once
// train/schedule — the learning-rate schedule: linear warmup, then cosine decay to a floor.
//
//   step < W:        lr = peak · (step + 1) / W                       (reaches peak at step W − 1)
//   W ≤ step < S:    lr = min + (peak − min) · (1 + cos(π · (step − W) / (S − W))) / 2
//   step ≥ S:        lr = min                                         min = min_lr_ratio · peak
//
// with W = warmup_steps and S = total_steps. Steps are 0-based: at(0) is the rate of the first
// optimizer step. The warmup starts at peak/W rather than 0 so that no step is wasted, and the
// cosine starts exactly at peak (step W), reaching min only after the last step, as in nanoGPT.
//
// lr_schedule is an aggregate, so designated initializers work:
//   attnres::train::lr_schedule s{.peak_lr = 1e-3, .warmup_steps = 100, .total_steps = 5000};
// validate() checks the fields (at() calls it, so a bad schedule fails on first use).

#include <attnres/core/error.hpp>

#include <cmath>
#include <cstdint>
#include <numbers>

namespace attnres::train {

struct lr_schedule {
  double peak_lr = 0.0;
  std::int64_t warmup_steps = 0;  // 0: no warmup, the first step runs at peak
  std::int64_t total_steps = 0;   // warmup included
  double min_lr_ratio = 0.1;      // the floor, as a fraction of peak_lr

  // Throws config_error naming the field that is out of range.
  void validate() const {
    expects<config_error>(std::isfinite(peak_lr) && peak_lr > 0.0,
                          "lr_schedule: peak_lr must be positive and finite, got ", peak_lr);
    expects<config_error>(total_steps > 0, "lr_schedule: total_steps must be positive, got ",
                          total_steps);
    expects<config_error>(warmup_steps >= 0, "lr_schedule: warmup_steps must not be negative, got ",
                          warmup_steps);
    expects<config_error>(warmup_steps <= total_steps, "lr_schedule: warmup_steps (", warmup_steps,
                          ") exceeds total_steps (", total_steps, ")");
    expects<config_error>(min_lr_ratio >= 0.0 && min_lr_ratio <= 1.0,
                          "lr_schedule: min_lr_ratio must be in [0, 1], got ", min_lr_ratio);
  }

  // The learning rate of 0-based step `step` (see the formula above).
  double at(std::int64_t step) const {
    validate();
    expects<usage_error>(step >= 0, "lr_schedule::at: step must not be negative, got ", step);
    const double min_lr = min_lr_ratio * peak_lr;
    if (step < warmup_steps)
      return peak_lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
    if (step >= total_steps) return min_lr;
    const double progress = static_cast<double>(step - warmup_steps) /
                            static_cast<double>(total_steps - warmup_steps);  // [0, 1)
    return min_lr + 0.5 * (peak_lr - min_lr) * (1.0 + std::cos(std::numbers::pi * progress));
  }
};

}  // namespace attnres::train
