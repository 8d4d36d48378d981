#pragma once
// AdamW, reference path: the update written exactly as the equations of ops/adamw.hpp, one
// element at a time (the oracle).

#include <attnres/core/backend.hpp>
#include <attnres/core/error.hpp>
#include <attnres/core/tensor.hpp>
#include <attnres/ops/depth_attention_types.hpp>  // no_deduce

#include <cmath>
#include <cstdint>

namespace attnres::ops {

// Hyper-parameters of one AdamW step. step is the 1-based index of this step (for the bias
// corrections 1 − β^t).
struct adamw_step_args {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
  std::int64_t step = 1;
};

namespace adamw_detail {
inline void check(const adamw_step_args& a, index_t n) {
  expects<usage_error>(a.step >= 1, "adamw_step: step is 1-based (the bias corrections use β^step) but got ",
                       a.step);
  expects<shape_error>(n >= 0, "adamw_step: negative element count ", n);
}
}  // namespace adamw_detail

template <class T>
void adamw_step(backend::reference, T* param /*(n)*/, const T* grad /*(n)*/, T* m /*(n)*/, T* v /*(n)*/, index_t n,
                const adamw_step_args& a) {
  adamw_detail::check(a, n);
  // Scalar coefficients in double, rounded once to T (1 − β2 in float would lose 4 digits).
  const T lr = T(a.lr), b1 = T(a.beta1), b2 = T(a.beta2), eps = T(a.eps), wd = T(a.weight_decay);
  const T c1 = T(1 - a.beta1), c2 = T(1 - a.beta2);
  const T bc1 = T(1 - std::pow(a.beta1, static_cast<double>(a.step)));
  const T bc2 = T(1 - std::pow(a.beta2, static_cast<double>(a.step)));
  for (index_t i = 0; i < n; ++i) {
    const T g = grad[i];
    param[i] -= lr * wd * param[i];
    m[i] = b1 * m[i] + c1 * g;
    v[i] = b2 * v[i] + c2 * g * g;
    const T mhat = m[i] / bc1, vhat = v[i] / bc2;
    param[i] -= lr * mhat / (std::sqrt(vhat) + eps);
  }
}

template <class T>
double sum_of_squares(backend::reference, const T* x /*(n)*/, index_t n) {
  double s = 0;
  for (index_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  return s;
}

template <class T>
void scale(backend::reference, T* x /*(n)*/, index_t n, no_deduce<T> s) {
  for (index_t i = 0; i < n; ++i) x[i] *= s;
}

}  // namespace attnres::ops
