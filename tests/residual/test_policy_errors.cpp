// Bad input gets a clear exception: wrong shapes, N not dividing L, NaN/Inf, calls out of order.

#include "policy_types.hpp"

#include <limits>
#include <type_traits>

using namespace attnres_test;
using attnres::BlockAttnRes;
using attnres::FullAttnRes;
using attnres::Sum;
using attnres::tensor;

TEST_CASE("N blocks that do not divide L sublayers are refused, naming both", "[residual][errors]") {
  REQUIRE_THROWS_AS(BlockAttnRes<8>::with<float>({.n_sublayers = 18, .d_model = 4}), attnres::config_error);
  REQUIRE_THROWS_WITH(BlockAttnRes<8>::with<float>({.n_sublayers = 18, .d_model = 4}),
                      contains("BlockAttnRes<8>: 8 blocks do not divide 18 sublayers"));
  REQUIRE_THROWS_WITH(BlockAttnRes<4>::with<float>({.n_sublayers = 2, .d_model = 4}),
                      contains("4 blocks do not divide 2 sublayers"));
  REQUIRE_NOTHROW(BlockAttnRes<9>::with<float>({.n_sublayers = 54, .d_model = 4}));
}

TEMPLATE_TEST_CASE("impossible configurations are refused", "[residual][errors]", Sum, FullAttnRes, BlockAttnRes<1>) {
  using P = typename TestType::template with<float>;
  REQUIRE_THROWS_WITH(P({.n_sublayers = 0, .d_model = 4}), contains("at least one sublayer"));
  REQUIRE_THROWS_WITH(P({.n_sublayers = 2, .d_model = 0}), contains("width D must be positive"));
  REQUIRE_THROWS_WITH(P({.n_sublayers = 2, .d_model = 4, .norm_eps = -1}), contains("epsilon"));
}

TEMPLATE_TEST_CASE("mismatched shapes name the tensor and both shapes", "[residual][errors]", Sum, FullAttnRes,
                   BlockAttnRes<2>) {
  using P = typename TestType::template with<float>;
  const P policy({.n_sublayers = 4, .d_model = 6});
  auto params = policy.init_params();
  typename P::Cache cache;
  tensor<float> x_bad({3, 5}), x0({3, 6}), h({3, 6}), h_bad({2, 6}), v_bad({3, 7});
  x0.fill(1.0f);
  REQUIRE_THROWS_AS(policy.begin(cache, x_bad.mat()), attnres::shape_error);
  REQUIRE_THROWS_WITH(policy.begin(cache, x_bad.mat()), contains("embedding has width 5 but D = 6"));
  policy.begin(cache, x0.mat());
  REQUIRE_THROWS_WITH(policy.gather(params, cache, 1, h_bad.mat()), contains("gather output has shape (2, 6)"));
  policy.begin(cache, x0.mat());
  policy.gather(params, cache, 1, h.mat());
  REQUIRE_THROWS_WITH(policy.push(cache, 1, v_bad.mat()), contains("has shape (3, 7) but this forward pass is (M, D) = (3, 6)"));
  if constexpr (!std::is_same_v<TestType, Sum>) {
    auto wrong = P({.n_sublayers = 2, .d_model = 6}).init_params();
    policy.begin(cache, x0.mat());
    REQUIRE_THROWS_WITH(policy.gather(wrong, cache, 1, h.mat()), contains("query must be (L+1, D) = (5, 6)"));
  }
}

TEMPLATE_TEST_CASE("NaN or Inf in the embedding or a sublayer output is refused", "[residual][errors]", Sum,
                   FullAttnRes, BlockAttnRes<2>) {
  using P = typename TestType::template with<float>;
  const P policy({.n_sublayers = 4, .d_model = 6});
  auto params = policy.init_params();
  typename P::Cache cache;
  tensor<float> x0({3, 6}), h({3, 6}), v({3, 6});
  x0.fill(1.0f);
  v.fill(0.5f);
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    CAPTURE(bad);
    tensor<float> x_bad = x0;
    x_bad[8] = bad;
    REQUIRE_THROWS_AS(policy.begin(cache, x_bad.mat()), attnres::numeric_error);
    REQUIRE_THROWS_WITH(policy.begin(cache, x_bad.mat()), contains("the embedding x0 contains NaN or Inf (token 1)"));

    tensor<float> v_bad = v;
    v_bad[17] = bad;  // token 2
    // The error surfaces at the push (Sum, Full) or at the next gather point, which reads the
    // partial sum the output went into (Block); either way it names sublayer 1. In training and
    // in inference (Block's one-shot decoding path takes the partial's statistic itself).
    for (const bool keep : {true, false}) {
      CAPTURE(keep);
      auto run = [&] {
        policy.begin(cache, x0.mat(), keep);
        policy.gather(params, cache, 1, h.mat());
        policy.push(cache, 1, v_bad.mat());
        policy.gather(params, cache, 2, h.mat());
      };
      REQUIRE_THROWS_AS(run(), attnres::numeric_error);
      REQUIRE_THROWS_WITH(run(), contains("sublayer 1") && contains("NaN or Inf (token 2)"));
    }

    // The output of a block's last sublayer: the error names the block sum it closes (Block) at
    // the push; Sum and Full refuse it at the push as before.
    auto run_last = [&] {
      policy.begin(cache, x0.mat());
      policy.gather(params, cache, 1, h.mat());
      policy.push(cache, 1, v.mat());
      policy.gather(params, cache, 2, h.mat());
      policy.push(cache, 2, v_bad.mat());
      policy.gather(params, cache, 3, h.mat());
    };
    REQUIRE_THROWS_AS(run_last(), attnres::numeric_error);
    REQUIRE_THROWS_WITH(run_last(), contains("sublayer 2") && contains("NaN or Inf (token 2)"));
    if constexpr (std::is_same_v<TestType, BlockAttnRes<2>>)
      REQUIRE_THROWS_WITH(run_last(), contains("block sum b_1"));
  }
}

TEMPLATE_TEST_CASE("calls out of the contract's order are refused", "[residual][errors]", Sum, FullAttnRes,
                   BlockAttnRes<2>) {
  using P = typename TestType::template with<float>;
  const P policy({.n_sublayers = 2, .d_model = 3});
  auto params = policy.init_params();
  auto grads = policy.zero_grads();
  typename P::Cache cache;
  tensor<float> x0({1, 3}), h({1, 3});
  x0.fill(1.0f);
  REQUIRE_THROWS_WITH(policy.gather(params, cache, 1, h.mat()), contains("call begin() first"));
  policy.begin(cache, x0.mat());
  REQUIRE_THROWS_WITH(policy.gather(params, cache, 2, h.mat()), contains("gather(2) called out of order; expected gather(1)"));
  policy.gather(params, cache, 1, h.mat());
  REQUIRE_THROWS_WITH(policy.gather(params, cache, 2, h.mat()), contains("expected push(1)"));
  REQUIRE_THROWS_WITH(policy.begin_backward(cache), contains("needs a complete forward pass"));
  policy.push(cache, 1, h.mat());
  policy.gather(params, cache, 2, h.mat());
  policy.push(cache, 2, h.mat());
  policy.gather(params, cache, 3, h.mat());
  policy.begin_backward(cache);
  REQUIRE_THROWS_WITH(policy.source_grad(cache, 2, h.mat()), contains("expected gather_backward(3)"));
  policy.gather_backward(params, cache, 3, h.mat(), grads);
  REQUIRE_THROWS_WITH(policy.gather_backward(params, cache, 2, h.mat(), grads), contains("expected source_grad(2)"));

  policy.begin(cache, x0.mat(), /*keep_for_backward=*/false);
  policy.gather(params, cache, 1, h.mat());
  policy.push(cache, 1, h.mat());
  policy.gather(params, cache, 2, h.mat());
  policy.push(cache, 2, h.mat());
  policy.gather(params, cache, 3, h.mat());
  REQUIRE_THROWS_WITH(policy.begin_backward(cache), contains("keep_for_backward = false"));
}

TEMPLATE_TEST_CASE("a gather output changed before its backward is refused, not silently used", "[residual][errors]",
                   FullAttnRes, BlockAttnRes<2>) {
  // In training the policies read each gather output again in the backward, in place (the
  // caller keeps it for its sublayer's backward anyway). Reusing the buffer breaks that contract.
  using P = typename TestType::template with<float>;
  const P policy({.n_sublayers = 2, .d_model = 3});
  auto params = policy.init_params();
  auto grads = policy.zero_grads();
  typename P::Cache cache;
  tensor<float> x0({4, 3}), h({4, 3}), h_out({4, 3}), v({4, 3}), dv({4, 3});
  x0.fill(1.0f);
  v.fill(-3.0f);
  policy.begin(cache, x0.mat());
  policy.gather(params, cache, 1, h.mat());
  policy.push(cache, 1, v.mat());
  policy.gather(params, cache, 2, h.mat());  // overwrites the output of gather point 1
  policy.push(cache, 2, v.mat());
  policy.gather(params, cache, 3, h_out.mat());
  policy.begin_backward(cache);
  policy.gather_backward(params, cache, 3, h_out.mat(), grads);
  policy.source_grad(cache, 2, dv.mat());
  policy.gather_backward(params, cache, 2, dv.mat(), grads);  // its output is still in h: fine
  policy.source_grad(cache, 1, dv.mat());
  REQUIRE_THROWS_AS(policy.gather_backward(params, cache, 1, dv.mat(), grads), attnres::usage_error);
}
