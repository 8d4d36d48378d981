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
