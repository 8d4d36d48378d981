// core/tensor: shapes, views, alignment, copies.

#include "test_util.hpp"

#include <attnres/core/error.hpp>
#include <attnres/core/tensor.hpp>

#include <cstdint>

using attnres::index_t;
using attnres::tensor;
using attnres_test::contains;

TEST_CASE("tensor: shape, rows × cols, zero-initialised, aligned", "[core][tensor]") {
  tensor<float> t({2, 3, 5});
  CHECK(t.rank() == 3);
  CHECK(t.size() == 30);
  CHECK(t.rows() == 6);
  CHECK(t.cols() == 5);
  for (float x : t) CHECK(x == 0.0f);
  CHECK(reinterpret_cast<std::uintptr_t>(t.data()) % 64 == 0);
  tensor<double> v({7});
  CHECK(v.rows() == 1);
  CHECK(v.cols() == 7);
  REQUIRE_THROWS_WITH(tensor<float>({2, -1}), contains("negative dimension -1"));
}

TEST_CASE("matrix_view: element access, rows, const conversion", "[core][tensor]") {
  tensor<int> t({3, 4});
  for (index_t i = 0; i < t.size(); ++i) t[i] = static_cast<int>(i);
  attnres::matrix_view<int> m = t.mat();
  CHECK(m(2, 1) == 9);
  CHECK(m.row(1)[3] == 7);
  const auto mid = m.middle_rows(1, 2);
  CHECK(mid.rows == 2);
  CHECK(mid(0, 0) == 4);
  attnres::const_matrix_view<int> c = m;  // mutable → const converts implicitly
  CHECK(c(1, 1) == 5);
  static_assert(!std::is_convertible_v<attnres::const_matrix_view<int>, attnres::matrix_view<int>>);
}

TEST_CASE("copy checks shapes", "[core][tensor]") {
  tensor<float> a({2, 3}), b({2, 3}), c({3, 2});
  a.fill(2.5f);
  attnres::copy(a.mat(), b.mat());
  CHECK(b[5] == 2.5f);
  REQUIRE_THROWS_AS(attnres::copy(a.mat(), c.mat()), attnres::shape_error);
  REQUIRE_THROWS_WITH(attnres::copy(a.mat(), c.mat()), contains("source is (2,3) but destination is (3,2)"));
}
