#pragma once
// Cross-entropy and softmax, cpu path: per row a vectorised max, a vectorised pass of shifted
// exponentials (stored into the output as they are summed) and an in-place rescale, rows
// split over threads; the loss is summed per chunk in double and the chunks added in order.
// Tested equal to the reference in tests/ops/test_dense_ops.cpp.

#include <attnres/core/backend.hpp>
#include <attnres/core/parallel.hpp>
#include <attnres/core/simd.hpp>
#include <attnres/ops/depth_attention_types.hpp>   // no_deduce
#include <attnres/ops/reference/cross_entropy.hpp>  // checks

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

namespace attnres::ops {

namespace cross_entropy_detail {
inline index_t row_grain(index_t V) { return std::max<index_t>(1, 8192 / std::max<index_t>(1, V)); }

// max_j x[j] (−∞ for an empty row)
template <class T>
T row_max(const T* x, index_t n) {
  constexpr index_t W = simd::width<T>;
  using batch = simd::batch<T>;
  T m = -std::numeric_limits<T>::infinity();
  index_t j = 0;
  if (n >= W) {
    batch acc = batch::load_unaligned(x);
    for (j = W; j + W <= n; j += W) acc = xsimd::max(acc, batch::load_unaligned(x + j));
    alignas(64) T lanes[W];
    acc.store_aligned(lanes);
    for (index_t l = 0; l < W; ++l) m = std::max(m, lanes[l]);
  }
  for (; j < n; ++j) m = std::max(m, x[j]);
  return m;
}

// Σ_j e^{x[j] − m}; also writes the terms to out[j] when out is not null (out may be x).
template <class T>
T exp_shift_sum(const T* x, T m, T* out, index_t n) {
  constexpr index_t W = simd::width<T>;
  using batch = simd::batch<T>;
  const batch vm(m);
  batch acc(T(0));
  index_t j = 0;
  for (; j + W <= n; j += W) {
    const batch e = xsimd::exp(batch::load_unaligned(x + j) - vm);
    if (out) e.store_unaligned(out + j);
    acc += e;
  }
  T s = xsimd::hadd(acc);
  for (; j < n; ++j) {
    const T e = std::exp(x[j] - m);
    if (out) out[j] = e;
    s += e;
  }
  return s;
}
}  // namespace cross_entropy_detail

template <class T>
double cross_entropy(backend::cpu, const_matrix_view<T> logits /*(M,V)*/, const std::int32_t* targets /*(M)*/,
                     no_deduce<matrix_view<T>> dlogits /*(M,V) or null*/, no_deduce<T> grad_scale = T(1)) {
  using namespace cross_entropy_detail;
  check<T>(logits, targets, dlogits);
  const index_t M = logits.rows, V = logits.cols;
  if (M == 0) return 0.0;
  const index_t grain = row_grain(V);
  std::vector<double> part(static_cast<std::size_t>(chunk_count(M, grain)), 0.0);
  const T k = static_cast<T>(static_cast<double>(grad_scale) / static_cast<double>(M));
  parallel_chunks(M, grain, [&](index_t chunk, index_t begin, index_t end) {
    double loss = 0;
    for (index_t i = begin; i < end; ++i) {
      const T* z = logits.row(i);
      const std::int32_t t = targets[i];
      const T zt = z[t];  // read before dlogits (which may alias logits) is written
      const T m = row_max(z, V);
      T* g = dlogits.data ? dlogits.row(i) : nullptr;
      const T s = exp_shift_sum(z, m, g, V);  // g[j] = e^{z_j − m}
      loss += static_cast<double>(m) + std::log(static_cast<double>(s)) - static_cast<double>(zt);
      if (g) {
        simd::scale_to(k / s, g, g, V);  // p_j · k
        g[t] -= k;
      }
    }
    part[static_cast<std::size_t>(chunk)] = loss;
  });
  double total = 0;
  for (double p : part) total += p;
  return total / static_cast<double>(M);
}

template <class T>
  requires(!std::is_const_v<T>)
double cross_entropy(backend::cpu be, matrix_view<T> logits /*(M,V)*/, const std::int32_t* targets /*(M)*/,
                     no_deduce<matrix_view<T>> dlogits /*(M,V) or null*/, no_deduce<T> grad_scale = T(1)) {
  return cross_entropy<T>(be, const_matrix_view<T>(logits), targets, dlogits, grad_scale);
}

template <class T>
void softmax_rows(backend::cpu, no_deduce<const_matrix_view<T>> x /*(M,V)*/, matrix_view<T> y /*(M,V)*/) {
  using namespace cross_entropy_detail;
  check_softmax<T>(x, y);
  const index_t V = x.cols;
  parallel_chunks(x.rows, row_grain(V), [&](index_t, index_t begin, index_t end) {
    for (index_t i = begin; i < end; ++i) {
      const T s = exp_shift_sum(x.row(i), row_max(x.row(i), V), y.row(i), V);
      simd::scale_to(T(1) / s, y.row(i), y.row(i), V);
    }
  });
}

}  // namespace attnres::ops
