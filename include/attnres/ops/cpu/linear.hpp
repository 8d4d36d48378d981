#pragma once
// Linear, cpu path: Eigen GEMM on strided row-major maps of the views. Eigen parallelises a
// large GEMM itself (OpenMP), so no parallel_for is wrapped around it. For M ≤ 4 rows
// (decoding) a GEMM's packing costs more than the product: the forward becomes matrix-vector
// products (simd::dots_with) split over blocks of W's rows with parallel_chunks, and
// linear_forward_shared_input splits several layers' rows over the threads at once. Decoding is
// bound by streaming the weights from memory, and each fork and join stalls that stream: one
// region for q, k and v (and for SwiGLU's gate and up) made a decode step ≈ 17 % faster
// (docs/performance.md). Tested equal to the reference in tests/ops/test_dense_ops.cpp.

#include <attnres/core/backend.hpp>
#include <attnres/core/parallel.hpp>
#include <attnres/core/simd.hpp>
#include <attnres/core/simd_bf16.hpp>
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

// At most this many rows take the matrix-vector path.
inline constexpr index_t gemv_max_rows = 4;
// Multiply-adds per parallel chunk of the matrix-vector path: below this a thread is not worth it.
inline constexpr index_t gemv_grain_flops = index_t(1) << 15;

inline index_t gemv_grain(index_t rows_per_item, index_t flops_per_row) {
  return std::max<index_t>(8, gemv_grain_flops / std::max<index_t>(1, rows_per_item * flops_per_row));
}

// The matrix-vector path can ask for W's rows this many groups of four ahead of the group it
// works on, every cache line of them, within the thread's own rows. 0 (the default) leaves it to
// the hardware prefetcher. On the Zen 5 of round 26, 2 groups made a decode step up to 20 %
// shorter at moments when the shared machine's memory was busy, but 3–7 % longer in other runs
// and on a quiet machine (docs/performance.md), so it is off until it helps everywhere. A
// variable so that benchmarks (bench_overhead prefetch/decode) can compare the two.
inline index_t gemv_prefetch_groups = 0;

// y_i[n0:n1] = W[n0:n1] x_i for the M ≤ 4 rows of x. Four rows of W at a time are dotted with
// x_i (simd::dots_with shares every load of x_i); they are still in L1 for the next x_i, so W's
// block crosses memory once for all M rows. (Our kernel rather than Eigen's GEMV: no call
// overhead per block, and the same speed measured with or without an optimised BLAS behind Eigen.)
// Weight: T, or bf16 (decoding's bf16 weights: core/simd_bf16.hpp's kernel).
template <class T, class Weight = T>
void gemv_rows(const_matrix_view<T> x, const_matrix_view<Weight> W, matrix_view<T> y, index_t n0, index_t n1) {
  const Weight* rows[4];
  const index_t ahead = 4 * gemv_prefetch_groups;
  for (index_t n = n0; n < n1; n += 4) {
    const index_t r = std::min<index_t>(4, n1 - n);
    if (ahead > 0)
      for (index_t j = n + ahead; j < std::min(n1, n + ahead + 4); ++j) simd::prefetch_row(W.row(j), x.cols);
    for (index_t j = 0; j < r; ++j) rows[j] = W.row(n + j);
    for (index_t i = 0; i < x.rows; ++i) simd::dots_with(x.row(i), rows, r, x.cols, y.row(i) + n);
  }
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
    parallel_chunks(N, gemv_grain(M, K), [&](index_t, index_t n0, index_t n1) { gemv_rows<T>(x, W, y, n0, n1); });
    return;
  }
  eigen(y).noalias() = eigen<T>(x) * eigen<T>(W).transpose();
}

// y = x Wᵀ with W in bf16 (decoding with bf16 weights, LM::start_decode): the matrix-vector
// path for any number of rows, since there is no bf16 GEMM to hand larger M to (a block of 4
// weight rows is widened once per row of x while it sits in L1).
template <class T>
  requires std::is_same_v<T, float>
void linear_forward(backend::cpu, no_deduce<const_matrix_view<T>> x /*(M,K)*/, const_matrix_view<bf16> W /*(N,K)*/,
                    matrix_view<T> y /*(M,N)*/) {
  using namespace linear_detail;
  check_forward<T, bf16>(x, W, y);
  const index_t M = x.rows, K = x.cols, N = W.rows;
  if (M == 0 || N == 0) return;
  parallel_chunks(N, gemv_grain(M, K), [&](index_t, index_t n0, index_t n1) { gemv_rows<T, bf16>(x, W, y, n0, n1); });
}

// y_j = x W_jᵀ for each target j. Same results as one linear_forward per target; for M ≤ 4 rows
// the targets' output rows are numbered one after another and split over the threads in a
// single parallel region: decoding's q, k, v (and SwiGLU's gate, up) then cost one fork and join
// instead of three (two), and each thread streams its share of all the weights in one go.
// With bf16 weights every M takes the matrix-vector path (see linear_forward above).
template <class T, class Weight, std::size_t J>
void linear_forward_shared_input(backend::cpu, no_deduce<const_matrix_view<T>> x /*(M,K)*/,
                                 const std::array<linear_target<T, host_space, Weight>, J>& targets) {
  using namespace linear_detail;
  for (const auto& t : targets) check_forward<T, Weight>(x, t.W, t.y);
  const index_t M = x.rows, K = x.cols;
  if ((M > gemv_max_rows && std::is_same_v<Weight, T>) || K == 0) {
    for (const auto& t : targets) linear_forward<T>(backend::cpu{}, x, t.W, t.y);
    return;
  }
  index_t rows = 0;  // output rows of all targets
  for (const auto& t : targets) rows += t.W.rows;
  parallel_chunks(rows, gemv_grain(M, K), [&](index_t, index_t r0, index_t r1) {
    index_t first = 0;  // the first of target t's rows in the numbering
    for (const auto& t : targets) {
      const index_t n0 = std::max<index_t>(r0 - first, 0), n1 = std::min<index_t>(r1 - first, t.W.rows);
      if (n0 < n1) gemv_rows<T, Weight>(x, t.W, t.y, n0, n1);
      first += t.W.rows;
    }
  });
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
