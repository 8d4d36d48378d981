#pragma once
// Cross-entropy and softmax, reference path: plain loops, the loss and its gradient computed in
// double whatever T is (the oracle). Contract: ops/cross_entropy.hpp.

#include <attnres/core/backend.hpp>
#include <attnres/core/error.hpp>
#include <attnres/core/tensor.hpp>
#include <attnres/ops/depth_attention_types.hpp>  // no_deduce

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

namespace attnres::ops {

namespace cross_entropy_detail {
template <class T>
void check(const_matrix_view<T> logits, const std::int32_t* targets, const_matrix_view<T> dlogits) {
  expects<shape_error>(dlogits.data == nullptr || (dlogits.rows == logits.rows && dlogits.cols == logits.cols),
                       "cross_entropy: dlogits is (", dlogits.rows, ",", dlogits.cols, ") but logits are (",
                       logits.rows, ",", logits.cols, ")");
  const index_t V = logits.cols;
  for (index_t i = 0; i < logits.rows; ++i)
    expects<shape_error>(targets[i] >= 0 && targets[i] < V, "cross_entropy: target ", targets[i], " at row ", i,
                         " is outside the vocabulary [0, ", V, ")");
}

template <class T>
void check_softmax(const_matrix_view<T> x, const_matrix_view<T> y) {
  expects<shape_error>(y.rows == x.rows && y.cols == x.cols, "softmax_rows: y is (", y.rows, ",", y.cols,
                       ") but x is (", x.rows, ",", x.cols, ")");
}
}  // namespace cross_entropy_detail

// loss_i = lse_i − z[i,t],  lse_i = m_i + log Σ_j e^{z[i,j] − m_i}
template <class T>
double cross_entropy(backend::reference, const_matrix_view<T> logits /*(M,V)*/, const std::int32_t* targets /*(M)*/,
                     no_deduce<matrix_view<T>> dlogits /*(M,V) or null*/, no_deduce<T> grad_scale = T(1)) {
  cross_entropy_detail::check<T>(logits, targets, dlogits);
  const index_t M = logits.rows, V = logits.cols;
  if (M == 0) return 0.0;
  double total = 0;
  for (index_t i = 0; i < M; ++i) {
    double m = -std::numeric_limits<double>::infinity();
    for (index_t j = 0; j < V; ++j) m = std::max(m, static_cast<double>(logits(i, j)));
    double s = 0;
    for (index_t j = 0; j < V; ++j) s += std::exp(static_cast<double>(logits(i, j)) - m);
    const double lse = m + std::log(s);
    const double zt = static_cast<double>(logits(i, targets[i]));  // read before dlogits may overwrite it
    total += lse - zt;
    if (dlogits.data) {
      const double k = static_cast<double>(grad_scale) / static_cast<double>(M);
      for (index_t j = 0; j < V; ++j) {
        const double p = std::exp(static_cast<double>(logits(i, j)) - lse);
        dlogits(i, j) = static_cast<T>((p - (j == targets[i] ? 1.0 : 0.0)) * k);
      }
    }
  }
  return total / static_cast<double>(M);
}

// The same with a mutable logits view (deduction does not convert it to const by itself).
template <class T>
  requires(!std::is_const_v<T>)
double cross_entropy(backend::reference be, matrix_view<T> logits /*(M,V)*/, const std::int32_t* targets /*(M)*/,
                     no_deduce<matrix_view<T>> dlogits /*(M,V) or null*/, no_deduce<T> grad_scale = T(1)) {
  return cross_entropy<T>(be, const_matrix_view<T>(logits), targets, dlogits, grad_scale);
}

template <class T>
void softmax_rows(backend::reference, no_deduce<const_matrix_view<T>> x /*(M,V)*/, matrix_view<T> y /*(M,V)*/) {
  cross_entropy_detail::check_softmax<T>(x, y);
  for (index_t i = 0; i < x.rows; ++i) {
    T m = -std::numeric_limits<T>::infinity();
    for (index_t j = 0; j < x.cols; ++j) m = std::max(m, x(i, j));
    T s = 0;
    for (index_t j = 0; j < x.cols; ++j) {
      y(i, j) = std::exp(x(i, j) - m);
      s += y(i, j);
    }
    for (index_t j = 0; j < x.cols; ++j) y(i, j) /= s;
  }
}

}  // namespace attnres::ops
