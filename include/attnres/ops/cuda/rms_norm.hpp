#pragma once
// RMSNorm, CUDA path: launch shells around ops/cuda/row/rms_norm.hpp (one thread per row; the
// gain gradient one thread per channel, tokens in order). Contract: ops/rms_norm.hpp, device views.

#include <attnres/ops/cuda/launch.hpp>
#include <attnres/ops/cuda/row/rms_norm.hpp>
#include <attnres/ops/depth_attention_types.hpp>  // no_deduce

namespace attnres::ops {

namespace cuda_kernels {
template <class T>
__global__ void rms_norm_forward(const T* x, index_t sx, const T* g, T eps, index_t M, index_t D, T* y, index_t sy,
                                 T* inv_rms) {
  const index_t t = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (t >= M) return;
  const T r = row::rms_norm_forward_row(x + t * sx, g, eps, D, y + t * sy);
  if (inv_rms) inv_rms[t] = r;
}

template <class T>
__global__ void rms_norm_backward_rows(const T* x, index_t sx, const T* g, const T* inv_rms, const T* dy, index_t sdy,
                                       index_t M, index_t D, T* dx, index_t sdx, T* x_dot_dx) {
  const index_t t = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (t < M)
    row::rms_norm_backward_row(x + t * sx, g, inv_rms[t], dy + t * sdy, D, dx ? dx + t * sdx : nullptr,
                               x_dot_dx ? x_dot_dx + t : nullptr);
}

template <class T>
__global__ void rms_norm_backward_channels(const T* x, index_t sx, const T* inv_rms, const T* dy, index_t sdy,
                                           index_t M, index_t D, T* dg) {
  const index_t d = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (d < D) row::rms_norm_backward_channel(x, sx, inv_rms, dy, sdy, M, d, dg);
}
}  // namespace cuda_kernels

namespace cuda_detail {
template <class T>
void same_shape(const char* op, const_matrix_view<T, device_space> x, const_matrix_view<T, device_space> o,
                const char* name) {
  expects<shape_error>(o.rows == x.rows && o.cols == x.cols, op, ": ", name, " is (", o.rows, ",", o.cols,
                       ") but x is (", x.rows, ",", x.cols, ")");
}
}  // namespace cuda_detail

template <class T>
void rms_norm_forward(backend::cuda, no_deduce<const_matrix_view<T, device_space>> x /*(M,D)*/, const T* g /*(D)*/,
                      no_deduce<T> eps, matrix_view<T, device_space> y /*(M,D)*/, no_deduce<T*> inv_rms /*(M) or null*/) {
  cuda_detail::same_shape<T>("rms_norm_forward", x, y, "y");
  if (x.rows == 0) return;
  cuda_kernels::rms_norm_forward<T><<<cuda_detail::grid_for(x.rows, "rms_norm_forward"), cuda_detail::block_threads>>>(
      x.data, x.stride, g, eps, x.rows, x.cols, y.data, y.stride, inv_rms);
  cuda::check_launch("rms_norm_forward kernel");
}

template <class T>
void rms_norm_backward(backend::cuda, no_deduce<const_matrix_view<T, device_space>> x /*(M,D)*/, const T* g /*(D)*/,
                       const T* inv_rms /*(M)*/, no_deduce<const_matrix_view<T, device_space>> dy /*(M,D)*/,
                       no_deduce<matrix_view<T, device_space>> dx /*(M,D) or null*/, no_deduce<T*> dg /*(D) or null*/,
                       no_deduce<T*> x_dot_dx = nullptr /*(M) or null*/) {
  cuda_detail::same_shape<T>("rms_norm_backward", x, dy, "dy");
  if (dx.data) cuda_detail::same_shape<T>("rms_norm_backward", x, dx, "dx");
  if (x.rows == 0) return;
  if (dx.data || x_dot_dx) {
    cuda_kernels::rms_norm_backward_rows<T>
        <<<cuda_detail::grid_for(x.rows, "rms_norm_backward"), cuda_detail::block_threads>>>(
            x.data, x.stride, g, inv_rms, dy.data, dy.stride, x.rows, x.cols, dx.data, dx.stride, x_dot_dx);
    cuda::check_launch("rms_norm_backward row kernel");
  }
  if (dg) {
    cuda_kernels::rms_norm_backward_channels<T>
        <<<cuda_detail::grid_for(x.cols, "rms_norm_backward"), cuda_detail::block_threads>>>(
            x.data, x.stride, inv_rms, dy.data, dy.stride, x.rows, x.cols, dg);
    cuda::check_launch("rms_norm_backward channel kernel");
  }
}

ATTNRES_CUDA_REJECT_HOST_VIEWS(rms_norm_forward)
ATTNRES_CUDA_REJECT_HOST_VIEWS(rms_norm_backward)

}  // namespace attnres::ops
