#pragma once
// KV-cache decoding, cpu path: one task per (sequence, head), in parallel over batch·H; each
// task is n vectorised dot products (xsimd) and n vectorised axpys. One query row is too thin
// for a GEMM to pay off. Tested equal to the reference and to the last row of the full causal
// forward (tests/ops/test_attention_ops.cpp).

#include <attnres/core/backend.hpp>
#include <attnres/core/parallel.hpp>
#include <attnres/core/simd.hpp>
#include <attnres/ops/reference/attention_decode.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

namespace attnres::ops {

template <class T>
void attention_decode(backend::cpu, no_deduce<const_matrix_view<T>> q /*(B, H·Dh)*/,
                      const T* k_cache /*(B, T_max, H·Dh)*/, const T* v_cache /*(B, T_max, H·Dh)*/, index_t n,
                      index_t T_max, index_t H, matrix_view<T> out /*(B, H·Dh)*/) {
  const index_t Dh = detail::decode_check(q.rows, q.cols, out.rows, out.cols, k_cache && v_cache, n, T_max, H);
  const index_t HD = q.cols;
  const T scale = T(1) / std::sqrt(T(Dh));
  parallel_chunks(q.rows * H, 1, [&](index_t, index_t begin, index_t end) {
    std::vector<T> p(static_cast<std::size_t>(n));  // (n) scores, then weights
    for (index_t task = begin; task < end; ++task) {
      const index_t b = task / H, c0 = (task % H) * Dh;
      const T* qh = q.row(b) + c0;                       // (Dh)
      const T* kh = k_cache + b * T_max * HD + c0;       // (n, Dh) with row stride H·Dh
      const T* vh = v_cache + b * T_max * HD + c0;       // (n, Dh) with row stride H·Dh
      T* oh = out.row(b) + c0;                           // (Dh)
      for (index_t j = 0; j < n; ++j) p[j] = simd::dot(qh, kh + j * HD, Dh);
      // softmax(scale·s) = exp(scale·(s − max s)) / Σ: the max shift keeps exp from overflowing
      const T m = *std::max_element(p.begin(), p.end());
      T z = 0;
      for (index_t j = 0; j < n; ++j) z += p[j] = std::exp((p[j] - m) * scale);
      simd::scale_to(p[0] / z, vh, oh, Dh);
      for (index_t j = 1; j < n; ++j) simd::axpy(p[j] / z, vh + j * HD, oh, Dh);
    }
  });
}

}  // namespace attnres::ops
