#pragma once
// Public gradient checker: central differences in double, compared element by element with an
// analytic gradient. Use it to test your own layers and residual policies the way attnres tests
// its own (tests/residual/test_policy_gradients.cpp).

#include <attnres/core/tensor.hpp>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>

namespace attnres::testing {

// ∂f/∂x_i ≈ (f(x + h e_i) − f(x − h e_i)) / 2h for every element of x. f is called with x
// perturbed in place and must read x afresh each call; x is restored afterwards.
template <class F>
tensor<double> numeric_gradient(F&& f, tensor<double>& x, double h = 1e-6) {
  tensor<double> grad(x.shape());
  for (index_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    x[i] = saved + h;
    const double up = f();
    x[i] = saved - h;
    const double down = f();
    x[i] = saved;
    grad[i] = (up - down) / (2 * h);
  }
  return grad;
}

struct gradient_report {
  bool ok = true;
  double max_error = 0;  // the largest |a − n| / (atol + rtol·max(|a|,|n|)) seen; ok means ≤ 1
  index_t worst = -1;      // element where it was seen
  double analytic = 0, numeric = 0;
  double norm = 0;       // ‖analytic‖₂, so callers can guard against an all-zero comparison
  std::string describe(const std::string& what) const {
    std::ostringstream os;
    os << what << ": " << (ok ? "ok" : "MISMATCH") << " (worst element " << worst << ": analytic " << analytic
       << ", numeric " << numeric << ", error ratio " << max_error << ", |grad| " << norm << ")";
    return os.str();
  }
};

// Element i passes when |a_i − n_i| ≤ atol + rtol·max(|a_i|, |n_i|).
inline gradient_report compare_gradients(const tensor<double>& analytic, const tensor<double>& numeric,
                                         double rtol = 1e-6, double atol = 1e-8) {
  gradient_report r;
  if (analytic.shape() != numeric.shape()) {
    r.ok = false;
    return r;
  }
  double sq = 0;
  for (index_t i = 0; i < analytic.size(); ++i) {
    const double a = analytic[i], n = numeric[i];
    sq += a * a;
    const double ratio = std::abs(a - n) / (atol + rtol * std::max(std::abs(a), std::abs(n)));
    if (!(ratio <= r.max_error)) {  // also catches NaN
      r.max_error = std::isnan(ratio) ? INFINITY : ratio;
      r.worst = i;
      r.analytic = a;
      r.numeric = n;
    }
  }
  r.norm = std::sqrt(sq);
  r.ok = r.max_error <= 1.0;
  return r;
}

}  // namespace attnres::testing
