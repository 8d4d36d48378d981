// core/storage.hpp on the host: the storage alias of each backend, and the memory operations
// generic code uses (their device overloads are checked by the GPU tests).

#include "test_util.hpp"

#include <attnres/core/storage.hpp>

#include <type_traits>

using attnres::host_space;
using attnres::index_t;
using attnres::tensor;

static_assert(std::is_same_v<attnres::backend_tensor<float, attnres::backend::cpu>, tensor<float>>);
static_assert(std::is_same_v<attnres::backend_tensor<double, attnres::backend::reference>, tensor<double>>);
static_assert(std::is_same_v<attnres::storage_t<int, host_space>, tensor<int>>);

TEST_CASE("storage: fill_n, copy_from_host and copy_to_host on the host space", "[core][storage]") {
  tensor<float> t({2, 3});
  attnres::fill_n(host_space{}, t.data(), t.size(), 2.5f);
  for (float v : t) CHECK(v == 2.5f);
  const float src[6] = {1, 2, 3, 4, 5, 6};
  attnres::copy_from_host(host_space{}, src, t.data(), 6);
  float back[6] = {};
  attnres::copy_to_host(host_space{}, t.data(), back, 6);
  for (int i = 0; i < 6; ++i) CHECK(back[i] == src[i]);
  attnres::require_available(host_space{}, "test");  // the host is always there
}

TEST_CASE("storage: add_to adds row by row and checks shapes", "[core][storage]") {
  tensor<float> a({2, 3}), b({2, 3}), c({3, 2});
  for (index_t i = 0; i < 6; ++i) {
    a[i] = static_cast<float>(i);
    b[i] = 10.0f;
  }
  attnres::add_to(a.mat(), b.mat());
  for (index_t i = 0; i < 6; ++i) CHECK(b[i] == 10.0f + static_cast<float>(i));
  REQUIRE_THROWS_AS(attnres::add_to(a.mat(), c.mat()), attnres::shape_error);
}
