#pragma once
// LayerNorm, reference path: plain two-pass loops templated on the scalar (the oracle).
// Contract and formulas: ops/layer_norm.hpp.

#include <attnres/core/backend.hpp>
#include <attnres/core/error.hpp>
#include <attnres/core/tensor.hpp>
#include <attnres/ops/depth_attention_types.hpp>  // no_deduce

#include <cmath>

namespace attnres::ops {

namespace layer_norm_detail {
template <class T>
void check(const char* op, const_matrix_view<T> x, const_matrix_view<T> other, const char* other_name) {
  expects<shape_error>(other.rows == x.rows && other.cols == x.cols, op, ": ", other_name, " is (", other.rows, ",",
                       other.cols, ") but x is (", x.rows, ",", x.cols, ")");
}
}  // namespace layer_norm_detail

template <class T>
void layer_norm_forward(backend::reference, no_deduce<const_matrix_view<T>> x /*(M,D)*/, const T* g /*(D)*/,
                        no_deduce<const T*> b /*(D) or null*/, no_deduce<T> eps, matrix_view<T> y /*(M,D)*/,
                        no_deduce<T*> mean /*(M) or null*/, no_deduce<T*> rstd /*(M) or null*/) {
  layer_norm_detail::check<T>("layer_norm_forward", x, y, "y");
  const index_t M = x.rows, D = x.cols;
  for (index_t t = 0; t < M; ++t) {
    T mu = 0;
    for (index_t d = 0; d < D; ++d) mu += x(t, d);
    mu /= T(D);
    T var = 0;
    for (index_t d = 0; d < D; ++d) var += (x(t, d) - mu) * (x(t, d) - mu);
    var /= T(D);
    const T s = T(1) / std::sqrt(var + eps);
    if (mean) mean[t] = mu;
    if (rstd) rstd[t] = s;
    for (index_t d = 0; d < D; ++d) y(t, d) = (x(t, d) - mu) * s * g[d] + (b ? b[d] : T(0));
  }
}

template <class T>
void layer_norm_backward(backend::reference, no_deduce<const_matrix_view<T>> x /*(M,D)*/, const T* g /*(D)*/,
                         const T* mean /*(M)*/, const T* rstd /*(M)*/, no_deduce<const_matrix_view<T>> dy /*(M,D)*/,
                         no_deduce<matrix_view<T>> dx /*(M,D) or null*/, no_deduce<T*> dg /*(D) or null*/,
                         no_deduce<T*> db /*(D) or null*/) {
  layer_norm_detail::check<T>("layer_norm_backward", x, dy, "dy");
  if (dx.data) layer_norm_detail::check<T>("layer_norm_backward", x, dx, "dx");
  const index_t M = x.rows, D = x.cols;
  for (index_t t = 0; t < M; ++t) {
    const T mu = mean[t], s = rstd[t];
    T m1 = 0, m2 = 0;  // mean_d ĝ, mean_d ĝ x̂
    for (index_t d = 0; d < D; ++d) {
      const T xh = (x(t, d) - mu) * s;
      m1 += dy(t, d) * g[d];
      m2 += dy(t, d) * g[d] * xh;
    }
    m1 /= T(D);
    m2 /= T(D);
    for (index_t d = 0; d < D; ++d) {
      const T xh = (x(t, d) - mu) * s;
      if (dx.data) dx(t, d) += s * (dy(t, d) * g[d] - m1 - xh * m2);
      if (dg) dg[d] += dy(t, d) * xh;
      if (db) db[d] += dy(t, d);
    }
  }
}

}  // namespace attnres::ops
