#pragma once
// Activations, CUDA path: one thread per element around ops/cuda/row/activation.hpp.
// Contract: ops/activation.hpp, device views.

#include <attnres/ops/cuda/launch.hpp>
#include <attnres/ops/cuda/row/activation.hpp>
#include <attnres/ops/depth_attention_types.hpp>  // no_deduce

namespace attnres::ops {

namespace cuda_kernels {
using row::element_offset;
__device__ inline index_t at(index_t i, index_t cols, index_t stride) { return element_offset(i, cols, stride); }

template <class T>
__global__ void swiglu_forward(const T* gate, index_t sg, const T* up, index_t su, index_t n, index_t F, T* out,
                               index_t so) {
  const index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (i < n) out[at(i, F, so)] = row::swiglu_forward_elem(gate[at(i, F, sg)], up[at(i, F, su)]);
}
template <class T>
__global__ void swiglu_backward(const T* gate, index_t sg, const T* up, index_t su, const T* dout, index_t sd, index_t n,
                                index_t F, T* dgate, index_t sdg, T* dup, index_t sdu) {
  const index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (i < n)
    row::swiglu_backward_elem(gate[at(i, F, sg)], up[at(i, F, su)], dout[at(i, F, sd)], &dgate[at(i, F, sdg)],
                              &dup[at(i, F, sdu)]);
}
template <class T>
__global__ void gelu_forward(const T* x, index_t sx, index_t n, index_t F, T* y, index_t sy) {
  const index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (i < n) y[at(i, F, sy)] = row::gelu_forward_elem(x[at(i, F, sx)]);
}
template <class T>
__global__ void gelu_backward(const T* x, index_t sx, const T* dy, index_t sdy, index_t n, index_t F, T* dx, index_t sdx) {
  const index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (i < n) dx[at(i, F, sdx)] = row::gelu_backward_elem(x[at(i, F, sx)], dy[at(i, F, sdy)]);
}
}  // namespace cuda_kernels

namespace cuda_detail {
template <class T>
void same_shape2(const char* op, const_matrix_view<T, device_space> a, const char* an, const_matrix_view<T, device_space> b,
                 const char* bn) {
  expects<shape_error>(a.rows == b.rows && a.cols == b.cols, op, ": ", bn, " is (", b.rows, ",", b.cols, ") but ", an,
                       " is (", a.rows, ",", a.cols, ")");
}
}  // namespace cuda_detail

template <class T>
void swiglu_forward(backend::cuda, no_deduce<const_matrix_view<T, device_space>> gate /*(M,F)*/,
                    no_deduce<const_matrix_view<T, device_space>> up /*(M,F)*/, matrix_view<T, device_space> out /*(M,F)*/) {
  cuda_detail::same_shape2<T>("swiglu_forward", gate, "gate", up, "up");
  cuda_detail::same_shape2<T>("swiglu_forward", gate, "gate", out, "out");
  const index_t n = gate.rows * gate.cols;
  if (n == 0) return;
  cuda_kernels::swiglu_forward<T><<<cuda_detail::grid_for(n, "swiglu_forward"), cuda_detail::block_threads>>>(
      gate.data, gate.stride, up.data, up.stride, n, gate.cols, out.data, out.stride);
  cuda::check_launch("swiglu_forward kernel");
}

template <class T>
void swiglu_backward(backend::cuda, no_deduce<const_matrix_view<T, device_space>> gate /*(M,F)*/,
                     no_deduce<const_matrix_view<T, device_space>> up /*(M,F)*/,
                     no_deduce<const_matrix_view<T, device_space>> dout /*(M,F)*/,
                     matrix_view<T, device_space> dgate /*(M,F)*/, matrix_view<T, device_space> dup /*(M,F)*/) {
  cuda_detail::same_shape2<T>("swiglu_backward", gate, "gate", up, "up");
  cuda_detail::same_shape2<T>("swiglu_backward", gate, "gate", dout, "dout");
  cuda_detail::same_shape2<T>("swiglu_backward", gate, "gate", dgate, "dgate");
  cuda_detail::same_shape2<T>("swiglu_backward", gate, "gate", dup, "dup");
  const index_t n = gate.rows * gate.cols;
  if (n == 0) return;
  cuda_kernels::swiglu_backward<T><<<cuda_detail::grid_for(n, "swiglu_backward"), cuda_detail::block_threads>>>(
      gate.data, gate.stride, up.data, up.stride, dout.data, dout.stride, n, gate.cols, dgate.data, dgate.stride,
      dup.data, dup.stride);
  cuda::check_launch("swiglu_backward kernel");
}

template <class T>
void gelu_forward(backend::cuda, no_deduce<const_matrix_view<T, device_space>> x /*(M,F)*/,
                  matrix_view<T, device_space> y /*(M,F)*/) {
  cuda_detail::same_shape2<T>("gelu_forward", x, "x", y, "y");
  const index_t n = x.rows * x.cols;
  if (n == 0) return;
  cuda_kernels::gelu_forward<T><<<cuda_detail::grid_for(n, "gelu_forward"), cuda_detail::block_threads>>>(
      x.data, x.stride, n, x.cols, y.data, y.stride);
  cuda::check_launch("gelu_forward kernel");
}

template <class T>
void gelu_backward(backend::cuda, no_deduce<const_matrix_view<T, device_space>> x /*(M,F)*/,
                   no_deduce<const_matrix_view<T, device_space>> dy /*(M,F)*/, matrix_view<T, device_space> dx /*(M,F)*/) {
  cuda_detail::same_shape2<T>("gelu_backward", x, "x", dy, "dy");
  cuda_detail::same_shape2<T>("gelu_backward", x, "x", dx, "dx");
  const index_t n = x.rows * x.cols;
  if (n == 0) return;
  cuda_kernels::gelu_backward<T><<<cuda_detail::grid_for(n, "gelu_backward"), cuda_detail::block_threads>>>(
      x.data, x.stride, dy.data, dy.stride, n, x.cols, dx.data, dx.stride);
  cuda::check_launch("gelu_backward kernel");
}

ATTNRES_CUDA_REJECT_HOST_VIEWS(swiglu_forward)
ATTNRES_CUDA_REJECT_HOST_VIEWS(swiglu_backward)
ATTNRES_CUDA_REJECT_HOST_VIEWS(gelu_forward)
ATTNRES_CUDA_REJECT_HOST_VIEWS(gelu_backward)

}  // namespace attnres::ops
