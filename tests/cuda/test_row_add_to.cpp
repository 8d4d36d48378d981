// The element map of the CUDA add_to kernel (ops/cuda/row/add_to.hpp: dst += src, one thread per
// element of two strided views), run on the CPU over every thread index against the host add_to.

#include "test_util.hpp"

#include <attnres/core/storage.hpp>
#include <attnres/ops/cuda/row/add_to.hpp>

using namespace attnres_test;
namespace row = attnres::ops::row;
using attnres::tensor;

TEST_CASE("cuda row math: add_to over every thread equals the host add_to, strides included", "[cuda][row][add_to]") {
  const auto M = GENERATE(index_t(1), index_t(6));
  const auto D = GENERATE(index_t(1), index_t(7), index_t(33));
  const auto pad = GENERATE(index_t(0), index_t(3));
  CAPTURE(M, D, pad);
  attnres::rng gen(81 + M + D + pad);
  const index_t ss = D + pad, ds = D + 2 * pad;  // different strides for source and destination
  const auto src = random_tensor<float>({M, ss}, gen);
  const auto dst0 = random_tensor<float>({M, ds}, gen);
  tensor<float> a = dst0, b = dst0;
  attnres::add_to(attnres::const_matrix_view<float>(src.data(), M, D, ss), attnres::matrix_view<float>(a.data(), M, D, ds));
  for (index_t i = 0; i < M * D; ++i) row::add_to_thread(i, src.data(), ss, b.data(), ds, D);
  for (index_t i = 0; i < a.size(); ++i) REQUIRE(a[i] == b[i]);  // same additions, same order: bitwise
  REQUIRE(a[0] != dst0[0]);  // something was added
}
