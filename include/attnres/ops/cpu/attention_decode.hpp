#pragma once
// KV-cache decoding, cpu path: one task per (sequence, head), in parallel over batch·H; each
// task is n dot products (4 keys per read of the query), a vectorised softmax and one weighted
// sum of the n value rows (8 rows per pass over the output), xsimd throughout. One query row is
// too thin for a GEMM to pay off. Tested equal to the reference and to the last row of the full causal
// forward (tests/ops/test_attention_ops.cpp).

#include <attnres/core/backend.hpp>
#include <attnres/core/parallel.hpp>
#include <attnres/core/simd.hpp>
#include <attnres/ops/reference/attention_decode.hpp>

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
    // this worker's scratch, grown only: a step allocates nothing once warm
    thread_local std::vector<T> p;            // (n) scores, then weights; room for the softmax's padding
    thread_local std::vector<const T*> rows;  // (n) the head's key rows, then its value rows
    p.resize(static_cast<std::size_t>(simd::padded<T>(n)));
    rows.resize(static_cast<std::size_t>(n));
    for (index_t task = begin; task < end; ++task) {
      const index_t b = task / H, c0 = (task % H) * Dh;
      const T* qh = q.row(b) + c0;                       // (Dh)
      const T* kh = k_cache + b * T_max * HD + c0;       // (n, Dh) with row stride H·Dh
      const T* vh = v_cache + b * T_max * HD + c0;       // (n, Dh) with row stride H·Dh
      // s_j = scale·(q·k_j), the query read once per 4 keys
      for (index_t j = 0; j < n; ++j) rows[j] = kh + j * HD;
      simd::dots_with(qh, rows.data(), n, Dh, p.data());
      for (index_t j = 0; j < n; ++j) p[j] *= scale;
      simd::softmax_padded(p.data(), n);  // shifted by the max inside: e^x cannot overflow
      // out = Σ_j p_j v_j, the output row read and written once per 8 values
      for (index_t j = 0; j < n; ++j) rows[j] = vh + j * HD;
      simd::weighted_sum(rows.data(), p.data(), n, Dh, out.row(b) + c0);
    }
  });
}

}  // namespace attnres::ops
