#pragma once
// Linear, reference path: triple loops, templated on the scalar so it runs in double for
// gradient checks. The contract is in ops/linear.hpp.

#include <attnres/core/backend.hpp>
#include <attnres/core/bf16.hpp>
#include <attnres/core/error.hpp>
#include <attnres/core/tensor.hpp>
#include <attnres/ops/depth_attention_types.hpp>  // no_deduce

#include <array>
#include <cstddef>

namespace attnres::ops {

// One of several linear layers that read the same input: y = x Wᵀ (linear_forward_shared_input).
// Weight: T, or bf16 for decoding's bf16 weights (host only).
template <class T, class Space = host_space, class Weight = T>
struct linear_target {
  const_matrix_view<Weight, Space> W;  // (N,K)
  matrix_view<T, Space> y;             // (M,N)
};

namespace linear_detail {
// Shape checks shared by every backend (Weight: the weights' type when it is not T).
template <class T, class Weight = T>
void check_forward(const_matrix_view<T> x, no_deduce<const_matrix_view<Weight>> W, const_matrix_view<T> y) {
  expects<shape_error>(x.cols == W.cols, "linear_forward: x is (", x.rows, ",", x.cols, ") but W is (", W.rows, ",",
                       W.cols, "); their widths K must agree");
  expects<shape_error>(y.rows == x.rows && y.cols == W.rows, "linear_forward: y is (", y.rows, ",", y.cols,
                       ") but x Wᵀ is (", x.rows, ",", W.rows, ")");
}

template <class T>
void check_backward(const_matrix_view<T> x, const_matrix_view<T> W, const_matrix_view<T> dy, const_matrix_view<T> dx,
                    const_matrix_view<T> dW) {
  expects<shape_error>(x.cols == W.cols, "linear_backward: x is (", x.rows, ",", x.cols, ") but W is (", W.rows, ",",
                       W.cols, "); their widths K must agree");
  expects<shape_error>(dy.rows == x.rows && dy.cols == W.rows, "linear_backward: dy is (", dy.rows, ",", dy.cols,
                       ") but y = x Wᵀ is (", x.rows, ",", W.rows, ")");
  expects<shape_error>(dx.data == nullptr || (dx.rows == x.rows && dx.cols == x.cols), "linear_backward: dx is (",
                       dx.rows, ",", dx.cols, ") but x is (", x.rows, ",", x.cols, ")");
  expects<shape_error>(dW.data == nullptr || (dW.rows == W.rows && dW.cols == W.cols), "linear_backward: dW is (",
                       dW.rows, ",", dW.cols, ") but W is (", W.rows, ",", W.cols, ")");
}
}  // namespace linear_detail

// y[i,n] = Σ_k x[i,k] W[n,k]
template <class T>
void linear_forward(backend::reference, no_deduce<const_matrix_view<T>> x /*(M,K)*/,
                    no_deduce<const_matrix_view<T>> W /*(N,K)*/, matrix_view<T> y /*(M,N)*/) {
  linear_detail::check_forward<T>(x, W, y);
  for (index_t i = 0; i < x.rows; ++i)
    for (index_t n = 0; n < W.rows; ++n) {
      T s = 0;
      for (index_t k = 0; k < x.cols; ++k) s += x(i, k) * W(n, k);
      y(i, n) = s;
    }
}

// y[i,n] = Σ_k x[i,k] W[n,k] with the weights stored in bf16 (decoding; core/bf16.hpp): each
// weight is its float value, the sum is in T
template <class T>
void linear_forward(backend::reference, no_deduce<const_matrix_view<T>> x /*(M,K)*/, const_matrix_view<bf16> W /*(N,K)*/,
                    matrix_view<T> y /*(M,N)*/) {
  linear_detail::check_forward<T, bf16>(x, W, y);
  for (index_t i = 0; i < x.rows; ++i)
    for (index_t n = 0; n < W.rows; ++n) {
      T s = 0;
      for (index_t k = 0; k < x.cols; ++k) s += x(i, k) * T(static_cast<float>(W(n, k)));
      y(i, n) = s;
    }
}

// y_j = x W_jᵀ for each target j: one linear_forward per target
template <class T, class Weight, std::size_t J>
void linear_forward_shared_input(backend::reference, no_deduce<const_matrix_view<T>> x /*(M,K)*/,
                                 const std::array<linear_target<T, host_space, Weight>, J>& targets) {
  for (const auto& t : targets) linear_forward<T>(backend::reference{}, x, t.W, t.y);
}

// dx[i,k] += Σ_n dy[i,n] W[n,k] ;  dW[n,k] += Σ_i dy[i,n] x[i,k]
template <class T>
void linear_backward(backend::reference, no_deduce<const_matrix_view<T>> x /*(M,K)*/,
                     no_deduce<const_matrix_view<T>> W /*(N,K)*/, no_deduce<const_matrix_view<T>> dy /*(M,N)*/,
                     matrix_view<T> dx /*(M,K) or null*/, matrix_view<T> dW /*(N,K) or null*/) {
  linear_detail::check_backward<T>(x, W, dy, dx, dW);
  const index_t M = x.rows, K = x.cols, N = W.rows;
  if (dx.data)
    for (index_t i = 0; i < M; ++i)
      for (index_t k = 0; k < K; ++k) {
        T s = 0;
        for (index_t n = 0; n < N; ++n) s += dy(i, n) * W(n, k);
        dx(i, k) += s;
      }
  if (dW.data)
    for (index_t n = 0; n < N; ++n)
      for (index_t k = 0; k < K; ++k) {
        T s = 0;
        for (index_t i = 0; i < M; ++i) s += dy(i, n) * x(i, k);
        dW(n, k) += s;
      }
}

}  // namespace attnres::ops
