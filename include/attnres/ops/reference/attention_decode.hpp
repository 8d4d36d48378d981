#pragma once
// KV-cache decoding, reference path: plain loops, templated on the scalar. The contract is in
// ops/attention_decode.hpp.

#include <attnres/core/backend.hpp>
#include <attnres/core/error.hpp>
#include <attnres/core/tensor.hpp>
#include <attnres/ops/depth_attention_types.hpp>
#include <attnres/ops/reference/linear.hpp>
#include <attnres/ops/reference/rope.hpp>

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

// Checks attention_decode_step's shapes up front (the cpu path works on views of single heads,
// whose own checks could not see a wrong whole); returns Dh.
template <class T, class Space, class Weight = T>
index_t decode_step_check(const_matrix_view<T, Space> x, no_deduce<const_matrix_view<Weight, Space>> wq,
                          no_deduce<const_matrix_view<Weight, Space>> wk, no_deduce<const_matrix_view<Weight, Space>> wv,
                          const_matrix_view<T, Space> q, const_matrix_view<T, Space> k, const_matrix_view<T, Space> v,
                          bool caches, index_t pos, index_t T_max, index_t H, const_matrix_view<T, Space> out,
                          double theta) {
  linear_detail::check_forward<T, Weight>(x, wq, q);
  linear_detail::check_forward<T, Weight>(x, wk, k);
  linear_detail::check_forward<T, Weight>(x, wv, v);
  expects<shape_error>(k.cols == q.cols && v.cols == q.cols, "attention_decode_step: q, k and v have ", q.cols, ", ",
                       k.cols, " and ", v.cols, " columns; they must agree");
  expects<shape_error>(pos >= 0 && pos < T_max, "attention_decode_step: position ", pos,
                       " is not in the cache's [0, T_max = ", T_max, ")");
  rope_check("attention_decode_step", "q", q.rows, q.cols, 1, H, theta);
  return decode_check(q.rows, q.cols, out.rows, out.cols, caches, pos + 1, T_max, H);
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

// A decode step of the attention layer up to its output projection (contract in
// ops/attention_decode.hpp): the ops it is made of, one after another. Weight: T, or bf16 for
// decoding with bf16 weights (attention_decode_step<float, bf16>).
template <class T, class Weight = T>
void attention_decode_step(backend::reference, no_deduce<const_matrix_view<T>> x /*(B,D)*/,
                           no_deduce<const_matrix_view<Weight>> wq, no_deduce<const_matrix_view<Weight>> wk,
                           no_deduce<const_matrix_view<Weight>> wv /*(D,D)*/, matrix_view<T> q, matrix_view<T> k,
                           matrix_view<T> v /*(B,D)*/, T* k_cache, T* v_cache /*(B, T_max, D)*/, index_t pos, index_t T_max,
                           index_t H, double theta, matrix_view<T> out /*(B,D)*/) {
  detail::decode_step_check<T, host_space, Weight>(x, wq, wk, wv, q, k, v, k_cache && v_cache, pos, T_max, H, out, theta);
  const index_t D = q.cols;
  using target = linear_target<T, host_space, Weight>;
  linear_forward_shared_input(backend::reference{}, x, std::array{target{wq, q}, target{wk, k}, target{wv, v}});
  rope_forward(backend::reference{}, q, 1, H, pos, theta);
  rope_forward(backend::reference{}, k, 1, H, pos, theta);
  // row b of k, v → cache position (b, pos)
  copy(const_matrix_view<T>(k), matrix_view<T>(k_cache + pos * D, q.rows, D, T_max * D));
  copy(const_matrix_view<T>(v), matrix_view<T>(v_cache + pos * D, q.rows, D, T_max * D));
  attention_decode(backend::reference{}, q, k_cache, v_cache, pos + 1, T_max, H, out);
}

}  // namespace attnres::ops
