#pragma once
// KV-cache decoding, CUDA path: one thread per (sequence, head), the forward attention row over
// the n cached positions (ops/cuda/row/causal_attention.hpp). Contract: ops/attention_decode.hpp,
// with device views and device caches.

#include <attnres/ops/cuda/launch.hpp>
#include <attnres/ops/cuda/row/causal_attention.hpp>
#include <attnres/ops/reference/attention_decode.hpp>  // detail::decode_check

#include <cmath>

namespace attnres::ops {

namespace cuda_kernels {
template <class T>
__global__ void attention_decode(const T* q, index_t sq, const T* k_cache, const T* v_cache, index_t n, index_t T_max,
                                 index_t batch, index_t H, index_t Dh, T scale, T* out, index_t so) {
  const index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (i < batch * H) row::attention_decode_thread(i, q, sq, k_cache, v_cache, n, T_max, H, Dh, scale, out, so);
}
}  // namespace cuda_kernels

template <class T>
void attention_decode(backend::cuda, no_deduce<const_matrix_view<T, device_space>> q /*(B, H·Dh)*/,
                      const T* k_cache /*(B, T_max, H·Dh), device*/, const T* v_cache, index_t n, index_t T_max, index_t H,
                      matrix_view<T, device_space> out /*(B, H·Dh)*/) {
  const index_t Dh = detail::decode_check(q.rows, q.cols, out.rows, out.cols, k_cache && v_cache, n, T_max, H);
  if (q.rows == 0) return;
  const T scale = T(1) / std::sqrt(T(Dh));
  cuda_kernels::attention_decode<T><<<cuda_detail::grid_for(q.rows * H, "attention_decode"), cuda_detail::block_threads>>>(
      q.data, q.stride, k_cache, v_cache, n, T_max, q.rows, H, Dh, scale, out.data, out.stride);
  cuda::check_launch("attention_decode kernel");
}

ATTNRES_CUDA_REJECT_HOST_VIEWS(attention_decode)

}  // namespace attnres::ops
