#pragma once
// RMSNorm, reference path: plain loops templated on the scalar (the oracle). Contract and
// formulas: ops/rms_norm.hpp.

#include <attnres/core/backend.hpp>
#include <attnres/core/error.hpp>
#include <attnres/core/tensor.hpp>
#include <attnres/ops/depth_attention_types.hpp>  // no_deduce

#include <cmath>

namespace attnres::ops {

namespace rms_norm_detail {
template <class T>
void check(const char* op, const_matrix_view<T> x, const_matrix_view<T> other, const char* other_name) {
  expects<shape_error>(other.rows == x.rows && other.cols == x.cols, op, ": ", other_name, " is (", other.rows, ",",
                       other.cols, ") but x is (", x.rows, ",", x.cols, ")");
}
}  // namespace rms_norm_detail

template <class T>
void rms_norm_forward(backend::reference, no_deduce<const_matrix_view<T>> x /*(M,D)*/, const T* g /*(D)*/,
                      no_deduce<T> eps, matrix_view<T> y /*(M,D)*/, no_deduce<T*> inv_rms /*(M) or null*/) {
  rms_norm_detail::check<T>("rms_norm_forward", x, y, "y");
  const index_t M = x.rows, D = x.cols;
  for (index_t t = 0; t < M; ++t) {
    T ss = 0;
    for (index_t d = 0; d < D; ++d) ss += x(t, d) * x(t, d);
    const T r = T(1) / std::sqrt(ss / T(D) + eps);
    if (inv_rms) inv_rms[t] = r;
    for (index_t d = 0; d < D; ++d) y(t, d) = x(t, d) * r * g[d];
  }
}

// dx += r g ⊙ dy − (r³ a / D) x,  a = Σ_d dy g x ;  dg += Σ_t dy ⊙ x r ;  x_dot_dx = x · (dx's increment)
template <class T>
void rms_norm_backward(backend::reference, no_deduce<const_matrix_view<T>> x /*(M,D)*/, const T* g /*(D)*/,
                       const T* inv_rms /*(M)*/, no_deduce<const_matrix_view<T>> dy /*(M,D)*/,
                       no_deduce<matrix_view<T>> dx /*(M,D) or null*/, no_deduce<T*> dg /*(D) or null*/,
                       no_deduce<T*> x_dot_dx = nullptr /*(M) or null*/) {
  rms_norm_detail::check<T>("rms_norm_backward", x, dy, "dy");
  if (dx.data) rms_norm_detail::check<T>("rms_norm_backward", x, dx, "dx");
  const index_t M = x.rows, D = x.cols;
  for (index_t t = 0; t < M; ++t) {
    const T r = inv_rms[t];
    T a = 0;
    for (index_t d = 0; d < D; ++d) a += dy(t, d) * g[d] * x(t, d);
    T x_dot_increment = 0;
    for (index_t d = 0; d < D; ++d) {
      const T increment = r * g[d] * dy(t, d) - r * r * r * a / T(D) * x(t, d);
      if (dx.data) dx(t, d) += increment;
      x_dot_increment += x(t, d) * increment;
      if (dg) dg[d] += dy(t, d) * x(t, d) * r;
    }
    if (x_dot_dx) x_dot_dx[t] = x_dot_increment;
  }
}

}  // namespace attnres::ops
