#pragma once
// KV-cache decoding, reference path: plain loops, templated on the scalar. The contract is in
// ops/attention_decode.hpp.

#include <attnres/core/backend.hpp>
#include <attnres/core/error.hpp>
#include <attnres/core/tensor.hpp>
#include <attnres/ops/depth_attention_types.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace attnres::ops {

namespace detail {
// Checks the decode shapes; returns Dh.
inline index_t decode_check(index_t q_rows, index_t q_cols, index_t out_rows, index_t out_cols, bool caches, index_t n,
                            index_t T_max, index_t H) {
  expects<shape_error>(H >= 1, "attention_decode: number of heads H = ", H, " must be at least 1");
  expects<shape_error>(q_cols > 0 && q_cols % H == 0, "attention_decode: q has ", q_cols,
                       " columns, which is not H·Dh for H = ", H, " heads");
  expects<shape_error>(out_rows == q_rows && out_cols == q_cols, "attention_decode: out has shape (", out_rows, ", ",
                       out_cols, ") but q is (", q_rows, ", ", q_cols, ")");
  expects<shape_error>(n >= 1 && n <= T_max, "attention_decode: n = ", n, " valid positions is not in [1, T_max = ",
                       T_max, "]");
  expects<shape_error>(caches || q_rows == 0, "attention_decode: k_cache or v_cache is null");
  return q_cols / H;
}
}  // namespace detail

template <class T>
void attention_decode(backend::reference, no_deduce<const_matrix_view<T>> q /*(B, H·Dh)*/,
                      const T* k_cache /*(B, T_max, H·Dh)*/, const T* v_cache /*(B, T_max, H·Dh)*/, index_t n,
                      index_t T_max, index_t H, matrix_view<T> out /*(B, H·Dh)*/) {
  const index_t Dh = detail::decode_check(q.rows, q.cols, out.rows, out.cols, k_cache && v_cache, n, T_max, H);
  const index_t HD = q.cols;
  const T scale = T(1) / std::sqrt(T(Dh));
  std::vector<T> p(static_cast<std::size_t>(n));  // (n)
  for (index_t b = 0; b < q.rows; ++b)
    for (index_t h = 0; h < H; ++h) {
      const index_t c0 = h * Dh;
      T smax = -std::numeric_limits<T>::infinity();
      for (index_t j = 0; j < n; ++j) {
        const T* kj = k_cache + (b * T_max + j) * HD + c0;  // (Dh)
        T dot = 0;
        for (index_t d = 0; d < Dh; ++d) dot += q(b, c0 + d) * kj[d];
        p[j] = dot * scale;
        smax = std::max(smax, p[j]);
      }
      T z = 0;  // shift by the max so exp never overflows
      for (index_t j = 0; j < n; ++j) {
        p[j] = std::exp(p[j] - smax);
        z += p[j];
      }
      for (index_t d = 0; d < Dh; ++d) {
        T o = 0;
        for (index_t j = 0; j < n; ++j) o += p[j] * v_cache[(b * T_max + j) * HD + c0 + d];
        out(b, c0 + d) = o / z;
      }
    }
}

}  // namespace attnres::ops
