#pragma once
// The policies every residual test runs over, and a small toy-stack fixture.

#include "test_util.hpp"

#include <attnres/residual/block_attn_res.hpp>
#include <attnres/residual/full_attn_res.hpp>
#include <attnres/residual/sum.hpp>
#include <attnres/testing/toy_stack.hpp>

#include <type_traits>

namespace attnres_test {

template <class P>
inline constexpr bool has_queries = !std::is_same_v<P, attnres::Sum>;

// A toy stack with random inputs and, for attention policies, non-zero random queries and
// gains (zero queries would hide every key-norm and gain path from a gradient check).
template <class P, class T = double, class B = attnres::backend::reference>
attnres::testing::toy_stack<typename P::template with<T, B>> make_stack(int L, index_t D, index_t M, std::uint64_t seed,
                                                                       double eps = 1e-6) {
  attnres::testing::toy_stack<typename P::template with<T, B>> s({.n_sublayers = L, .d_model = D, .norm_eps = eps}, M);
  attnres::rng gen(seed);
  s.randomize_inputs(gen);
  if constexpr (has_queries<P>) {
    attnres::fill_normal(s.params.query, gen, 0.0, 0.5);
    attnres::fill_normal(s.params.key_gain, gen, 1.0, 0.2);
  }
  for (auto& e : s.e) attnres::fill_normal(e, gen, 0.0, 0.1);
  return s;
}

}  // namespace attnres_test
