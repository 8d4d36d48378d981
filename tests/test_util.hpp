#pragma once
// Helpers shared by the tests: random tensors and element-wise comparison with a dump of the
// worst element on failure (and a guard that the compared data is not trivially zero).

#include "catch.hpp"

#include <attnres/core/random.hpp>
#include <attnres/core/tensor.hpp>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace attnres_test {

using attnres::index_t;

// Sets the OpenMP thread count for a scope (tests of thread-count independence and of the
// spinning team of core/parallel.hpp).
struct thread_count_scope {
#if defined(_OPENMP)
  int saved = omp_get_max_threads();
  explicit thread_count_scope(int n) { omp_set_num_threads(n); }
  ~thread_count_scope() { omp_set_num_threads(saved); }
#else
  explicit thread_count_scope(int) {}
#endif
  thread_count_scope(const thread_count_scope&) = delete;
  thread_count_scope& operator=(const thread_count_scope&) = delete;
};

template <class T>
attnres::tensor<T> random_tensor(std::vector<index_t> shape, attnres::rng& gen, double mean = 0.0, double sd = 1.0) {
  attnres::tensor<T> t(std::move(shape));
  attnres::fill_normal(t, gen, mean, sd);
  return t;
}

// Every parameter of a model drawn from a normal: norm gains around 1 (sd 0.2), the rest
// around 0 (sd 0.5), so that no part of the model is an identity or a zero.
template <class Model>
void randomize(Model& m, std::uint64_t seed) {
  attnres::rng gen(seed);
  for (auto& p : m.parameters()) {
    const bool gain = p.name.find("norm") != std::string::npos;
    for (index_t i = 0; i < p.size(); ++i)
      p.value[i] = static_cast<typename Model::scalar>(gain ? 1.0 + 0.2 * gen.normal() : 0.5 * gen.normal());
  }
}

struct closeness {
  bool ok = true;
  double worst_ratio = 0;
  index_t worst = -1;
  double a = 0, b = 0;
  double norm = 0;
  std::string describe() const {
    std::ostringstream os;
    os << "worst element " << worst << ": " << a << " vs " << b << " (error / tolerance = " << worst_ratio
       << "), |a| = " << norm;
    return os.str();
  }
};

// |a_i − b_i| ≤ atol + rtol·max(|a_i|, |b_i|) for every element.
template <class A, class B>
closeness compare(const A* a, const B* b, index_t n, double rtol, double atol) {
  closeness c;
  double sq = 0;
  for (index_t i = 0; i < n; ++i) {
    const double x = static_cast<double>(a[i]), y = static_cast<double>(b[i]);
    sq += x * x;
    const double ratio = std::abs(x - y) / (atol + rtol * std::max(std::abs(x), std::abs(y)));
    if (!(ratio <= c.worst_ratio)) {
      c.worst_ratio = std::isnan(ratio) ? INFINITY : ratio;
      c.worst = i;
      c.a = x;
      c.b = y;
    }
  }
  c.norm = std::sqrt(sq);
  c.ok = c.worst_ratio <= 1.0;
  return c;
}

}  // namespace attnres_test

// REQUIRE_CLOSE(a, b, n, rtol, atol): element-wise closeness, with the data guarded against
// being all zeros (a comparison of zeros proves nothing).
#define REQUIRE_CLOSE(a, b, n, rtol, atol)                                   \
  do {                                                                       \
    const auto cmp_ = attnres_test::compare((a), (b), (n), (rtol), (atol));  \
    INFO(cmp_.describe());                                                   \
    REQUIRE(cmp_.ok);                                                        \
    REQUIRE(cmp_.norm > 0);                                                  \
  } while (0)
