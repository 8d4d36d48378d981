#pragma once
// A minimal harness for the nvcc-built tests (Catch2 is not compiled by nvcc here): named checks,
// a comparison with the worst element reported, and ctest's skip code when there is no device.

#include <attnres/core/tensor.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <functional>
#include <string>
#include <vector>

namespace attnres_cuda_test {

inline constexpr int skip_code = 77;  // SKIP_RETURN_CODE of the ctest entries

struct failure : std::exception {
  std::string msg;
  explicit failure(std::string m) : msg(std::move(m)) {}
  const char* what() const noexcept override { return msg.c_str(); }
};

inline void require(bool ok, const std::string& what) {
  if (!ok) throw failure(what);
}

// |a − b| ≤ atol + rtol·max(|a|,|b|) element-wise, and a is not all zeros.
inline void require_close(const float* a, const float* b, attnres::index_t n, double rtol, double atol, const char* what) {
  double worst = 0, norm = 0;
  attnres::index_t at = -1;
  for (attnres::index_t i = 0; i < n; ++i) {
    const double x = a[i], y = b[i];
    norm += x * x;
    const double r = std::abs(x - y) / (atol + rtol * std::max(std::abs(x), std::abs(y)));
    if (!(r <= worst)) {
      worst = std::isnan(r) ? INFINITY : r;
      at = i;
    }
  }
  if (worst > 1.0)
    throw failure(std::string(what) + ": element " + std::to_string(at) + " " + std::to_string(a[at]) + " vs " +
                  std::to_string(b[at]) + " (error/tolerance " + std::to_string(worst) + ")");
  if (!(norm > 0)) throw failure(std::string(what) + ": the compared data is all zeros");
}

struct suite {
  std::vector<std::pair<std::string, std::function<void()>>> cases;
  void add(std::string name, std::function<void()> f) { cases.emplace_back(std::move(name), std::move(f)); }
  int run() {
    int failed = 0;
    for (auto& [name, f] : cases) {
      try {
        f();
        std::printf("ok      %s\n", name.c_str());
      } catch (const std::exception& e) {
        ++failed;
        std::printf("FAILED  %s: %s\n", name.c_str(), e.what());
      }
    }
    std::printf("%zu checks, %d failed\n", cases.size(), failed);
    return failed == 0 ? 0 : 1;
  }
};

}  // namespace attnres_cuda_test
