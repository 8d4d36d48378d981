#pragma once
// RoPE, CUDA path: one thread per (token, head) around ops/cuda/row/rope.hpp. Contract:
// ops/rope.hpp, in place on a device view (the same shape checks as the reference).

#include <attnres/ops/cuda/launch.hpp>
#include <attnres/ops/cuda/row/rope.hpp>
#include <attnres/ops/reference/rope.hpp>  // detail::rope_check

namespace attnres::ops {

namespace cuda_kernels {
template <class T>
__global__ void rope_rotate(T* x, index_t stride, index_t rows, index_t seq_len, index_t H, index_t Dh, index_t pos0,
                            double theta, double sign) {
  const index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (i < rows * H) row::rope_thread(i, x, stride, seq_len, H, Dh, pos0, theta, sign);
}
}  // namespace cuda_kernels

namespace cuda_detail {
template <class T>
void rope_launch(const char* op, matrix_view<T, device_space> x, index_t seq_len, index_t H, index_t pos0, double theta,
                 double sign) {
  const index_t Dh = detail::rope_check(op, sign > 0 ? "x" : "dx", x.rows, x.cols, seq_len, H, theta);
  if (x.rows == 0) return;
  cuda_kernels::rope_rotate<T><<<grid_for(x.rows * H, op), block_threads>>>(x.data, x.stride, x.rows, seq_len, H, Dh,
                                                                            pos0, theta, sign);
  cuda::check_launch("rope kernel");
}
}  // namespace cuda_detail

template <class T>
void rope_forward(backend::cuda, matrix_view<T, device_space> x /*(B·T, H·Dh)*/, index_t seq_len, index_t H, index_t pos0,
                  double theta) {
  cuda_detail::rope_launch<T>("rope_forward", x, seq_len, H, pos0, theta, +1.0);
}

template <class T>
void rope_backward(backend::cuda, matrix_view<T, device_space> dx /*(B·T, H·Dh)*/, index_t seq_len, index_t H,
                   index_t pos0, double theta) {
  cuda_detail::rope_launch<T>("rope_backward", dx, seq_len, H, pos0, theta, -1.0);
}

ATTNRES_CUDA_REJECT_HOST_VIEWS(rope_forward)
ATTNRES_CUDA_REJECT_HOST_VIEWS(rope_backward)

}  // namespace attnres::ops
