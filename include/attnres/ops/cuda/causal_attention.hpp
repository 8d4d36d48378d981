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
template <class T>
__global__ void attention_forward(row::attention_args<T> a, T* out, index_t so, T* probs) {
  const index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (i < a.batch * a.H * a.seq) row::attention_forward_thread(i, a, out, so, probs);
}

template <class T>
__global__ void attention_backward_queries(row::attention_args<T> a, const T* probs, const T* dout, index_t sd, T* dq,
                                           index_t sq, T* delta) {
  const index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (i < a.batch * a.H * a.seq) row::attention_backward_query_thread(i, a, probs, dout, sd, dq, sq, delta);
}

template <class T>
__global__ void attention_backward_keys(row::attention_args<T> a, const T* probs, const T* dout, const T* delta, T* dk,
                                        T* dv, index_t sg) {
  const index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (i < a.batch * a.H * a.seq) row::attention_backward_key_thread(i, a, probs, dout, delta, dk, dv, sg);
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
  const row::attention_args<T> args{q.data, k.data, v.data, q.stride, batch, seq_len, H, Dh, scale};
  cuda_kernels::attention_forward<T>
      <<<cuda_detail::grid_for(batch * H * seq_len, "causal_attention_forward"), cuda_detail::block_threads>>>(
          args, out.data, out.stride, probs);
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
  const row::attention_args<T> args{q.data, k.data, v.data, q.stride, batch, seq_len, H, Dh, scale};
  cuda_kernels::attention_backward_queries<T>
      <<<cuda_detail::grid_for(rows, "causal_attention_backward"), cuda_detail::block_threads>>>(
          args, probs, dout.data, dout.stride, dq.data, dq.stride, delta);
  cuda::check_launch("causal_attention_backward query kernel");
  cuda_kernels::attention_backward_keys<T>
      <<<cuda_detail::grid_for(rows, "causal_attention_backward"), cuda_detail::block_threads>>>(
          args, probs, dout.data, delta, dk.data, dv.data, dk.stride);
  cuda::check_launch("causal_attention_backward key kernel");
}

ATTNRES_CUDA_REJECT_HOST_VIEWS(causal_attention_forward)
ATTNRES_CUDA_REJECT_HOST_VIEWS(causal_attention_backward)

}  // namespace attnres::ops
