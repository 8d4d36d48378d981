// The policy contract: the concept, source counts, and the shapes the contract promises.

#include "policy_types.hpp"

#include <attnres/core/backend.hpp>

using namespace attnres_test;
using attnres::BlockAttnRes;
using attnres::FullAttnRes;
using attnres::Sum;

static_assert(attnres::ResidualPolicy<Sum>);
static_assert(attnres::ResidualPolicy<FullAttnRes>);
static_assert(attnres::ResidualPolicy<BlockAttnRes<1>>);
static_assert(attnres::ResidualPolicy<BlockAttnRes<8>>);
static_assert(attnres::BoundResidualPolicy<BlockAttnRes<4>::with<double, attnres::backend::reference>>);
static_assert(std::is_same_v<attnres::bind_residual<FullAttnRes>, FullAttnRes::with<float, attnres::backend::cpu>>);
static_assert(!attnres::ResidualPolicy<int>);
// backends: cpu falls back to reference through inheritance; cuda has its own memory space
static_assert(std::is_base_of_v<attnres::backend::reference, attnres::backend::cpu>);
static_assert(std::is_same_v<attnres::backend_traits<attnres::backend::cuda>::memory_space, attnres::device_space>);
static_assert(attnres::Backend<attnres::backend::cpu> && attnres::Backend<attnres::backend::cuda>);

TEST_CASE("source counts per gather point follow the paper", "[residual][contract]") {
  const FullAttnRes::with<float> full({.n_sublayers = 6, .d_model = 2});
  for (int l = 1; l <= 7; ++l) CHECK(full.n_sources(l) == l);

  // L = 6, N = 2 (S = 3): block 1 = sublayers 1..3, block 2 = 4..6
  const BlockAttnRes<2>::with<float> block({.n_sublayers = 6, .d_model = 2});
  CHECK(block.block_size() == 3);
  const int expected[] = {1, 2, 2, 2, 3, 3, 3};  // [b0], [b0,p], [b0,p], [b0,b1], [b0,b1,p] ×2, out [b0,b1,b2]
  for (int l = 1; l <= 7; ++l) CHECK(block.n_sources(l) == expected[l - 1]);

  const Sum::with<float> sum({.n_sublayers = 6, .d_model = 2});
  CHECK(sum.n_sources(3) == 1);
}

TEST_CASE("parameters start as the paper says: zero queries, unit gains", "[residual][contract]") {
  const BlockAttnRes<2>::with<float> p({.n_sublayers = 4, .d_model = 3});
  const auto params = p.init_params();
  REQUIRE(params.query.shape() == std::vector<attnres::index_t>{5, 3});
  REQUIRE(params.key_gain.shape() == std::vector<attnres::index_t>{5, 3});
  for (float q : params.query) CHECK(q == 0.0f);
  for (float g : params.key_gain) CHECK(g == 1.0f);
}

TEST_CASE("gain-free keys: the gain gets no gradient", "[residual][contract]") {
  attnres::testing::toy_stack<FullAttnRes::with<double, attnres::backend::reference>> s(
      {.n_sublayers = 3, .d_model = 4, .learn_key_gain = false}, 2);
  attnres::rng gen(3);
  s.randomize_inputs(gen);
  attnres::fill_normal(s.params.query, gen, 0.0, 0.5);
  s.forward();
  s.backward();
  for (double g : s.grads.key_gain) CHECK(g == 0.0);
  double qnorm = 0;
  for (double g : s.grads.query) qnorm += std::abs(g);
  CHECK(qnorm > 0);
}

TEST_CASE("a cache is reused across forward passes and across token counts", "[residual][contract]") {
  auto s = make_stack<BlockAttnRes<2>, float, attnres::backend::cpu>(4, 5, 3, 6);
  const float first = s.forward();
  const float again = s.forward();
  CHECK(first == again);
  // a different M in the same cache
  auto other = make_stack<BlockAttnRes<2>, float, attnres::backend::cpu>(4, 5, 7, 6);
  other.cache = std::move(s.cache);
  CHECK(std::isfinite(other.forward()));
  other.backward();
  CHECK(other.dx0.rows() == 7);
}
