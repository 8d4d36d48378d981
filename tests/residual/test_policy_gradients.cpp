// Every policy's backward against central differences in double: w.r.t. every source (the
// embedding and each sublayer output), every pseudo-query and every key-norm gain, with
// non-zero queries; and the cpu backend's gradients against the reference's.

#include "policy_types.hpp"

#include <attnres/testing/gradient_check.hpp>

using namespace attnres_test;
using attnres::BlockAttnRes;
using attnres::FullAttnRes;
using attnres::Sum;
namespace testing = attnres::testing;

namespace {

template <class Stack>
void check(const char* what, const attnres::tensor<double>& analytic, const attnres::tensor<double>& numeric) {
  const auto r = testing::compare_gradients(analytic, numeric, 1e-6, 1e-9);
  INFO(r.describe(what));
  REQUIRE(r.ok);
  REQUIRE(r.norm > 0);
}

template <class P>
void gradient_check(int L, attnres::index_t D, attnres::index_t M, std::uint64_t seed) {
  auto s = make_stack<P>(L, D, M, seed);
  s.forward();
  s.backward();
  auto loss = [&] { return s.forward(false); };
  using S = decltype(s);
  check<S>("d x0 (source 0)", s.dx0, testing::numeric_gradient(loss, s.x0));
  for (int l = 1; l <= L; ++l) {
    INFO("source " << l);
    check<S>("d v_l (source l)", s.dv[l - 1], testing::numeric_gradient(loss, s.e[l - 1]));
  }
  check<S>("d W_1", s.dW[0], testing::numeric_gradient(loss, s.W[0]));
  if constexpr (has_queries<P>) {
    check<S>("d query (every gather point)", s.grads.query, testing::numeric_gradient(loss, s.params.query));
    check<S>("d key gain (every gather point)", s.grads.key_gain, testing::numeric_gradient(loss, s.params.key_gain));
  }
}

template <class P>
void cpu_matches_reference(int L, attnres::index_t D, attnres::index_t M, std::uint64_t seed) {
  auto ref = make_stack<P, double, attnres::backend::reference>(L, D, M, seed);
  auto fast = make_stack<P, double, attnres::backend::cpu>(L, D, M, seed);
  const double l1 = ref.forward(), l2 = fast.forward();
  REQUIRE(l1 == Approx(l2).epsilon(1e-12));
  ref.backward();
  fast.backward();
  REQUIRE_CLOSE(ref.dx0.data(), fast.dx0.data(), ref.dx0.size(), 1e-10, 1e-12);
  for (int l = 0; l < L; ++l) REQUIRE_CLOSE(ref.dv[l].data(), fast.dv[l].data(), ref.dv[l].size(), 1e-10, 1e-12);
  for (int l = 0; l <= L; ++l) REQUIRE_CLOSE(ref.h[l].data(), fast.h[l].data(), ref.h[l].size(), 1e-10, 1e-12);
  if constexpr (has_queries<P>) {
    REQUIRE_CLOSE(ref.grads.query.data(), fast.grads.query.data(), ref.grads.query.size(), 1e-10, 1e-12);
    REQUIRE_CLOSE(ref.grads.key_gain.data(), fast.grads.key_gain.data(), ref.grads.key_gain.size(), 1e-10, 1e-12);
  }
}

}  // namespace

TEMPLATE_TEST_CASE("policy gradients match central differences", "[residual][gradient]", Sum, FullAttnRes,
                   BlockAttnRes<1>, BlockAttnRes<2>, BlockAttnRes<3>, BlockAttnRes<6>) {
  SECTION("L = 6, D = 5, M = 4") { gradient_check<TestType>(6, 5, 4, 11); }
  SECTION("one token, D = 3") { gradient_check<TestType>(6, 3, 1, 12); }
}

TEMPLATE_TEST_CASE("policy gradients at odd block sizes (a block may start at an MLP sublayer)",
                   "[residual][gradient]", BlockAttnRes<2>, BlockAttnRes<5>) {
  gradient_check<TestType>(10, 4, 3, 21);  // S = 5 and S = 2
}

TEMPLATE_TEST_CASE("cpu policies equal the reference, forward and backward", "[residual][cpu]", Sum, FullAttnRes,
                   BlockAttnRes<1>, BlockAttnRes<2>, BlockAttnRes<4>, BlockAttnRes<8>) {
  const auto D = GENERATE(attnres::index_t(1), attnres::index_t(9), attnres::index_t(33));
  const auto M = GENERATE(attnres::index_t(1), attnres::index_t(40));
  CAPTURE(D, M);
  cpu_matches_reference<TestType>(8, D, M, 31);
}

namespace {
// Makes Block policies created in its lifetime group G blocks per backward pass
// (residual/block_attn_res.hpp), and restores the default after.
struct backward_group_scope {
  int saved = attnres::detail::block_backward_group;
  explicit backward_group_scope(int g) { attnres::detail::block_backward_group = g; }
  ~backward_group_scope() { attnres::detail::block_backward_group = saved; }
  backward_group_scope(const backward_group_scope&) = delete;
  backward_group_scope& operator=(const backward_group_scope&) = delete;
};
}  // namespace

// The batched Phase-1 backward may go by groups of any size (1 = one pass per block over all
// lower block sums; N + 1 is clamped to N): the order of the terms changes, the sum does not.
TEMPLATE_TEST_CASE("Block's backward gradients do not depend on how many blocks a pass groups",
                   "[residual][gradient][cpu]", BlockAttnRes<2>, BlockAttnRes<3>, BlockAttnRes<5>, BlockAttnRes<8>) {
  constexpr int N = TestType::blocks;
  const int L = N == 3 ? 15 : N == 5 ? 10 : 16;  // S = 8, 5, 2, 2
  const auto M = GENERATE(attnres::index_t(1), attnres::index_t(37));
  CAPTURE(M);
  auto run = [&](int g) {
    backward_group_scope scope(g);
    auto s = make_stack<TestType, double, attnres::backend::cpu>(L, 9, M, 41);
    s.forward();
    s.backward();
    return s;
  };
  const auto one = run(1);
  for (int g = 2; g <= N + 1; ++g) {
    CAPTURE(g);
    const auto s = run(g);
    REQUIRE_CLOSE(one.dx0.data(), s.dx0.data(), one.dx0.size(), 1e-12, 1e-14);
    for (int l = 0; l < L; ++l) REQUIRE_CLOSE(one.dv[l].data(), s.dv[l].data(), one.dv[l].size(), 1e-12, 1e-14);
    REQUIRE_CLOSE(one.grads.query.data(), s.grads.query.data(), one.grads.query.size(), 1e-12, 1e-14);
    REQUIRE_CLOSE(one.grads.key_gain.data(), s.grads.key_gain.data(), one.grads.key_gain.size(), 1e-12, 1e-14);
  }
}

TEST_CASE("Block's backward groups blocks in pairs where that saves memory traffic", "[residual][contract]") {
  const attnres::residual_config cfg{.n_sublayers = 16, .d_model = 8};
  CHECK(BlockAttnRes<8>::with<float>(cfg).backward_group() == 2);  // S = 2
  CHECK(BlockAttnRes<4>::with<float>(cfg).backward_group() == 1);  // S = 4
  CHECK(BlockAttnRes<16>::with<float>(cfg).backward_group() == 2);
  backward_group_scope scope(5);
  CHECK(BlockAttnRes<4>::with<float>(cfg).backward_group() == 4);  // at most N
}

// Groups of 3 over 5 blocks ([3..5], [1..2]: the lowest group is smaller) and of 4 over 6, against
// central differences.
TEST_CASE("Block's backward in uneven groups matches central differences", "[residual][gradient]") {
  {
    backward_group_scope scope(3);
    gradient_check<BlockAttnRes<5>>(10, 4, 3, 22);
  }
  backward_group_scope scope(4);
  gradient_check<BlockAttnRes<6>>(6, 5, 4, 23);
}
