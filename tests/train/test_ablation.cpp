// The bookkeeping `attnres ablate` relies on: with the same seed, two models with different
// residual policies start from the same shared weights and see the same batches in the same
// order. (That every shared parameter is bitwise equal is checked in tests/model/test_diagnostics.cpp.)

#include "test_util.hpp"

#include <attnres/model/lm.hpp>
#include <attnres/train/trainer.hpp>

#include <cmath>
#include <vector>

using namespace attnres_test;
namespace train = attnres::train;

namespace {

// A tiny ε: zero pseudo-queries then make AttnRes compute exactly what PreNorm computes (paper
// §1.3: the uniform average is the Sum stream divided by n, which the RMSNorm after it removes up
// to ε·n²), so equal losses mean equal weights *and* equal batches.
const attnres::model_config cfg{.vocab = 256, .d_model = 16, .n_heads = 2, .n_layers = 2, .d_ff = 24, .norm_eps = 1e-12};

// Training losses of the first `steps` steps. The learning rate is so small that the weights do
// not move measurably, so each loss depends only on the initial weights and the batch.
template <class Model>
std::vector<double> losses(std::uint64_t seed, int steps) {
  Model m(cfg);
  m.init_weights(seed);
  train::train_options o;
  o.batch = 2;
  o.seq = 16;
  o.steps = steps;
  o.lr = 1e-12;
  o.warmup = 0;
  o.seed = seed;
  o.eval_windows = 1;
  auto [tr, va] = train::byte_corpus::synthetic(30000, 9).split(0.1, 17);
  train::trainer<Model> t(m, o, tr, va);
  std::vector<double> out;
  t.run([&](const train::step_report& r) { out.push_back(r.loss); });
  return out;
}

}  // namespace

TEST_CASE("same seed: Sum, Block and Full see the same batches in the same order", "[train][ablation]") {
  const int steps = 5;
  const auto sum = losses<attnres::LM<attnres::Sum>>(3, steps);
  const auto block = losses<attnres::LM<attnres::BlockAttnRes<2>>>(3, steps);
  const auto full = losses<attnres::LM<attnres::FullAttnRes>>(3, steps);
  REQUIRE(sum.size() == static_cast<std::size_t>(steps));
  for (int s = 0; s < steps; ++s) {
    CAPTURE(s);
    CHECK(block[s] == Approx(sum[s]).epsilon(1e-5));
    CHECK(full[s] == Approx(sum[s]).epsilon(1e-5));
  }
  // the batches do differ from step to step, and with the seed, so the equality above is not vacuous
  double spread = 0;
  for (int s = 1; s < steps; ++s) spread = std::max(spread, std::abs(sum[s] - sum[0]));
  CHECK(spread > 1e-3);
  const auto other = losses<attnres::LM<attnres::Sum>>(4, steps);
  CHECK(std::abs(other[0] - sum[0]) > 1e-4);
}
