// train/schedule: warmup, cosine and floor values at the key steps; validation errors.

#include "test_util.hpp"

#include <attnres/train/schedule.hpp>

#include <cmath>
#include <numbers>

using attnres::train::lr_schedule;
using attnres_test::contains;

TEST_CASE("lr_schedule: linear warmup, cosine decay, then the floor", "[train][schedule]") {
  const lr_schedule s{.peak_lr = 1e-3, .warmup_steps = 10, .total_steps = 110, .min_lr_ratio = 0.1};
  // warmup: peak·(step + 1)/W
  CHECK(s.at(0) == Approx(1e-4).epsilon(1e-15));
  CHECK(s.at(4) == Approx(5e-4).epsilon(1e-15));
  CHECK(s.at(9) == Approx(1e-3).epsilon(1e-15));
  // cosine over the 100 remaining steps: starts at peak, midpoint halfway between peak and min
  CHECK(s.at(10) == Approx(1e-3).epsilon(1e-15));
  CHECK(s.at(60) == Approx(5.5e-4).epsilon(1e-14));
  CHECK(s.at(35) == Approx(1e-4 + 0.5 * 9e-4 * (1 + std::cos(std::numbers::pi / 4))).epsilon(1e-14));
  CHECK(s.at(109) == Approx(1e-4 + 0.5 * 9e-4 * (1 + std::cos(std::numbers::pi * 0.99))).epsilon(1e-14));
  // floor from total_steps on
  CHECK(s.at(110) == Approx(1e-4).epsilon(1e-15));
  CHECK(s.at(100000) == Approx(1e-4).epsilon(1e-15));
  for (std::int64_t step = 10; step < 200; ++step) CHECK(s.at(step + 1) <= s.at(step));
  for (std::int64_t step = 0; step < 9; ++step) CHECK(s.at(step + 1) > s.at(step));
}

TEST_CASE("lr_schedule: edge cases: no warmup, all warmup, zero floor", "[train][schedule]") {
  const lr_schedule no_warmup{.peak_lr = 2.0, .warmup_steps = 0, .total_steps = 4, .min_lr_ratio = 0.0};
  CHECK(no_warmup.at(0) == 2.0);
  CHECK(no_warmup.at(2) == Approx(1.0).epsilon(1e-15));
  CHECK(no_warmup.at(4) == 0.0);
  const lr_schedule all_warmup{.peak_lr = 1.0, .warmup_steps = 4, .total_steps = 4};
  CHECK(all_warmup.at(3) == 1.0);
  CHECK(all_warmup.at(4) == Approx(0.1).epsilon(1e-15));
}

TEST_CASE("lr_schedule: invalid schedules are config_errors", "[train][schedule]") {
  REQUIRE_THROWS_AS((lr_schedule{.peak_lr = 1e-3, .warmup_steps = 20, .total_steps = 10}.at(0)),
                    attnres::config_error);
  REQUIRE_THROWS_WITH((lr_schedule{.peak_lr = 1e-3, .warmup_steps = 20, .total_steps = 10}.at(0)),
                      contains("warmup_steps (20) exceeds total_steps (10)"));
  REQUIRE_THROWS_WITH((lr_schedule{.peak_lr = 0.0, .warmup_steps = 0, .total_steps = 10}.validate()),
                      contains("peak_lr must be positive"));
  REQUIRE_THROWS_WITH((lr_schedule{.peak_lr = 1.0, .warmup_steps = 0, .total_steps = 0}.validate()),
                      contains("total_steps must be positive"));
  REQUIRE_THROWS_WITH((lr_schedule{.peak_lr = 1.0, .warmup_steps = -1, .total_steps = 5}.validate()),
                      contains("warmup_steps must not be negative"));
  REQUIRE_THROWS_WITH(
      (lr_schedule{.peak_lr = 1.0, .warmup_steps = 0, .total_steps = 5, .min_lr_ratio = 1.5}.validate()),
      contains("min_lr_ratio must be in [0, 1]"));
  REQUIRE_THROWS_AS((lr_schedule{.peak_lr = 1.0, .warmup_steps = 0, .total_steps = 5}.at(-1)), attnres::usage_error);
}
