#pragma once
// Linear, cpu path: Eigen GEMM on strided row-major maps of the views. Eigen parallelises a
// large GEMM itself (OpenMP), so no parallel_for is wrapped around it. For M ≤ 4 rows
// (decoding) a GEMM's packing costs more than the product: each row becomes a matrix-vector
// product, split over blocks of W's rows with parallel_chunks (Eigen's GEMV is serial, so the
// threads do not nest). Tested equal to the reference in tests/ops/test_dense_ops.cpp.

#include <attnres/core/backend.hpp>
#include <attnres/core/parallel.hpp>
#include <attnres/core/simd.hpp>
#include <attnres/ops/depth_attention_types.hpp>  // no_deduce
#include <attnres/ops/reference/linear.hpp>       // shape checks

#include <Eigen/Core>

#include <algorithm>

namespace attnres::ops {

namespace linear_detail {
template <class T>
using row_major = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using const_map = Eigen::Map<const row_major<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class T>
using mut_map = Eigen::Map<row_major<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class T>
using const_vec = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, 1>>;
template <class T>
using mut_vec = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>>;

template <class T>
const_map<T> eigen(const_matrix_view<T> v) {
  return {v.data, v.rows, v.cols, Eigen::OuterStride<>(v.stride)};
}
template <class T>
mut_map<T> eigen(matrix_view<T> v) {
  return {v.data, v.rows, v.cols, Eigen::OuterStride<>(v.stride)};
}
// Rows [first, first + count) of a view as an Eigen map.
template <class T>
const_map<T> eigen_rows(const_matrix_view<T> v, index_t first, index_t count) {
  return {v.row(first), count, v.cols, Eigen::OuterStride<>(v.stride)};
}

// At most this many rows take the matrix-vector path.
inline constexpr index_t gemv_max_rows = 4;
// Multiply-adds per parallel chunk of the matrix-vector path: below this a thread is not worth it.
inline constexpr index_t gemv_grain_flops = index_t(1) << 15;

inline index_t gemv_grain(index_t rows_per_item, index_t flops_per_row) {
  return std::max<index_t>(8, gemv_grain_flops / std::max<index_t>(1, rows_per_item * flops_per_row));
}
}  // namespace linear_detail

template <class T>
void linear_forward(backend::cpu, no_deduce<const_matrix_view<T>> x /*(M,K)*/,
                    no_deduce<const_matrix_view<T>> W /*(N,K)*/, matrix_view<T> y /*(M,N)*/) {
  using namespace linear_detail;
  check_forward<T>(x, W, y);
  const index_t M = x.rows, K = x.cols, N = W.rows;
  if (M == 0 || N == 0) return;
  if (K == 0) {
    for (index_t i = 0; i < M; ++i) std::fill(y.row(i), y.row(i) + N, T(0));
    return;
  }
  if (M <= gemv_max_rows) {
    // y_i[n0:n1] = W[n0:n1] x_i — each block of W is read once for all M rows.
    parallel_chunks(N, gemv_grain(M, K), [&](index_t, index_t n0, index_t n1) {
      const auto Wb = eigen_rows<T>(W, n0, n1 - n0);  // (n1−n0, K)
      for (index_t i = 0; i < M; ++i) {
        mut_vec<T> yi(y.row(i) + n0, n1 - n0);
        yi.noalias() = Wb * const_vec<T>(x.row(i), K);
      }
    });
    return;
  }
  eigen(y).noalias() = eigen<T>(x) * eigen<T>(W).transpose();
}

template <class T>
void linear_backward(backend::cpu, no_deduce<const_matrix_view<T>> x /*(M,K)*/,
                     no_deduce<const_matrix_view<T>> W /*(N,K)*/, no_deduce<const_matrix_view<T>> dy /*(M,N)*/,
                     matrix_view<T> dx /*(M,K) or null*/, matrix_view<T> dW /*(N,K) or null*/) {
  using namespace linear_detail;
  check_backward<T>(x, W, dy, dx, dW);
  const index_t M = x.rows, K = x.cols, N = W.rows;
  if (M == 0 || K == 0 || N == 0) return;  // nothing to add
  if (M <= gemv_max_rows) {
    if (dx.data) {
      // dx_i[k0:k1] += W[:, k0:k1]ᵀ dy_i
      parallel_chunks(K, gemv_grain(M, N), [&](index_t, index_t k0, index_t k1) {
        const const_map<T> Wb(W.data + k0, N, k1 - k0, Eigen::OuterStride<>(W.stride));  // (N, k1−k0)
        for (index_t i = 0; i < M; ++i) {
          mut_vec<T> dxi(dx.row(i) + k0, k1 - k0);
          dxi.noalias() += Wb.transpose() * const_vec<T>(dy.row(i), N);
        }
      });
    }
    if (dW.data) {
      // dW[n] += Σ_i dy[i,n] x_i : M rank-1 updates, rows of dW split over threads
      parallel_chunks(N, gemv_grain(M, K), [&](index_t, index_t n0, index_t n1) {
        for (index_t n = n0; n < n1; ++n)
          for (index_t i = 0; i < M; ++i) simd::axpy(dy(i, n), x.row(i), dW.row(n), K);
      });
    }
    return;
  }
  if (dx.data) eigen(dx).noalias() += eigen<T>(dy) * eigen<T>(W);
  if (dW.data) eigen(dW).noalias() += eigen<T>(dy).transpose() * eigen<T>(x);
}

}  // namespace attnres::ops
