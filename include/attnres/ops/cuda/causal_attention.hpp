#pragma once
// Causal attention, CUDA path: launch shells around ops/cuda/row/causal_attention.hpp.
//   forward:  one thread per (sequence, head, query row), flash-style online softmax; writes P.
//   backward: a query pass (dq and δ_i, one thread per query row) then a key pass (dk, dv, one
//             thread per key row, queries summed in order: no atomics).
// Contract: ops/causal_attention.hpp with device views and a device probs buffer.

#include <attnres/ops/cuda/launch.hpp>
#include <attnres/ops/cuda/row/causal_attention.hpp>
#include <attnres/ops/reference/causal_attention.hpp>  // detail::attention_check

#include <cmath>

namespace attnres::ops {

namespace cuda_kernels {
// Thread i ↦ (b, h, r) with r the query (or key) row of sequence b, head h.
struct bhr {
  index_t b, h, r;
};
__device__ inline bhr split(index_t i, index_t H, index_t seq) {
  return {i / (H * seq), (i / seq) % H, i % seq};
}

template <class T>
__global__ void attention_forward(const T* q, const T* k, const T* v, index_t stride, index_t batch, index_t seq,
                                  index_t H, index_t Dh, T scale, T* out, index_t so, T* probs) {
  const index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (i >= batch * H * seq) return;
  const bhr x = split(i, H, seq);
  const index_t base = x.b * seq * stride + x.h * Dh;  // row 0 of this sequence, this head
  T* P = probs + ((x.b * H + x.h) * seq + x.r) * seq;   // (T) row r of this head's P
  for (index_t j = x.r + 1; j < seq; ++j) P[j] = 0;
  row::attention_forward_row(q + base + x.r * stride, k + base, v + base, stride, x.r + 1, Dh, scale,
                             out + x.b * seq * so + x.h * Dh + x.r * so, P);
}

template <class T>
__global__ void attention_backward_queries(const T* k, const T* v, index_t stride, const T* probs, const T* dout,
                                           index_t sd, index_t batch, index_t seq, index_t H, index_t Dh, T scale, T* dq,
                                           index_t sq, T* delta) {
  const index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (i >= batch * H * seq) return;
  const bhr x = split(i, H, seq);
  const index_t base = x.b * seq * stride + x.h * Dh;
  const T* P = probs + ((x.b * H + x.h) * seq + x.r) * seq;
  delta[i] = row::attention_backward_query_row(k + base, v + base, stride, x.r + 1, Dh, scale, P,
                                               dout + x.b * seq * sd + x.h * Dh + x.r * sd,
                                               dq + x.b * seq * sq + x.h * Dh + x.r * sq);
}

template <class T>
__global__ void attention_backward_keys(const T* q, const T* v, index_t stride, const T* probs, const T* dout,
                                        const T* delta, index_t batch, index_t seq, index_t H, index_t Dh, T scale, T* dk,
                                        T* dv, index_t sg) {
  const index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (i >= batch * H * seq) return;
  const bhr x = split(i, H, seq);
  const index_t base = x.b * seq * stride + x.h * Dh;  // q, v, dout share the stride (checked)
  const index_t gbase = x.b * seq * sg + x.h * Dh + x.r * sg;
  row::attention_backward_key_row(q + base, dout + base, stride, probs + (x.b * H + x.h) * seq * seq,
                                  delta + (x.b * H + x.h) * seq, seq, x.r, v + base + x.r * stride, Dh, scale,
                                  dk + gbase, dv + gbase);
}
}  // namespace cuda_kernels

template <class T>
void causal_attention_forward(backend::cuda, no_deduce<const_matrix_view<T, device_space>> q /*(B·T, H·Dh)*/,
                              no_deduce<const_matrix_view<T, device_space>> k, no_deduce<const_matrix_view<T, device_space>> v,
                              index_t batch, index_t seq_len, index_t H, matrix_view<T, device_space> out,
                              T* probs /*(B, H, T, T), device*/) {
  const std::initializer_list<detail::view_shape> views = {  // named: nvcc mangles a braced argument
      {"q", q.rows, q.cols}, {"k", k.rows, k.cols}, {"v", v.rows, v.cols}, {"out", out.rows, out.cols}};
  const index_t Dh = detail::attention_check("causal_attention_forward", batch, seq_len, H, views);
  expects<shape_error>(probs != nullptr || batch == 0, "causal_attention_forward: probs is null");
  // The kernels address q, k, v with one stride (they are usually column slices of one qkv buffer).
  expects<shape_error>(q.stride == k.stride && q.stride == v.stride,
                       "causal_attention_forward (cuda): q, k and v must share one row stride");
  if (batch == 0) return;
  const T scale = T(1) / std::sqrt(T(Dh));
  cuda_kernels::attention_forward<T>
      <<<cuda_detail::grid_for(batch * H * seq_len, "causal_attention_forward"), cuda_detail::block_threads>>>(
          q.data, k.data, v.data, q.stride, batch, seq_len, H, Dh, scale, out.data, out.stride, probs);
  cuda::check_launch("causal_attention_forward kernel");
}

template <class T>
void causal_attention_backward(backend::cuda, no_deduce<const_matrix_view<T, device_space>> q,
                               no_deduce<const_matrix_view<T, device_space>> k, no_deduce<const_matrix_view<T, device_space>> v,
                               const T* probs /*(B, H, T, T), device*/, no_deduce<const_matrix_view<T, device_space>> dout,
                               index_t batch, index_t seq_len, index_t H, matrix_view<T, device_space> dq,
                               matrix_view<T, device_space> dk, matrix_view<T, device_space> dv) {
  const std::initializer_list<detail::view_shape> views = {
      {"q", q.rows, q.cols},     {"k", k.rows, k.cols},     {"v", v.rows, v.cols}, {"dout", dout.rows, dout.cols},
      {"dq", dq.rows, dq.cols}, {"dk", dk.rows, dk.cols}, {"dv", dv.rows, dv.cols}};
  const index_t Dh = detail::attention_check("causal_attention_backward", batch, seq_len, H, views);
  expects<shape_error>(probs != nullptr || batch == 0, "causal_attention_backward: probs is null");
  expects<shape_error>(q.stride == k.stride && q.stride == v.stride && q.stride == dout.stride,
                       "causal_attention_backward (cuda): q, k, v and dout must share one row stride");
  expects<shape_error>(dk.stride == dv.stride, "causal_attention_backward (cuda): dk and dv must share one row stride");
  if (batch == 0) return;
  const T scale = T(1) / std::sqrt(T(Dh));
  const index_t rows = batch * H * seq_len;
  T* delta = static_cast<T*>(cuda_detail::scratch_buffer().get(static_cast<std::size_t>(rows) * sizeof(T)));  // (B,H,T)
  cuda_kernels::attention_backward_queries<T>
      <<<cuda_detail::grid_for(rows, "causal_attention_backward"), cuda_detail::block_threads>>>(
          k.data, v.data, k.stride, probs, dout.data, dout.stride, batch, seq_len, H, Dh, scale, dq.data, dq.stride,
          delta);
  cuda::check_launch("causal_attention_backward query kernel");
  cuda_kernels::attention_backward_keys<T>
      <<<cuda_detail::grid_for(rows, "causal_attention_backward"), cuda_detail::block_threads>>>(
          q.data, v.data, q.stride, probs, dout.data, delta, batch, seq_len, H, Dh, scale, dk.data, dv.data, dk.stride);
  cuda::check_launch("causal_attention_backward key kernel");
}

ATTNRES_CUDA_REJECT_HOST_VIEWS(causal_attention_forward)
ATTNRES_CUDA_REJECT_HOST_VIEWS(causal_attention_backward)

}  // namespace attnres::ops
