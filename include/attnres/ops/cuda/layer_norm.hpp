#pragma once
// LayerNorm, CUDA path: launch shells around ops/cuda/row/layer_norm.hpp (one thread per row; the
// gain and bias gradients one thread per channel, tokens in order). Contract: ops/layer_norm.hpp,
// device views; g, b, mean, rstd, dg, db are device pointers.

#include <attnres/ops/cuda/launch.hpp>
#include <attnres/ops/cuda/row/layer_norm.hpp>
#include <attnres/ops/depth_attention_types.hpp>  // no_deduce

namespace attnres::ops {

namespace cuda_kernels {
template <class T>
__global__ void layer_norm_forward(const T* x, index_t sx, const T* g, const T* b, T eps, index_t M, index_t D, T* y,
                                   index_t sy, T* mean, T* rstd) {
  const index_t t = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (t < M)
    row::layer_norm_forward_row(x + t * sx, g, b, eps, D, y + t * sy, mean ? mean + t : nullptr,
                                rstd ? rstd + t : nullptr);
}

template <class T>
__global__ void layer_norm_backward_rows(const T* x, index_t sx, const T* g, const T* mean, const T* rstd, const T* dy,
                                         index_t sdy, index_t M, index_t D, T* dx, index_t sdx) {
  const index_t t = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (t < M) row::layer_norm_backward_row(x + t * sx, g, mean[t], rstd[t], dy + t * sdy, D, dx + t * sdx);
}

template <class T>
__global__ void layer_norm_backward_channels(const T* x, index_t sx, const T* mean, const T* rstd, const T* dy,
                                             index_t sdy, index_t M, index_t D, T* dg, T* db) {
  const index_t d = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (d < D) row::layer_norm_backward_channel(x, sx, mean, rstd, dy, sdy, M, d, dg, db);
}
}  // namespace cuda_kernels

namespace cuda_detail {
template <class T>
void layer_norm_same_shape(const char* op, const_matrix_view<T, device_space> x, const_matrix_view<T, device_space> o,
                           const char* name) {
  expects<shape_error>(o.rows == x.rows && o.cols == x.cols, op, ": ", name, " is (", o.rows, ",", o.cols,
                       ") but x is (", x.rows, ",", x.cols, ")");
}
}  // namespace cuda_detail

template <class T>
void layer_norm_forward(backend::cuda, no_deduce<const_matrix_view<T, device_space>> x /*(M,D)*/, const T* g /*(D)*/,
                        no_deduce<const T*> b /*(D) or null*/, no_deduce<T> eps, matrix_view<T, device_space> y /*(M,D)*/,
                        no_deduce<T*> mean /*(M) or null*/, no_deduce<T*> rstd /*(M) or null*/) {
  cuda_detail::layer_norm_same_shape<T>("layer_norm_forward", x, y, "y");
  if (x.rows == 0) return;
  cuda_kernels::layer_norm_forward<T>
      <<<cuda_detail::grid_for(x.rows, "layer_norm_forward"), cuda_detail::block_threads>>>(
          x.data, x.stride, g, b, eps, x.rows, x.cols, y.data, y.stride, mean, rstd);
  cuda::check_launch("layer_norm_forward kernel");
}

template <class T>
void layer_norm_backward(backend::cuda, no_deduce<const_matrix_view<T, device_space>> x /*(M,D)*/, const T* g /*(D)*/,
                         const T* mean /*(M)*/, const T* rstd /*(M)*/,
                         no_deduce<const_matrix_view<T, device_space>> dy /*(M,D)*/,
                         no_deduce<matrix_view<T, device_space>> dx /*(M,D) or null*/, no_deduce<T*> dg /*(D) or null*/,
                         no_deduce<T*> db /*(D) or null*/) {
  cuda_detail::layer_norm_same_shape<T>("layer_norm_backward", x, dy, "dy");
  if (dx.data) cuda_detail::layer_norm_same_shape<T>("layer_norm_backward", x, dx, "dx");
  if (x.rows == 0) return;
  if (dx.data) {
    cuda_kernels::layer_norm_backward_rows<T>
        <<<cuda_detail::grid_for(x.rows, "layer_norm_backward"), cuda_detail::block_threads>>>(
            x.data, x.stride, g, mean, rstd, dy.data, dy.stride, x.rows, x.cols, dx.data, dx.stride);
    cuda::check_launch("layer_norm_backward row kernel");
  }
  if (dg || db) {
    cuda_kernels::layer_norm_backward_channels<T>
        <<<cuda_detail::grid_for(x.cols, "layer_norm_backward"), cuda_detail::block_threads>>>(
            x.data, x.stride, mean, rstd, dy.data, dy.stride, x.rows, x.cols, dg, db);
    cuda::check_launch("layer_norm_backward channel kernel");
  }
}

ATTNRES_CUDA_REJECT_HOST_VIEWS(layer_norm_forward)
ATTNRES_CUDA_REJECT_HOST_VIEWS(layer_norm_backward)

}  // namespace attnres::ops
