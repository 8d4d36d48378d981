#pragma once
// Causal attention, reference path: plain loops over (sequence, head, query, key, channel),
// templated on the scalar (double for gradient checks). The contract is in
// ops/causal_attention.hpp.

#include <attnres/core/backend.hpp>
#include <attnres/core/error.hpp>
#include <attnres/core/tensor.hpp>
#include <attnres/ops/depth_attention_types.hpp>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <vector>

namespace attnres::ops {

namespace detail {
struct view_shape {
  const char* name;
  index_t rows, cols;
};

// Checks that every view is (batch·T, H·Dh) with the same Dh as the first one; returns Dh.
inline index_t attention_check(const char* op, index_t batch, index_t seq_len, index_t H,
                               std::initializer_list<view_shape> views) {
  expects<shape_error>(seq_len >= 1, op, ": sequence length T = ", seq_len, " must be at least 1");
  expects<shape_error>(H >= 1, op, ": number of heads H = ", H, " must be at least 1");
  expects<shape_error>(batch >= 0, op, ": batch = ", batch, " must not be negative");
  const view_shape& first = *views.begin();
  expects<shape_error>(first.rows == batch * seq_len, op, ": ", first.name, " has ", first.rows,
                       " rows but batch·T = ", batch, "·", seq_len, " = ", batch * seq_len);
  expects<shape_error>(first.cols > 0 && first.cols % H == 0, op, ": ", first.name, " has ", first.cols,
                       " columns, which is not H·Dh for H = ", H, " heads");
  for (const view_shape& v : views)
    expects<shape_error>(v.rows == first.rows && v.cols == first.cols, op, ": ", v.name, " has shape (", v.rows, ", ",
                         v.cols, ") but ", first.name, " is (", first.rows, ", ", first.cols, ")");
  return first.cols / H;
}
}  // namespace detail

template <class T>
void causal_attention_forward(backend::reference, no_deduce<const_matrix_view<T>> q /*(B·T, H·Dh)*/,
                              no_deduce<const_matrix_view<T>> k /*(B·T, H·Dh)*/,
                              no_deduce<const_matrix_view<T>> v /*(B·T, H·Dh)*/, index_t batch, index_t seq_len,
                              index_t H, matrix_view<T> out /*(B·T, H·Dh)*/, T* probs /*(B, H, T, T)*/) {
  // (a named list, not a braced argument: nvcc's front end mangles the latter)
  const std::initializer_list<detail::view_shape> views = {
      {"q", q.rows, q.cols}, {"k", k.rows, k.cols}, {"v", v.rows, v.cols}, {"out", out.rows, out.cols}};
  const index_t Dh = detail::attention_check("causal_attention_forward", batch, seq_len, H, views);
  expects<shape_error>(probs != nullptr || batch == 0, "causal_attention_forward: probs is null");
  const T scale = T(1) / std::sqrt(T(Dh));
  for (index_t b = 0; b < batch; ++b)
    for (index_t h = 0; h < H; ++h) {
      T* P = probs + (b * H + h) * seq_len * seq_len;  // (T,T)
      const index_t c0 = h * Dh;
      for (index_t i = 0; i < seq_len; ++i) {
        const index_t ri = b * seq_len + i;
        T* Pi = P + i * seq_len;  // (T)
        T smax = -std::numeric_limits<T>::infinity();
        for (index_t j = 0; j <= i; ++j) {
          T dot = 0;
          for (index_t d = 0; d < Dh; ++d) dot += q(ri, c0 + d) * k(b * seq_len + j, c0 + d);
          Pi[j] = dot * scale;
          smax = std::max(smax, Pi[j]);
        }
        T z = 0;  // shift by the row max so exp never overflows
        for (index_t j = 0; j <= i; ++j) {
          Pi[j] = std::exp(Pi[j] - smax);
          z += Pi[j];
        }
        for (index_t j = 0; j <= i; ++j) Pi[j] /= z;
        for (index_t j = i + 1; j < seq_len; ++j) Pi[j] = 0;
        for (index_t d = 0; d < Dh; ++d) {
          T o = 0;
          for (index_t j = 0; j <= i; ++j) o += Pi[j] * v(b * seq_len + j, c0 + d);
          out(ri, c0 + d) = o;
        }
      }
    }
}

template <class T>
void causal_attention_backward(backend::reference, no_deduce<const_matrix_view<T>> q /*(B·T, H·Dh)*/,
                               no_deduce<const_matrix_view<T>> k /*(B·T, H·Dh)*/,
                               no_deduce<const_matrix_view<T>> v /*(B·T, H·Dh)*/, const T* probs /*(B, H, T, T)*/,
                               no_deduce<const_matrix_view<T>> dout /*(B·T, H·Dh)*/, index_t batch, index_t seq_len,
                               index_t H, matrix_view<T> dq /*(B·T, H·Dh)*/, matrix_view<T> dk /*(B·T, H·Dh)*/,
                               matrix_view<T> dv /*(B·T, H·Dh)*/) {
  const std::initializer_list<detail::view_shape> views = {
      {"q", q.rows, q.cols},     {"k", k.rows, k.cols},     {"v", v.rows, v.cols}, {"dout", dout.rows, dout.cols},
      {"dq", dq.rows, dq.cols}, {"dk", dk.rows, dk.cols}, {"dv", dv.rows, dv.cols}};
  const index_t Dh = detail::attention_check("causal_attention_backward", batch, seq_len, H, views);
  expects<shape_error>(probs != nullptr || batch == 0, "causal_attention_backward: probs is null");
  const T scale = T(1) / std::sqrt(T(Dh));
  for (index_t r = 0; r < q.rows; ++r)
    for (index_t c = 0; c < q.cols; ++c) dq(r, c) = dk(r, c) = dv(r, c) = 0;
  std::vector<T> dP(static_cast<std::size_t>(seq_len));  // (T) one row of dP
  for (index_t b = 0; b < batch; ++b)
    for (index_t h = 0; h < H; ++h) {
      const T* P = probs + (b * H + h) * seq_len * seq_len;  // (T,T)
      const index_t c0 = h * Dh, r0 = b * seq_len;
      for (index_t i = 0; i < seq_len; ++i) {
        const T* Pi = P + i * seq_len;
        T rowdot = 0;  // Σ_j P_ij dP_ij
        for (index_t j = 0; j <= i; ++j) {
          T dp = 0;  // dP_ij = dO_i · v_j
          for (index_t d = 0; d < Dh; ++d) dp += dout(r0 + i, c0 + d) * v(r0 + j, c0 + d);
          dP[j] = dp;
          rowdot += Pi[j] * dp;
        }
        for (index_t j = 0; j <= i; ++j) {
          const T ds = Pi[j] * (dP[j] - rowdot) * scale;  // ∂ℒ/∂(q_i·k_j)
          for (index_t d = 0; d < Dh; ++d) {
            dq(r0 + i, c0 + d) += ds * k(r0 + j, c0 + d);
            dk(r0 + j, c0 + d) += ds * q(r0 + i, c0 + d);
            dv(r0 + j, c0 + d) += Pi[j] * dout(r0 + i, c0 + d);
          }
        }
      }
    }
}

}  // namespace attnres::ops
